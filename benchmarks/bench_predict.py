"""Inference throughput: Spark `predict` (mapInArrow) on local[1] and local[2] vs in-process scoring
of the same training-layout dataset, for an HLF and an inclusive model. Events/s per core.

The models are trained for one epoch first (the weights do not change the cost of inference).

Usage: python benchmarks/bench_predict.py --data FEATURES_DIR [--split train]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from topotrigger.config import SparkConfig
from topotrigger.evaluate.stage import score_dataset
from topotrigger.predict.stage import predict
from topotrigger.runtime import get_spark
from topotrigger.train.loop import TrainSettings
from topotrigger.train.saved import SavedModel
from topotrigger.train.stage import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--models", default="hlf,inclusive")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    results: dict[str, dict[str, float]] = {}
    models = {}
    for name in args.models.split(","):
        models[name] = work / "models" / name
        train(TrainSettings(model=name, epochs=1, batch_size=256), args.data, str(models[name]))
    torch.set_num_threads(1)
    for name, model_dir in models.items():
        start = time.perf_counter()
        probabilities, _ = score_dataset(SavedModel.load(model_dir), f"{args.data}/{args.split}")
        seconds = time.perf_counter() - start
        results[name] = {"events": len(probabilities), "in_process_per_core": len(probabilities) / seconds}
    for cores in (1, 2):
        spark = get_spark(SparkConfig(master=f"local[{cores}]"), work / f"spark{cores}")
        for name, model_dir in models.items():
            predict(str(model_dir), f"{args.data}/{args.split}", str(work / "warm"), spark, overwrite=True)  # JIT, workers
            start = time.perf_counter()
            result = predict(str(model_dir), f"{args.data}/{args.split}", str(work / f"scores-{cores}"), spark, overwrite=True)
            seconds = time.perf_counter() - start
            results[name][f"spark_local{cores}_per_core"] = result.events / seconds / cores
        spark.stop()
    for r in results.values():
        r["spark_local1_vs_in_process"] = r["spark_local1_per_core"] / r["in_process_per_core"]
        r["local2_vs_local1"] = 2 * r["spark_local2_per_core"] / r["spark_local1_per_core"]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
