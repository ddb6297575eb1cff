"""Features throughput, side by side in one run on the same ingested events.

1. Kernel vs the per-event Python reference (tests/features/reference.py), one core, same events.
2. End to end (ingested Parquet -> training Parquet) with the Spark stage on local[1] and local[2],
   with the peak RSS of the Python workers.
3. Bytes per training event on disk: compact layout vs the 2020 anchor layout.

Usage: python benchmarks/bench_features.py --ingested DIR [--reference-events N]
DIR is an `ingest` output (e.g. from `python benchmarks/bench_ingest.py`, then `topotrigger ingest`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_ingest import run_sampling_rss
from tests.features.reference import event_features
from topotrigger.features.arrow import collections_of
from topotrigger.features.kernels.events import compute
from topotrigger.io.delphes import PIPELINE_COLLECTIONS

SPARK_JOB = r"""
import json, sys, time
from topotrigger.config import FeaturesConfig, SparkConfig
from topotrigger.runtime import get_spark
from topotrigger.features.stage import features
master, src, out, layout = sys.argv[1:5]
# No fast-start profile here: its C1-only JIT and serial GC trade throughput for start-up time.
spark = get_spark(SparkConfig(master=master, driver_memory="4g", conf={"spark.ui.enabled": "false"}), out + ".run")
spark.range(1).count()
start = time.perf_counter()
result = features(FeaturesConfig(layout=layout), src, out, spark)
print(json.dumps({"events": result.events_in, "seconds": time.perf_counter() - start}))
"""


def kernel_vs_reference(ingested: Path, n: int) -> dict:
    import pyarrow as pa

    # The same number of events from every class: the cost per event differs a lot between them.
    parts = []
    for label_dir in sorted(p for p in ingested.iterdir() if p.name.startswith("label=")):
        first = sorted(label_dir.glob("*.parquet"))[0]
        parts.append(pq.read_table(first, columns=list(PIPELINE_COLLECTIONS)).slice(0, n // 3))
    table = pa.concat_tables(parts).combine_chunks()
    batch = table.to_batches()[0]
    compute(collections_of(batch))  # compile
    times = []
    for _ in range(7):  # one pass is a few tens of ms: the median of several is steadier
        start = time.perf_counter()
        fast = compute(collections_of(batch))
        times.append(time.perf_counter() - start)
    kernel_s = sorted(times)[len(times) // 2]
    events = table.to_pylist()
    start = time.perf_counter()
    ref = [event_features(e) for e in events]
    reference_s = time.perf_counter() - start
    assert [r[0] for r in ref] == fast.cut.tolist()
    return {"events": len(events), "kernel_s": kernel_s, "reference_s": reference_s,
            "kernel_events_per_s": len(events) / kernel_s, "reference_events_per_s": len(events) / reference_s,
            "speedup": reference_s / kernel_s}


def run_stage(master: str, ingested: Path, layout: str, tmp: Path) -> dict:
    out = tmp / f"{master.replace('[', '').replace(']', '')}-{layout}"
    result, rss = run_sampling_rss([SPARK_JOB, master, str(ingested), str(out), layout])
    meta = json.loads((out / "metadata.json").read_text())
    n_train = sum(meta["counts"]["train"].values())
    result["train_events"] = n_train
    result["train_bytes_per_event"] = sum(p.stat().st_size for p in (out / "train").rglob("*.parquet")) / max(n_train, 1)
    result["peak_worker_rss_mb"] = rss
    result["timings_s"] = meta.get("timings_s", {})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingested", type=Path, required=True)
    parser.add_argument("--reference-events", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {"kernel_vs_reference": kernel_vs_reference(args.ingested, args.reference_events)}
    with tempfile.TemporaryDirectory() as tmp:
        for master, cores in (("local[1]", 1), ("local[2]", 2)):
            rows[f"stage_{master}"] = run_stage(master, args.ingested, "compact", Path(tmp)) | {"cores": cores}
        rows["stage_local[2]_anchor"] = run_stage("local[2]", args.ingested, "anchor", Path(tmp)) | {"cores": 2}
    k = rows["kernel_vs_reference"]
    print(f"kernel {k['kernel_events_per_s']:.0f} events/s vs reference {k['reference_events_per_s']:.1f} events/s "
          f"on {k['events']} events: {k['speedup']:.0f}x")
    print(f"{'run':24} {'events':>8} {'s':>7} {'ev/s':>8} {'ev/s/core':>9} {'train B/event':>13} {'peak RSS MB':>11}")
    for name, r in rows.items():
        if name.startswith("stage"):
            rate = r["events"] / r["seconds"]
            print(f"{name:24} {r['events']:8d} {r['seconds']:7.1f} {rate:8.0f} {rate / r['cores']:9.0f} "
                  f"{r['train_bytes_per_event']:13.0f} {r['peak_worker_rss_mb']:11.0f}  {r['timings_s']}")
    print(f"local[2] speed-up over local[1]: {rows['stage_local[1]']['seconds'] / rows['stage_local[2]']['seconds']:.2f}x; "
          f"compact / anchor bytes per event: {rows['stage_local[2]']['train_bytes_per_event'] / rows['stage_local[2]_anchor']['train_bytes_per_event']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
