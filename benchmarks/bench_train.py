"""Training throughput on CPU, side by side in one run on the same features dataset.

1. Events/s of one training pass for each model, one process, one thread (per-core figures).
2. The inclusive model at real sequence length vs the same model fed 801 zero-padded steps
   (what the 2019 models did), same batches.
3. One vs two DDP workers (TorchDistributor, local mode, one thread each): scaling efficiency.

Usage: python benchmarks/bench_train.py --data FEATURES_DIR [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from topotrigger.train.data import Batch, ParquetEvents
from topotrigger.train.models import MODELS, USES_PARTICLES, build_model

REFERENCE_CPU_EVENTS_PER_CORE = 31.0  # 2019: ~740 events/s with 4 TF workers on a 24-core box


def batches(data_dir: str, events: int, particles: bool, batch_size: int = 128) -> list[Batch]:
    out, n = [], 0
    for batch in ParquetEvents(f"{data_dir}/train", batch_size, shuffle=False, with_particles=particles):
        out.append(batch)
        n += len(batch.labels)
        if n >= events:
            break
    return out


def pad801(batch: Batch) -> Batch:
    padded = torch.zeros(batch.particles.shape[0], 801, batch.particles.shape[2])
    padded[:, : batch.particles.shape[1]] = batch.particles
    return Batch(batch.hlf, padded, torch.full_like(batch.lengths, 801), batch.labels)


def throughput(name: str, data: list[Batch]) -> float:
    torch.manual_seed(0)
    model = build_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start, n = time.perf_counter(), 0
    for batch in data:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch.hlf, batch.particles, batch.lengths), batch.labels)
        loss.backward()
        optimizer.step()
        n += len(batch.labels)
    return n / (time.perf_counter() - start)


def ddp(data_dir: str, model: str, workers: int) -> float:
    from pyspark.sql import SparkSession  # noqa: F401  (TorchDistributor needs pyspark importable)

    from topotrigger.config import SparkConfig
    from topotrigger.runtime import get_spark
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.stage import train

    with tempfile.TemporaryDirectory() as tmp:
        spark = get_spark(SparkConfig(master="local[2]", fast_start=True), tmp)
        history = train(TrainSettings(model=model, epochs=2, batch_size=128), data_dir, f"{tmp}/m", workers, spark)
    return history["epochs"][-1]["events_per_s"]  # second epoch: no start-up cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--events", type=int, default=2560)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    rows: dict = {"per_model": {}}
    with_particles = batches(args.data, args.events, True)
    hlf_only = batches(args.data, args.events, False)
    for name in MODELS:
        data = with_particles if USES_PARTICLES[name] else hlf_only
        if name in ("particle", "inclusive", "transformer"):
            data = data[: max(1, len(data) // 4)]  # sequence models are slower: a quarter is enough to time
        rows["per_model"][name] = throughput(name, data)
    sample = with_particles[: max(1, len(with_particles) // 8)]
    real = throughput("inclusive", sample)
    padded = throughput("inclusive", [pad801(b) for b in sample])
    rows["inclusive_real_vs_801"] = {"real_events_per_s": real, "padded_events_per_s": padded, "speedup": real / padded}
    rows["mean_particles_per_event"] = float(torch.cat([b.lengths for b in with_particles]).float().mean())
    for model in ("hlf", "inclusive"):
        one, two = ddp(args.data, model, 1), ddp(args.data, model, 2)
        rows[f"ddp_{model}"] = {"1_worker": one, "2_workers": two, "efficiency": two / (2 * one)}
    print(f"mean real particles per event: {rows['mean_particles_per_event']:.0f}")
    print(f"{'model':12} {'events/s/core':>13} {'vs 2019 CPU (31/core)':>22}")
    for name, rate in rows["per_model"].items():
        print(f"{name:12} {rate:13.0f} {rate / REFERENCE_CPU_EVENTS_PER_CORE:21.0f}x")
    r = rows["inclusive_real_vs_801"]
    print(f"inclusive real length {r['real_events_per_s']:.0f} ev/s vs 801 padded steps {r['padded_events_per_s']:.1f} ev/s: {r['speedup']:.1f}x")
    for model in ("hlf", "inclusive"):
        d = rows[f"ddp_{model}"]
        print(f"DDP {model}: 1 worker {d['1_worker']:.0f} ev/s, 2 workers {d['2_workers']:.0f} ev/s, efficiency {d['efficiency']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
