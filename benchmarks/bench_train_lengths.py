"""Training-loop throughput at real particle multiplicities, on CPU threads or a GPU, without Spark.

The cost of a training step depends on the batch's shapes, not on the values: events are drawn with
the lengths of a real features dataset (`--lengths`, an .npy of particle counts per event, e.g. the
default-profile events with pile-up) and random feature values. For each model, thread count and
batch size, events/s of forward + backward + Adam step, with batches in random order and with
length-bucketed batches (events of similar length together: chunks of 50 batches sorted by length,
batch order shuffled), which is what `train` does (`train/data.py`). Runs wherever PyTorch does: the
models (`topotrigger.train.models`) need only torch.

Usage: python benchmarks/bench_train_lengths.py --lengths L.npy [--device cuda] [--threads 1,2]
       [--batch-sizes 64,256,1024] [--models inclusive] [--events 4000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from topotrigger.features.kernels.definitions import N_CLASSES, N_HLF, N_PARTICLE_FEATURES
from topotrigger.train.models import build_model

REFERENCE = {"cpu": 31.0, "cuda": 2800.0}  # 2020: inclusive GRU, events/s per CPU core; on one T4 GPU


def make_batches(lengths: np.ndarray, events: int, batch_size: int, bucketed: bool, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    n = rng.choice(lengths, size=events)
    order = rng.permutation(events)
    if bucketed:
        groups = []
        for lo in range(0, events, 50 * batch_size):
            chunk = order[lo:lo + 50 * batch_size]
            chunk = chunk[np.argsort(n[chunk], kind="stable")]
            groups += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(groups)
    else:
        groups = [order[i:i + batch_size] for i in range(0, events, batch_size)]
    out = []
    for index in groups:
        lens = torch.from_numpy(n[index].astype(np.int64))
        particles = torch.zeros(len(index), int(lens.max()), N_PARTICLE_FEATURES)
        mask = torch.arange(particles.shape[1])[None, :] < lens[:, None]
        particles[mask] = torch.randn(int(lens.sum()), N_PARTICLE_FEATURES)
        out.append((torch.randn(len(index), N_HLF), particles, lens, torch.from_numpy(rng.integers(0, N_CLASSES, len(index)))))
    return out


def throughput(model_name: str, batches: list[tuple], device: torch.device, gru: str = "auto") -> float:
    torch.manual_seed(0)
    model = build_model(model_name).to(device)
    if gru != "auto":  # the GRU over packed sequences, over all the batch's padded steps, or in slices of 32 (models.py)
        model.packed = gru == "packed"
        model.chunk_steps = 32 if gru == "sliced" else 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    moved = [tuple(t.to(device) for t in b) for b in batches]

    def step(b: tuple) -> None:
        hlf, particles, lengths, labels = b
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(hlf, particles, lengths), labels).backward()
        optimizer.step()

    step(moved[0])  # warm-up: allocations, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, n = time.perf_counter(), 0
    for b in moved[1:]:
        step(b)
        n += len(b[3])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--batch-sizes", default="64,256,1024")
    parser.add_argument("--models", default="inclusive")
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--gru", default="auto", help="GRU models: auto, packed, padded and/or sliced, comma-separated")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lengths = np.load(args.lengths)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"{len(lengths)} real events: mean {lengths.mean():.0f} particles, 5-95 % {np.percentile(lengths, 5):.0f}-"
          f"{np.percentile(lengths, 95):.0f}, max {lengths.max()}; device {name}; torch {torch.__version__}", flush=True)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for model, gru in [(m, g) for m in args.models.split(",") for g in (args.gru.split(",") if m != "transformer" else ["auto"])]:
            for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
                for bucketed in (False, True):
                    batches = make_batches(lengths, args.events + batch_size, batch_size, bucketed)
                    rate = throughput(model, batches, device, gru)
                    per = rate / threads if device.type == "cpu" else rate
                    rows.append({"model": model, "gru": gru, "threads": threads, "batch_size": batch_size, "bucketed": bucketed,
                                 "events_per_s": rate, "per_core" if device.type == "cpu" else "per_gpu": per})
                    ref = REFERENCE[device.type] if model == "inclusive" else None
                    print(f"{model:12} {gru:7} threads {threads:2d} batch {batch_size:5d} {'bucketed' if bucketed else 'random  '} "
                          f"{rate:9.0f} events/s ({per:8.0f} per {'core' if device.type == 'cpu' else 'GPU'}"
                          + (f", {per / ref:5.1f}x the 2020 figure)" if ref else ")"), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
