"""`topotrigger run`: generate → ingest → features → tune → train (several models) → evaluate, in one
run directory with one sub-directory per stage.

Each finished stage leaves `_stage.json` in its directory: its settings, the digests of the stages
it read, the software versions, its counts and its own digest (of settings and input digests). A
rerun skips a stage whose recorded digest equals the one it would have now and whose output is
still there, and redoes it otherwise, which invalidates everything downstream; `force` redoes a
stage and all later ones. Inside a stage, partial work is resumed where the stage supports it
(generated files, tuning trials, training checkpoints are not; models are retrained whole).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from topotrigger.config import Config
from topotrigger.errors import ConfigError
from topotrigger.io.atomic import write_json
from topotrigger.io.manifest import digest
from topotrigger.modeldir import is_trained
from topotrigger.io.versions import software_versions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STAGES = ("generate", "ingest", "features", "tune", "train", "evaluate")
MANIFEST = "_stage.json"


class Run:
    """Bookkeeping of one run directory: which stages are current, and their manifests."""

    def __init__(self, cfg: Config, console: Console, force: str | None = None) -> None:
        if force is not None and force not in STAGES:
            raise ConfigError(f"--force: unknown stage {force!r}; stages: {', '.join(STAGES)}")
        self.cfg, self.console = cfg, console
        self.root = cfg.run_dir.resolve()
        self.forced = set(STAGES[STAGES.index(force):]) if force else set()
        self.digests: dict[str, str] = {}

    def directory(self, stage: str) -> Path:
        return self.root / ("models" if stage == "train" else stage)

    def stage(self, name: str, settings: dict[str, Any], inputs: tuple[str, ...],
              body: Callable[[Path], dict[str, Any]], present: Callable[[Path], bool]) -> None:
        out = self.directory(name)
        self.console.rule(f"{name} -> {out}")
        identity = {"stage": name, "settings": settings, "inputs": {i: self.digests[i] for i in inputs}}
        wanted = digest(identity)
        manifest = out / MANIFEST
        if name not in self.forced and manifest.is_file() and present(out):
            done = json.loads(manifest.read_text())
            if done.get("digest") == wanted:
                self.console.print(f"{name}: up to date; skipped")
                self.digests[name] = wanted
                return
        start = time.perf_counter()
        counts = body(out)
        write_json(manifest, {**identity, "digest": wanted, "counts": counts,
                              "seconds": round(time.perf_counter() - start, 3), "software": software_versions()})
        self.digests[name] = wanted


def _settings(model: Any) -> dict[str, Any]:
    settings: dict[str, Any] = model.model_dump(mode="json")
    return settings


def run_pipeline(cfg: Config, session: "SparkSession | Callable[[], SparkSession]", console: Console,
                 force: str | None = None) -> Path:
    """Runs every stage that is not current; returns the evaluation report's path. `session` may be a
    function that starts Spark: a run with nothing to do then starts no JVM."""
    from topotrigger.evaluate.stage import evaluate
    from topotrigger.features.stage import features
    from topotrigger.generate.stage import generate
    from topotrigger.ingest.stage import ingest
    from topotrigger.reporting import print_features, print_generate, print_ingest, print_tune
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.stage import train
    from topotrigger.tune.stage import tune

    run = Run(cfg, console, force)
    started: list["SparkSession"] = []

    def spark() -> "SparkSession":
        if not started:
            started.append(session() if callable(session) else session)
        return started[0]

    root = run.root

    def do_generate(out: Path) -> dict[str, Any]:
        result = generate(cfg.generate, out, spark())
        print_generate(console, result)
        return {c: result.events(c) for c in cfg.generate.classes}

    run.stage("generate", _settings(cfg.generate), (), do_generate,
              lambda out: all((out / c).is_dir() for c in cfg.generate.classes))

    def do_ingest(out: Path) -> dict[str, Any]:
        result = ingest(cfg.ingest, [str(root / "generate" / c) for c in cfg.generate.classes], str(out), spark(),
                        overwrite=True)
        print_ingest(console, result)
        return {str(k): v for k, v in result.counts.items()}

    run.stage("ingest", _settings(cfg.ingest), ("generate",), do_ingest, lambda out: (out / "_SUCCESS").is_file())

    def do_features(out: Path) -> dict[str, Any]:
        result = features(cfg.features, str(root / "ingest"), str(out), spark(), overwrite=True)
        print_features(console, result)
        return result.counts

    run.stage("features", _settings(cfg.features), ("ingest",), do_features,
              lambda out: (out / "metadata.json").is_file())

    data = str(root / "features")
    best_file = root / "tune" / cfg.tune.model / "best.json"
    if cfg.run.tune:
        def do_tune(out: Path) -> dict[str, Any]:
            defaults = TrainSettings(model=cfg.tune.model, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                                     lr=cfg.train.lr, seed=cfg.train.seed)
            result = tune(cfg.tune, data, str(out / cfg.tune.model), spark(), defaults=defaults)
            print_tune(console, result)
            return {"trials": len(result.trials), "failed": sum(t["status"] != "ok" for t in result.trials)}

        run.stage("tune", {**_settings(cfg.tune), "train": _settings(cfg.train)}, ("features",), do_tune,
                  lambda out: (out / cfg.tune.model / "trials.json").is_file())
    best = json.loads(best_file.read_text()) if cfg.run.tune and best_file.is_file() else None

    def settings_for(model: str) -> TrainSettings:
        t = cfg.train
        settings = TrainSettings(model=model, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, seed=t.seed)
        if best and best["model"] == model:  # the tuned model trains with the best trial's settings
            settings.params = best["params"]
            for key in ("epochs", "batch_size", "lr"):
                if key in best:
                    setattr(settings, key, best[key])
        return settings

    def do_train(out: Path) -> dict[str, Any]:
        summary: dict[str, Any] = {}
        from topotrigger.sparkml.estimators import SPARK_MODELS
        from topotrigger.sparkml.stage import train_spark_model

        for model in cfg.run.models:
            if model in SPARK_MODELS:
                history = train_spark_model(model, {}, data, str(out / model), spark(), seed=cfg.train.seed)
                summary[model] = {"val_accuracy": history["epochs"][0]["val_accuracy"]}
                continue
            history = train(settings_for(model), data, str(out / model), cfg.train.workers,
                            spark() if cfg.train.workers > 1 else None)
            best_epoch = min(history["epochs"], key=lambda e: e["val_loss"])
            summary[model] = {"epochs": len(history["epochs"]), "val_accuracy": best_epoch["val_accuracy"]}
        return summary

    train_settings = {m: asdict(settings_for(m)) for m in cfg.run.models} | {"workers": cfg.train.workers}
    run.stage("train", train_settings, ("features", "tune") if cfg.run.tune else ("features",), do_train,
              lambda out: all(is_trained(out / m) for m in cfg.run.models))

    report = root / "evaluate" / "report.html"

    def do_evaluate(out: Path) -> dict[str, Any]:
        result = evaluate([str(root / "models" / m) for m in cfg.run.models], data, str(out), spark=spark)
        return {m: {"accuracy": r["accuracy"], "auc": r["auc"]} for m, r in result.metrics["models"].items()}

    run.stage("evaluate", {"models": cfg.run.models}, ("features", "train"), do_evaluate,
              lambda out: (out / "report.html").is_file())
    _print_summary(console, root / "evaluate")
    console.print(f"done: outputs in {root}")
    return report


def _print_summary(console: Console, out: Path) -> None:
    from topotrigger.evaluate.stage import EvaluateResult
    from topotrigger.reporting import print_evaluate

    metrics = json.loads((out / "metrics.json").read_text())
    print_evaluate(console, EvaluateResult(out, metrics))
