"""Inference throughput: Spark `predict` (mapInArrow) on local[1] and local[2] vs in-process scoring
of the same training-layout dataset, and ONNX Runtime on the CPU (one thread: throughput at batches
of 256, and the latency of one event at a time, the figure a trigger farm asks for), per model.
Events/s per core.

The models are trained for one epoch first (the weights do not change the cost of inference).

Usage: python benchmarks/bench_predict.py --data FEATURES_DIR [--split train]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from topotrigger.config import SparkConfig
from topotrigger.evaluate.stage import score_dataset
from topotrigger.export.onnx import export_onnx, raw_inputs
from topotrigger.predict.stage import predict
from topotrigger.runtime import get_spark
from topotrigger.train.data import ParquetEvents
from topotrigger.train.loop import TrainSettings
from topotrigger.train.saved import SavedModel
from topotrigger.train.stage import train


def onnx_runtime(model_dir: Path, data: str, path: Path, single: int = 500) -> dict[str, float]:
    """ONNX Runtime, one thread, on the raw (unscaled) features: events/s at batches of 256, and the
    median and 99th-percentile latency of scoring one event (its own length, no padding)."""
    import onnxruntime as ort

    export_onnx(str(model_dir), str(path), data)
    saved = SavedModel.load(model_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = []
    for b in ParquetEvents(data, 256, shuffle=False, with_particles=saved.uses_particles):
        hlf, particles = raw_inputs(saved.info.scaler, b.hlf.numpy(), b.particles.numpy())
        feed = {"hlf": hlf}
        if saved.uses_particles:
            feed |= {"particles": particles, "lengths": b.lengths.numpy()}
        feeds.append(feed)
    session.run(None, feeds[0])  # first-run allocations
    start = time.perf_counter()
    events = sum(len(session.run(None, feed)[0]) for feed in feeds)
    throughput = events / (time.perf_counter() - start)
    latencies = []
    for feed in feeds:
        for i in range(len(feed["hlf"])):
            one = {"hlf": feed["hlf"][i:i + 1]}
            if "lengths" in feed:
                n = max(1, int(feed["lengths"][i]))
                one |= {"particles": feed["particles"][i:i + 1, :n], "lengths": feed["lengths"][i:i + 1]}
            start = time.perf_counter()
            session.run(None, one)
            latencies.append(time.perf_counter() - start)
            if len(latencies) == single:
                break
        if len(latencies) == single:
            break
    ms = np.asarray(latencies) * 1e3
    return {"onnx_per_core": throughput, "onnx_batch1_median_ms": float(np.median(ms)),
            "onnx_batch1_p99_ms": float(np.percentile(ms, 99))}


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
    for name, model_dir in models.items():
        results[name] |= onnx_runtime(model_dir, f"{args.data}/{args.split}", work / f"{name}.onnx")
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
