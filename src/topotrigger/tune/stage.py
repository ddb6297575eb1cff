"""The `tune` stage: grid, random or Optuna (TPE) search, trials in waves of Spark tasks.

    OUT/trials.json     every finished trial (parameters, status, reason, metrics, seconds), rewritten
                        atomically after each wave: a rerun resumes and never redoes a finished trial
    OUT/trials.parquet  the same as a table, one row per trial (also trials.csv)
    OUT/best.json       the best trial's parameters, in the form `topotrigger train --params` reads
    OUT/tune.png        objective per trial and its best-so-far

The objective is the best validation loss of a trial (lower is better); failed trials (diverged,
out of memory...) are recorded with their reason and never stop the search.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from topotrigger._optional import require
from topotrigger.config import TuneConfig
from topotrigger.errors import ConfigError, InputError
from topotrigger.io import storage
from topotrigger.io.atomic import atomic_path, write_json
from topotrigger.io.manifest import digest
from topotrigger.runtime.tasks import default_parallelism, run_tasks
from topotrigger.train.loop import TrainSettings
from topotrigger.train.stage import check_inputs
from topotrigger.tune.space import grid, load_space, random_trials, split_params, trial_id
from topotrigger.tune.trial import run_trials

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class TuneResult:
    out: Path
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    ran: int


def _job(cfg: TuneConfig, data_dir: str, defaults: TrainSettings, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"model": cfg.model, "data_dir": data_dir, "sample_fraction": cfg.sample_fraction,
            "min_sample_events": cfg.min_sample_events, "seed": cfg.seed, "epochs": defaults.epochs,
            "batch_size": defaults.batch_size, "lr": defaults.lr, "dataset_digest": digest(metadata)}


def _run_wave(spark: "SparkSession", wave: list[dict[str, Any]], job: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [json.dumps(t) for t in wave]
    task = functools.partial(run_trials, job=job)
    return [json.loads(r) for r in run_tasks(spark, rows, task)]


def _save(out: Path, done: list[dict[str, Any]], job: dict[str, Any], space: dict[str, list[Any]]) -> dict[str, Any] | None:
    done = sorted(done, key=lambda r: r["index"])
    write_json(out / "trials.json", {"job": job, "space": space, "trials": done})
    ok = [r for r in done if r["status"] == "ok"]
    best = min(ok, key=lambda r: r["val_loss"]) if ok else None
    if best is not None:
        training, params = split_params(best["params"])
        write_json(out / "best.json", {"model": job["model"], "params": params, **training,
                                       "val_loss": best["val_loss"], "val_auc": best["val_auc"],
                                       "trial_id": best["trial_id"]})
    table = pd.DataFrame([{"index": r["index"], "trial_id": r["trial_id"], "status": r["status"], "reason": r["reason"],
                           **{f"param_{k}": v for k, v in r["params"].items()},
                           "val_loss": r.get("val_loss"), "val_accuracy": r.get("val_accuracy"),
                           "mean_val_auc": r.get("mean_val_auc"), "epochs_run": r.get("epochs_run"),
                           "seconds": r["seconds"], "host": r["host"]} for r in done])
    with atomic_path(out / "trials.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    return best


def tune(cfg: TuneConfig, data_dir: str, out_dir: str, spark: "SparkSession", space_spec: str | None = None,
         defaults: TrainSettings | None = None, progress: Any = None) -> TuneResult:
    space = load_space(cfg.model, space_spec)
    defaults = defaults or TrainSettings(model=cfg.model)
    data_dir = storage.absolute(data_dir)
    info = check_inputs(TrainSettings(model=cfg.model), data_dir)
    job = _job(cfg, data_dir, defaults, info["metadata"])
    out = Path(storage.local_directory(out_dir, "tuning"))
    context = {k: v for k, v in job.items() if k != "data_dir"}

    previous = json.loads((out / "trials.json").read_text()) if (out / "trials.json").is_file() else {}
    done = {r["trial_id"]: r for r in previous.get("trials", [])}
    parallelism = cfg.parallelism or default_parallelism(spark)
    ran = 0

    def run(wave: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal ran
        results = _run_wave(spark, wave, job)
        ran += len(results)
        done.update({r["trial_id"]: r for r in results})
        _save(out, list(done.values()), job, space)
        if progress:
            progress(len(done), results)
        return results

    if cfg.search == "optuna":
        _optuna_search(cfg, space, context, done, parallelism, run)
    else:
        candidates = grid(space) if cfg.search == "grid" else random_trials(space, cfg.trials, cfg.seed)
        if cfg.search == "grid" and cfg.trials and cfg.trials < len(candidates):
            raise ConfigError(f"the grid has {len(candidates)} points but tune.trials = {cfg.trials}; "
                              "use search = random to sample it, or trials = 0 for the whole grid")
        trials = [{"index": i, "params": p, "trial_id": trial_id(p, context)} for i, p in enumerate(candidates)]
        pending = [t for t in trials if t["trial_id"] not in done]
        for lo in range(0, len(pending), parallelism):
            run(pending[lo:lo + parallelism])
        wanted = {t["trial_id"] for t in trials}
        done = {k: v for k, v in done.items() if k in wanted}
    if not done:
        raise InputError("no trial ran")
    best = _save(out, list(done.values()), job, space)
    _plot(out, sorted(done.values(), key=lambda r: r["index"]))
    return TuneResult(out, sorted(done.values(), key=lambda r: r["index"]), best, ran)


def _optuna_search(cfg: TuneConfig, space: dict[str, list[Any]], context: dict[str, Any],
                   done: dict[str, dict[str, Any]], parallelism: int, run: Any) -> None:
    """Optuna's ask-and-tell: ask a wave of `parallelism` trials, run them on Spark, tell the results."""
    optuna = require("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {k: optuna.distributions.CategoricalDistribution(v) for k, v in space.items()}
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed))
    by_index = sorted(done.values(), key=lambda r: r["index"])
    for r in by_index:  # a rerun: the study learns from the finished trials first
        state = optuna.trial.TrialState.COMPLETE if r["status"] == "ok" else optuna.trial.TrialState.FAIL
        study.add_trial(optuna.trial.create_trial(params=r["params"], distributions=distributions, state=state,
                                                  value=r.get("val_loss") if r["status"] == "ok" else None))
    index = max((r["index"] for r in by_index), default=-1) + 1
    asks = 0
    # TPE may propose a finished configuration again: it is told the known result and not rerun;
    # the ask budget ends the search when the space has fewer points than trials.
    while len(done) < cfg.trials and asks < 10 * cfg.trials:
        asked = [study.ask(distributions) for _ in range(min(parallelism, cfg.trials - len(done)))]
        asks += len(asked)
        wave, known, queued = [], {}, set()
        for trial in asked:
            params = dict(trial.params)
            tid = trial_id(params, context)
            if tid in done or tid in queued:
                known[trial.number] = tid
                continue
            queued.add(tid)
            wave.append({"index": index, "params": params, "trial_id": tid})
            index += 1
        results = {r["trial_id"]: r for r in (run(wave) if wave else [])}
        for trial in asked:
            tid = known.get(trial.number) or trial_id(dict(trial.params), context)
            record = results.get(tid) or done[tid]
            if record["status"] == "ok":
                study.tell(trial, record["val_loss"])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _plot(out: Path, trials: list[dict[str, Any]]) -> None:
    from topotrigger.evaluate.plots import _pyplot

    plt = _pyplot()
    ok = [t for t in trials if t["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(8, 5))
    if ok:
        x = [t["index"] for t in ok]
        y = [t["val_loss"] for t in ok]
        ax.scatter(x, y, s=18, label="trial")
        best, line = float("inf"), []
        for value in y:
            best = min(best, value)
            line.append(best)
        ax.step(x, line, where="post", color="C3", label="best so far")
    failed = [t["index"] for t in trials if t["status"] != "ok"]
    if failed:
        ax.scatter(failed, [max((t["val_loss"] for t in ok), default=1.0)] * len(failed), marker="x", color="k",
                   label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=10)
    fig.tight_layout()
    with atomic_path(out / "tune.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
