"""`topotrigger run`: the stages in order (generate, ingest, features, train), in one run directory,
each skipped when its output is current."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from topotrigger.config import Config
from topotrigger.generate.stage import generate
from topotrigger.ingest.stage import ingest
from topotrigger.features.stage import features, manifest_digest
from topotrigger.train.loop import TrainSettings
from topotrigger.train.stage import dataset_digest, train
from topotrigger.reporting import print_features, print_generate, print_ingest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _ingest_is_current(out: Path, generated_files: list[dict]) -> bool:
    """True if `out` holds a finished ingestion of exactly these generated files."""
    manifest = out / "_manifest.json"
    if not manifest.is_file():
        return False
    done = json.loads(manifest.read_text())
    have = sorted((Path(f["path"]).name, f["entries"], f["bytes"]) for f in done["inputs"])
    want = sorted((f["file"], f["events"], f["bytes"]) for f in generated_files)
    return have == want and not done["skipped"]


def _features_is_current(out: Path, ingested: Path, cfg: Config) -> bool:
    """True if `out` was made from the current ingestion with the current settings."""
    metadata, manifest = out / "metadata.json", ingested / "_manifest.json"
    if not (metadata.is_file() and manifest.is_file()):
        return False
    done = json.loads(metadata.read_text())
    return (done["settings"] == cfg.features.model_dump(mode="json")
            and done.get("input_manifest_sha256") == manifest_digest(json.loads(manifest.read_text())))


def _model_is_current(model_dir: Path, features_dir: Path, settings: TrainSettings) -> bool:
    model_json, metadata = model_dir / "model.json", features_dir / "metadata.json"
    if not (model_json.is_file() and metadata.is_file()):
        return False
    done = json.loads(model_json.read_text())
    return (done.get("settings") == asdict(settings)
            and done.get("dataset_digest") == dataset_digest(json.loads(metadata.read_text())))


def run_pipeline(cfg: Config, spark: "SparkSession", console: Console) -> None:
    run_dir = cfg.run_dir.resolve()
    console.rule(f"generate -> {run_dir / 'generate'}")
    generated = generate(cfg.generate, run_dir / "generate", spark)
    print_generate(console, generated)

    console.rule(f"ingest -> {run_dir / 'ingest'}")
    if _ingest_is_current(run_dir / "ingest", generated.files):
        console.print("ingested events are up to date; skipped")
    else:
        inputs = [str(run_dir / "generate" / c) for c in cfg.generate.classes]
        print_ingest(console, ingest(cfg.ingest, inputs, str(run_dir / "ingest"), spark, overwrite=True))

    console.rule(f"features -> {run_dir / 'features'}")
    if _features_is_current(run_dir / "features", run_dir / "ingest", cfg):
        console.print("training datasets are up to date; skipped")
    else:
        print_features(console, features(cfg.features, str(run_dir / "ingest"), str(run_dir / "features"), spark,
                                         overwrite=True))
    model_dir = run_dir / "models" / cfg.train.model
    console.rule(f"train {cfg.train.model} -> {model_dir}")
    settings = TrainSettings(model=cfg.train.model, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                             lr=cfg.train.lr, seed=cfg.train.seed)
    if _model_is_current(model_dir, run_dir / "features", settings):
        console.print("model is up to date; skipped")
    else:
        history = train(settings, str(run_dir / "features"), str(model_dir), cfg.train.workers, spark)
        last = history["epochs"][-1]
        console.print(f"{cfg.train.model}: val accuracy {last['val_accuracy']:.3f}, val AUC "
                      + ", ".join(f"{a:.3f}" for a in last["val_auc"]))
    console.print(f"done: outputs in {run_dir}")
