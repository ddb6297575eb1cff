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

import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from topotrigger.config import Config
from topotrigger.errors import ConfigError
from topotrigger.io.atomic import write_json
from topotrigger.io.manifest import digest
from topotrigger.io.versions import software_versions
from topotrigger.modeldir import is_trained
from topotrigger.tracking import tracking_uri

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from topotrigger.train.loop import TrainSettings

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


class Context:
    """What every stage of a run needs: the configuration, the run directory, the console, Spark on demand."""

    def __init__(self, cfg: Config, root: Path, console: Console,
                 session: "SparkSession | Callable[[], SparkSession]") -> None:
        self.cfg, self.root, self.console = cfg, root, console
        self._session = session
        self._spark: SparkSession | None = None

    def spark(self) -> "SparkSession":
        if self._spark is None:
            self._spark = self._session() if callable(self._session) else self._session
        return self._spark

    @property
    def data(self) -> str:
        return str(self.root / "features")

    def best(self) -> dict[str, Any] | None:
        """The tuned model's best trial, when the run tunes and the search has finished."""
        path = self.root / "tune" / self.cfg.tune.model / "best.json"
        if not (self.cfg.run.tune and path.is_file()):
            return None
        best: dict[str, Any] = json.loads(path.read_text())
        return best

    def train_settings(self, model: str) -> "TrainSettings":
        from topotrigger.train.loop import TrainSettings

        t = self.cfg.train
        settings = TrainSettings(model=model, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, seed=t.seed,
                                 length_buckets=t.length_buckets, checkpoint_every_steps=t.checkpoint_every_steps)
        best = self.best()
        if best and best["model"] == model:  # the tuned model trains with the best trial's settings
            settings.params = best["params"]
            for key in ("epochs", "batch_size", "lr"):
                if key in best:
                    setattr(settings, key, best[key])
        return settings


# ---- the stages, each: what identifies its work, what it does, how to tell its output is there ----

def _generate(ctx: Context, out: Path) -> dict[str, Any]:
    from topotrigger.generate.stage import generate
    from topotrigger.reporting import print_generate

    result = generate(ctx.cfg.generate, out, ctx.spark())
    print_generate(ctx.console, result)
    return {c: result.events(c) for c in ctx.cfg.generate.classes}


def _ingest(ctx: Context, out: Path) -> dict[str, Any]:
    from topotrigger.ingest.stage import ingest
    from topotrigger.reporting import print_ingest

    inputs = [str(ctx.root / "generate" / c) for c in ctx.cfg.generate.classes]
    result = ingest(ctx.cfg.ingest, inputs, str(out), ctx.spark(), overwrite=True)
    print_ingest(ctx.console, result)
    return {str(k): v for k, v in result.counts.items()}


def _features(ctx: Context, out: Path) -> dict[str, Any]:
    from topotrigger.features.stage import features
    from topotrigger.reporting import print_features

    result = features(ctx.cfg.features, str(ctx.root / "ingest"), str(out), ctx.spark(), overwrite=True,
                      options=ctx.cfg.features.options())
    print_features(ctx.console, result)
    return result.counts


def _tune(ctx: Context, out: Path) -> dict[str, Any]:
    from topotrigger.reporting import print_tune
    from topotrigger.train.loop import TrainSettings
    from topotrigger.tune.stage import tune

    cfg = ctx.cfg
    defaults = TrainSettings(model=cfg.tune.model, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
                             lr=cfg.train.lr, seed=cfg.train.seed, length_buckets=cfg.train.length_buckets)
    result = tune(cfg.tune, ctx.data, str(out / cfg.tune.model), ctx.spark(), defaults=defaults)
    print_tune(ctx.console, result)
    if (uri := tracking_uri(cfg.run.mlflow)) is not None:
        from topotrigger.tracking import log_tune

        log_tune(uri, ctx.root, cfg.tune.model_dump(mode="json"), result)
    return {"trials": len(result.trials), "failed": sum(t["status"] != "ok" for t in result.trials)}


def _train(ctx: Context, out: Path) -> dict[str, Any]:
    from topotrigger.train.stage import train_model

    summary: dict[str, Any] = {}
    for model in ctx.cfg.run.models:
        t = ctx.cfg.train
        history = train_model(ctx.train_settings(model), ctx.data, str(out / model), t.workers, ctx.spark,
                              gpu=t.gpu, inputs=t.inputs)
        best_epoch = min(history["epochs"], key=lambda e: e["val_loss"])
        summary[model] = {"epochs": len(history["epochs"]), "val_accuracy": best_epoch["val_accuracy"]}
        if (uri := tracking_uri(ctx.cfg.run.mlflow)) is not None:
            from topotrigger.tracking import log_train

            log_train(uri, ctx.root, out / model, history, ctx.cfg.train.workers)
    return summary


def _evaluate(ctx: Context, out: Path) -> dict[str, Any]:
    from topotrigger.evaluate.stage import evaluate

    result = evaluate([str(ctx.root / "models" / m) for m in ctx.cfg.run.models], ctx.data, str(out),
                      ctx.cfg.evaluate.split, spark=ctx.spark, luminosity=ctx.cfg.evaluate.luminosity,
                      cross_sections=ctx.cfg.evaluate.cross_sections)
    if (uri := tracking_uri(ctx.cfg.run.mlflow)) is not None:
        from topotrigger.tracking import log_evaluate

        log_evaluate(uri, ctx.root, result)
    return {m: {"accuracy": r["accuracy"], "auc": r["auc"]} for m, r in result.metrics["models"].items()}


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]
    settings: Callable[[Context], dict[str, Any]]
    run: Callable[[Context, Path], dict[str, Any]]
    present: Callable[[Context, Path], bool]


PIPELINE = (
    Stage("generate", (), lambda c: _settings(c.cfg.generate), _generate,
          lambda c, out: all((out / k).is_dir() for k in c.cfg.generate.classes)),
    Stage("ingest", ("generate",), lambda c: _settings(c.cfg.ingest), _ingest, lambda c, out: (out / "_SUCCESS").is_file()),
    Stage("features", ("ingest",), lambda c: _settings(c.cfg.features), _features,
          lambda c, out: (out / "metadata.json").is_file()),
    Stage("tune", ("features",), lambda c: {**_settings(c.cfg.tune), "train": _settings(c.cfg.train)}, _tune,
          lambda c, out: (out / c.cfg.tune.model / "trials.json").is_file()),
    Stage("train", ("features", "tune"),
          lambda c: {m: asdict(c.train_settings(m)) for m in c.cfg.run.models} | {"workers": c.cfg.train.workers},
          _train, lambda c, out: all(is_trained(out / m) for m in c.cfg.run.models)),
    Stage("evaluate", ("features", "train"), lambda c: {"models": c.cfg.run.models, **_settings(c.cfg.evaluate)}, _evaluate,
          lambda c, out: (out / "report.html").is_file()),
)


def run_pipeline(cfg: Config, session: "SparkSession | Callable[[], SparkSession]", console: Console,
                 force: str | None = None) -> Path:
    """Runs every stage that is not current; returns the evaluation report's path. `session` may be a
    function that starts Spark: a run with nothing to do then starts no JVM."""
    run = Run(cfg, console, force)
    ctx = Context(cfg, run.root, console, session)
    for stage in PIPELINE:
        if stage.name == "tune" and not cfg.run.tune:
            continue
        inputs = tuple(i for i in stage.inputs if i != "tune" or cfg.run.tune)
        run.stage(stage.name, stage.settings(ctx), inputs, functools.partial(stage.run, ctx),
                  functools.partial(stage.present, ctx))
    _print_summary(console, run.root / "evaluate")
    console.print(f"done: outputs in {run.root}")
    return run.root / "evaluate" / "report.html"


def _print_summary(console: Console, out: Path) -> None:
    from topotrigger.evaluate.stage import EvaluateResult
    from topotrigger.reporting import print_evaluate

    metrics = json.loads((out / "metrics.json").read_text())
    print_evaluate(console, EvaluateResult(out, metrics))
