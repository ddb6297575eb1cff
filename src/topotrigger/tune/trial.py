"""One trial, run inside a Spark task: a seeded sample of the training split, cached on the
executor's local disk and shared by the trials that land there, then a single-threaded training.

The sample is `fraction` of DATA/train (at least `min_events`), split 80/20 into the trial's
training and validation events (its `train/` and `val/`); the test split is never looked at while tuning.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from topotrigger.io import storage
from topotrigger.io.manifest import digest

VALIDATION_SHARE = 0.2


def sample_dataset(data_dir: str, fraction: float, min_events: int, seed: int, cache_root: str | None = None) -> Path:
    filesystem, files = storage.parquet_files(f"{data_dir}/train")
    sizes = [filesystem.get_file_info(f).size for f in files]
    key = digest([data_dir, files, sizes, fraction, min_events, seed, "train+val"])[:16]
    target = Path(cache_root or tempfile.gettempdir()) / "topotrigger-tune-cache" / key
    if (target / "_SUCCESS").is_file():
        return target
    metas = [pq.ParquetFile(f, filesystem=filesystem) for f in files]
    total = sum(m.metadata.num_rows for m in metas)
    keep = min(1.0, max(fraction, min_events / max(total, 1)))
    rng = np.random.default_rng(seed)
    parts = []
    for meta in metas:
        for group in range(meta.num_row_groups):
            rows = meta.metadata.row_group(group).num_rows
            chosen = np.flatnonzero(rng.random(rows) < keep)
            if len(chosen):
                parts.append(meta.read_row_group(group).take(pa.array(chosen)))
    table = pa.concat_tables(parts) if parts else metas[0].schema_arrow.empty_table()
    validation = rng.random(table.num_rows) < VALIDATION_SHARE
    tmp = target.with_name(f"{key}.tmp-{os.getpid()}")
    for split, mask in (("train", ~validation), ("val", validation)):
        (tmp / split).mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(mask)), tmp / split / "part-0.parquet")
    (tmp / "_SUCCESS").write_text("")
    try:
        os.rename(tmp, target)
    except OSError:  # another task on this executor cached the same sample first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def run_trial(trial: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration; a failure becomes a failed record, never an exception."""
    import torch

    from topotrigger.train.loop import TrainSettings, run_training
    from topotrigger.tune.space import split_params

    torch.set_num_threads(1)  # one trial per task slot
    start = time.perf_counter()
    record: dict[str, Any] = {"trial_id": trial["trial_id"], "index": trial["index"], "params": trial["params"],
                              "host": socket.gethostname()}
    workdir = Path(tempfile.mkdtemp(prefix="topotrigger-trial-"))
    try:
        sample = sample_dataset(job["data_dir"], job["sample_fraction"], job["min_sample_events"], job["seed"])
        training, model_params = split_params(trial["params"])
        settings = TrainSettings(model=job["model"], seed=job["seed"], params=model_params,
                                 **{"epochs": job["epochs"], "batch_size": job["batch_size"], "lr": job["lr"], **training})
        history = run_training(settings, str(sample), str(workdir), quiet=True)
        best = min(history["epochs"], key=lambda e: e["val_loss"])
        record.update(status="ok", reason="", val_loss=best["val_loss"], val_accuracy=best["val_accuracy"],
                      val_auc=best["val_auc"], mean_val_auc=float(np.nanmean(best["val_auc"])),
                      epochs_run=len(history["epochs"]), best_epoch=best["epoch"])
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        record.update(status="failed", reason=f"{type(exc).__name__}: {reason}"[:500],
                      traceback=traceback.format_exc(limit=3)[-2000:])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record["seconds"] = time.perf_counter() - start
    return record


def run_trials(rows: Iterator[str], job: dict[str, Any]) -> Iterator[str]:
    """A Spark partition of JSON trials in, JSON records out."""
    for row in rows:
        yield json.dumps(run_trial(json.loads(row), job))
