"""Features throughput, side by side in one run on the same ingested events.

1. Kernel vs the per-event Python reference (tests/features/reference.py), one core, same events.
2. End to end (ingested Parquet -> training Parquet) with the Spark stage on local[1] and local[2],
   with the peak RSS of the Python workers.
3. Bytes per training event on disk: compact layout vs the 2020 anchor layout.

4. With --original-2019 DIR: the 2019 feature code itself (`convert` of the public cerndb/SparkDLTrigger
   repository, run as it is on pyspark Rows of the same events, one core), beside the kernel: the
   figure the stage's rate is compared with, measured the same day on the same machine. DIR is that
   repository's DataIngestion_FeaturePreparation/ (utilFunctions.py and 1-DataIngestion.ipynb, whose
   `selection` and `convert` cells are run); none of that code is part of this project.

Usage: python benchmarks/bench_features.py --ingested DIR [--reference-events N] [--original-2019 DIR]
DIR is an `ingest` output (e.g. from `python benchmarks/bench_ingest.py`, then `topotrigger ingest`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
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


def sample_events(ingested: Path, n: int) -> pa.Table:
    """`n` events, the same number from every class (the cost per event differs a lot between them)."""

    parts = []
    for label_dir in sorted(p for p in ingested.iterdir() if p.name.startswith("label=")):
        first = sorted(label_dir.glob("*.parquet"))[0]
        part = pq.read_table(first, columns=list(PIPELINE_COLLECTIONS)).slice(0, n // 3)
        parts.append(part.append_column("label", pa.array([int(label_dir.name.split("=")[1])] * part.num_rows, pa.int32())))
    return pa.concat_tables(parts).combine_chunks()


def kernel_vs_reference(ingested: Path, n: int) -> dict:
    table = sample_events(ingested, n).drop_columns(["label"])
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


def original_2019(ingested: Path, n: int, source: Path) -> dict:
    """CPU time per event of the 2019 `convert` (selection, particle list with isolation, HLF) on pyspark
    Rows of `n` events, as its `rdd.map(convert)` got them (the Rows are built before timing), against
    the kernel's on the same events."""
    from pyspark.sql import Row

    notebook = json.loads((source / "1-DataIngestion.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    code = [c for c in cells if "def selection(" in c or "def convert(" in c]
    if len(code) != 2:
        raise SystemExit(f"{source}/1-DataIngestion.ipynb: the `selection` and `convert` cells were not found")
    sys.path.insert(0, str(source))  # its cells import utilFunctions
    namespace: dict = {}
    for cell in code:
        exec(compile(cell, str(source / "1-DataIngestion.ipynb"), "exec"), namespace)  # the code measured, as it is
    table = sample_events(ingested, n)

    def as_row(event: dict) -> Row:
        fields = {k: [Row(**o) for o in v] if isinstance(v, list) else v for k, v in event.items()}
        # Branches spark-root read beside the collections, which the 2019 selection looks at.
        fields["Electron_size"], fields["MuonTight_size"] = len(event["Electron"]), len(event["MuonTight"])
        return Row(**fields)

    rows = [as_row(e) for e in table.to_pylist()]
    convert = namespace["convert"]
    start = time.process_time()
    selected = sum(1 for r in rows if len(convert(r)) > 0)
    seconds = time.process_time() - start
    batch = table.drop_columns(["label"]).to_batches()[0]
    compute(collections_of(batch))  # compile
    kernel = min(_cpu(lambda: compute(collections_of(batch))) for _ in range(5))
    objects = sum(pc.sum(pc.list_value_length(table.column(c))).as_py()
                  for c in ("EFlowTrack", "EFlowPhoton", "EFlowNeutralHadron")) / table.num_rows
    return {"events": len(rows), "selected": selected, "objects_per_event": objects,
            "ms_per_event": seconds / len(rows) * 1e3, "events_per_s": len(rows) / seconds,
            "kernel_us_per_event": kernel / len(rows) * 1e6, "kernel_speedup": seconds / kernel}


def _cpu(function) -> float:
    start = time.process_time()
    function()
    return time.process_time() - start


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
    parser.add_argument("--original-2019", type=Path, help="cerndb/SparkDLTrigger's DataIngestion_FeaturePreparation/")
    parser.add_argument("--original-events", type=int, default=900)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {"kernel_vs_reference": kernel_vs_reference(args.ingested, args.reference_events)}
    if args.original_2019:
        rows["original_2019"] = original_2019(args.ingested, args.original_events, args.original_2019)
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
    if "original_2019" in rows:
        o = rows["original_2019"]
        print(f"2019 feature code: {o['ms_per_event']:.2f} ms per event ({o['events_per_s']:.1f} events/s per core) on "
              f"{o['events']} events of {o['objects_per_event']:.0f} objects; the kernel {o['kernel_us_per_event']:.1f} us "
              f"({o['kernel_speedup']:.0f}x); the stage, events/s per core / the 2019 code's: "
              + ", ".join(f"{name} {r['events'] / r['seconds'] / r['cores'] / o['events_per_s']:.1f}x"
                          for name, r in rows.items() if name.startswith("stage")))
    print(f"local[2] speed-up over local[1]: {rows['stage_local[1]']['seconds'] / rows['stage_local[2]']['seconds']:.2f}x; "
          f"compact / anchor bytes per event: {rows['stage_local[2]']['train_bytes_per_event'] / rows['stage_local[2]_anchor']['train_bytes_per_event']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
