"""Framework comparison, side by side in one run, same data, same cores (local[2]): time to reach a
validation AUC target (mean over the classes, on val/), then the test-split figures that `evaluate`
reports (AUC and accuracy with bootstrap intervals), for the HLF classifier in PyTorch (1 and 2 DDP
workers), Spark MLlib's MLP, random forest and one-vs-rest GBT, and XGBoost's Spark estimator. PyTorch
reaches the target at the end of some epoch (cumulative training seconds, validation excluded); the
Spark models are fitted once, so their time is the fit time and the target is reached only if their
validation AUC passes it.

Usage: python benchmarks/bench_frameworks.py --data FEATURES_DIR [--target 0.98]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from topotrigger.config import SparkConfig
from topotrigger.evaluate.stage import evaluate
from topotrigger.runtime import get_spark
from topotrigger.sparkml.stage import fit_and_save
from topotrigger.train.loop import TrainSettings
from topotrigger.train.stage import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-frameworks-"))
    spark = get_spark(SparkConfig(master="local[2]"), work)
    rows = {}
    for workers in (1, 2):
        start = time.perf_counter()
        history = train(TrainSettings(model="hlf", epochs=args.epochs, batch_size=64, lr=3e-3, patience=100),
                        args.data, str(work / f"hlf{workers}"), workers, spark)
        wall = time.perf_counter() - start
        cumulative, reached = 0.0, None
        for epoch in history["epochs"]:
            cumulative += epoch["seconds"]
            if reached is None and np.mean(epoch["val_auc"]) >= args.target:
                reached = cumulative
        last = history["epochs"][-1]
        rows[f"hlf (PyTorch, {workers} worker{'s' * (workers > 1)})"] = {
            "model_dir": str(work / f"hlf{workers}"), "seconds_to_target": reached, "train_seconds": cumulative, "wall_seconds": wall,
            "val_mean_auc": float(np.mean(last["val_auc"])), "val_auc": last["val_auc"],
            "val_accuracy": last["val_accuracy"]}
    for name in ("mllib-mlp", "mllib-rf", "mllib-gbt", "xgboost"):
        start = time.perf_counter()
        _, history = fit_and_save(name, {}, args.data, str(work / name), spark)
        wall = time.perf_counter() - start
        record = history["epochs"][0]
        mean_auc = float(np.mean(record["val_auc"]))
        rows[name] = {"model_dir": str(work / name), "seconds_to_target": record["seconds"] if mean_auc >= args.target else None,
                      "train_seconds": record["seconds"], "wall_seconds": wall, "val_mean_auc": mean_auc,
                      "val_auc": record["val_auc"], "val_accuracy": record["val_accuracy"]}
    # The test split, read once, by evaluate only: the figures a user would get.
    result = evaluate([row.pop("model_dir") for row in rows.values()], args.data, str(work / "evaluate"), spark=spark)
    for row, metrics in zip(rows.values(), result.metrics["models"].values()):
        row["test"] = {"accuracy": metrics["accuracy"], "auc": metrics["auc"], "intervals": metrics["intervals"]}
    spark.stop()
    print(json.dumps({"target_mean_auc": args.target, "cores": 2, "test_events": result.metrics["events"],
                      "models": rows}, indent=2))


if __name__ == "__main__":
    main()
