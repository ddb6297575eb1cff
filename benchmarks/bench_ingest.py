"""Ingestion throughput, side by side in one run on the same generated files.

(a) Spark -> Parquet on local[1] and local[2], two ways: the `topotrigger ingest` stage (tasks read
with uproot and write with pyarrow, planning from sizes on disk included) and the `root` data source
as a DataFrame written by Spark's Parquet writer; (b) one process: uproot -> pyarrow -> Parquet with
the same reader code; (c) Spark count() only through the data source. Reports events/s, events/s per
core, and the peak RSS of each Python worker (sampled from /proc while the job runs).

(d) with --peer: the `root` source against the `pyspark-root-datasource` package (a Spark 4 Python data
source for ROOT on uproot; `pip install pyspark-root-datasource`, benchmark only), same files, same
branches (the pipeline's), same Spark settings, each read forced whole by Spark's `noop` writer: once
with one partition per file for all, once with each source's own planning. Ours three times:
collections as `array<struct>` columns (its default), the same with every value declared nullable
(as the peer declares them: what declaring ROOT's values never-null gains), and `nested=false`, one
array column per branch, which is the peer's output.

Usage: python benchmarks/bench_ingest.py --data DIR [--events-per-class N] [--target-mb MB] [--peer [--rounds R]]
DIR is filled once with `topotrigger generate` (default profile), then files are copied until the
data set reaches --target-mb.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from topotrigger.ingest.paths import expand
from topotrigger.ingest.plan import scan
from topotrigger.ingest.reader import read_range
from topotrigger.ingest.stage import WRITER, pipeline_columns
from topotrigger.io.arrow_writer import TaskOutput
from topotrigger.io.arrow_writer import prepare as prepare_output  # this script has its own prepare()

SPARK_JOB = r"""
import json, sys, time
from topotrigger.config import SparkConfig
from topotrigger.runtime import get_spark
from topotrigger.config import IngestConfig
from topotrigger.ingest.stage import ingest, read_events, scan_on_spark
master, files, out, mode, partition_mb = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
# No fast-start profile here: its C1-only JIT and serial GC trade throughput for start-up time.
spark = get_spark(SparkConfig(master=master, driver_memory="4g", conf={"spark.ui.enabled": "false"}), out + ".run")
spark.range(1).count()  # warm the Python workers before timing
start = time.perf_counter()
if mode == "stage":
    # The classes are the generated directories; every copy of a file sits beside its original.
    n = sum(ingest(IngestConfig(partition_bytes=partition_mb * 2**20), sorted({f.rsplit("/", 1)[0] for f in files}), out, spark).counts.values())
else:
    infos, _ = scan_on_spark(spark, files, "Delphes", "stop")
    df = read_events(spark, infos, "Delphes", partition_mb * 2**20)
    if mode == "count":
        n = df.count()
    else:
        df.write.option("compression", "zstd").parquet(out)
        n = spark.read.parquet(out).count()
print(json.dumps({"events": n, "seconds": time.perf_counter() - start}))
spark.stop()
"""

PEER_JOB = r"""
import json, sys, time
from topotrigger.config import SparkConfig
from topotrigger.runtime import get_spark
from topotrigger.io.delphes import PIPELINE_COLLECTIONS
from pyspark_root_datasource.datasource import UprootDataSource

class Peer(UprootDataSource):  # both call themselves "root"
    @classmethod
    def name(cls):
        return "rootpeer"

master, files, source, planning, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
spark = get_spark(SparkConfig(master=master, driver_memory="4g", conf={"spark.ui.enabled": "false"}), out + ".run")
spark.dataSource.register(Peer)
branches = [f"{c}.{f}" for c, fields in PIPELINE_COLLECTIONS.items() for f in fields]


def frame(files, planning):
    if source.startswith("ours"):
        reader = spark.read.format("root").option("tree", "Delphes").option("branches", ",".join(branches))
        reader = reader.option("nested", "false" if source == "ours-flat" else "true")
        if planning == "per-file":
            reader = reader.option("plan", json.dumps([[{"path": f, "start": 0, "stop": 0, "part": 0, "parts": 1}] for f in files]))
        if source == "ours-nullable":  # the same columns with every value declared nullable, as the peer does
            from pyspark.sql.types import _parse_datatype_json_string
            text = reader.load(files).schema.json().replace('"nullable":false', '"nullable":true')
            reader = reader.schema(_parse_datatype_json_string(text.replace('"containsNull":false', '"containsNull":true')))
        return reader.load(files)
    reader = (spark.read.format("rootpeer").option("tree", "Delphes").option("columns", ",".join(branches))
              .option("path", ",".join(files)))
    if planning == "per-file":
        reader = reader.option("step_size", str(10**9))
    return reader.load()


# Warm up with the same source on two files, a task each: both Python workers have imported it (and
# uproot), the JVM has compiled its conversion of that schema. The timed read is then throughput,
# not start-up, which would otherwise be a third of it and the same for both sources.
frame(files[:2], "per-file").write.format("noop").mode("overwrite").save()
df = frame(files, planning)
partitions = df.rdd.getNumPartitions()
start = time.perf_counter()
df.write.format("noop").mode("overwrite").save()
seconds = time.perf_counter() - start
print(json.dumps({"events": df.count(), "seconds": seconds, "partitions": partitions}))
spark.stop()
"""


def run_peer(master: str, files: list[str], source: str, planning: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result, rss = run_sampling_rss([PEER_JOB, master, json.dumps(files), source, planning, f"{tmp}/out"])
    return result | {"peak_worker_rss_mb": rss}


def compare_with_peer(files: list[str], master: str = "local[2]", rounds: int = 1) -> dict:
    """Events/s of both sources, both plannings, printed side by side. With several rounds the eight runs
    alternate within each round, so the VM's drift shows in every one of them alike; ratios are per
    round, then their median."""
    names = [f"{source} {planning}" for planning in ("per-file", "own")
             for source in ("ours", "ours-nullable", "ours-flat", "peer")]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            source, planning = name.split()
            runs[name].append(run_peer(master, files, source, planning))
    print(f"{'source, planning':20} {'partitions':>10} {'events':>8} {'s (each round)':>22} {'ev/s (median)':>13} "
          f"{'peak RSS MB':>11}")
    for name, rs in runs.items():
        seconds = [r["seconds"] for r in rs]
        print(f"{name:20} {rs[0]['partitions']:10d} {rs[0]['events']:8d} {' '.join(f'{s:6.1f}' for s in seconds):>22} "
              f"{rs[0]['events'] / statistics.median(seconds):13.0f} {max(r['peak_worker_rss_mb'] for r in rs):11.0f}")
    ratios: dict[str, list[float]] = {}
    for planning in ("per-file", "own"):
        peer = runs[f"peer {planning}"]
        for layout in ("ours", "ours-nullable", "ours-flat"):
            ours = runs[f"{layout} {planning}"]
            if any(o["events"] != p["events"] for o, p in zip(ours, peer)):
                raise RuntimeError(f"the sources read different event counts: {ours[0]['events']} vs {peer[0]['events']}")
            each = [p["seconds"] / o["seconds"] for o, p in zip(ours, peer)]
            ratios[f"{layout} {planning}"] = each
            print(f"{planning}: {layout} / peer = {statistics.median(each):.2f}x (rounds: "
                  f"{', '.join(f'{r:.2f}' for r in each)})")
        each = [n["seconds"] / o["seconds"] for o, n in zip(runs[f"ours {planning}"], runs[f"ours-nullable {planning}"])]
        print(f"{planning}: values declared never-null, speed-up = {statistics.median(each):.2f}x (rounds: "
              f"{', '.join(f'{r:.2f}' for r in each)})")
    return {"runs": runs, "ratios": ratios}


def python_worker_rss() -> dict[int, int]:
    rss = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"pyspark" not in cmd or b"daemon" not in cmd and b"worker" not in cmd:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss[int(pid)] = int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss


def run_sampling_rss(args: list[str]) -> tuple[dict, float]:
    """Run a Spark job script; return the JSON of its last output line and the peak Python worker RSS (MB)."""
    peak: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid, rss in python_worker_rss().items():
                peak[pid] = max(peak.get(pid, 0), rss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1]), max(peak.values(), default=0) / 2**20


def run_spark(master: str, files: list[str], mode: str, partition_mb: int = 128) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result, rss = run_sampling_rss([SPARK_JOB, master, json.dumps(files), f"{tmp}/out", mode, str(partition_mb)])
    return result | {"peak_worker_rss_mb": rss}


def run_single_process(files: list[str]) -> dict:
    import resource

    columns = pipeline_columns()
    infos, _ = scan(files, "Delphes", columns)
    start = time.perf_counter()
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        prepare_output(tmp)
        writer = TaskOutput(tmp, partition=0, **WRITER)  # the stage's writer and its settings, for a like-for-like (b)
        for info in infos:
            for batch in read_range(info.path, "Delphes", columns, 0, info.entries):
                writer.write(batch)
                n += batch.num_rows
        writer.close()
    return {"events": n, "seconds": time.perf_counter() - start,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def prepare(data: Path, events: int, target_mb: int) -> list[str]:
    if not (data / "generate" / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "topotrigger", "--fast-start", "--master", "local[2]", "--run-dir", str(data),
                        "generate", "--events", str(events), "--files-per-class", "4"], check=True)
    # Copies from an earlier run sit beside the originals: only the generated files are copied.
    base = [f for f in expand([str(data / "generate" / c) for c in ("qcd", "ttbar", "wjets")]) if "_copy" not in Path(f).stem]
    size = sum(os.path.getsize(f) for f in base)
    copies = max(1, round(target_mb * 2**20 / size))
    files = []
    for i in range(copies):
        for f in base:
            copy = Path(f).with_name(f"{Path(f).stem}_copy{i}.root") if i else Path(f)
            if not copy.exists():
                shutil.copy(f, copy)
            files.append(str(copy))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/bench-ingest"))
    parser.add_argument("--events-per-class", type=int, default=6000)
    parser.add_argument("--target-mb", type=int, default=300)
    parser.add_argument("--partition-mb", type=int, default=128, help="uncompressed MB per Spark partition")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--peer", action="store_true", help="only the comparison with pyspark-root-datasource")
    parser.add_argument("--peer-master", default="local[2]", help="Spark master of the comparison with the peer")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the comparison with the peer")
    args = parser.parse_args()
    files = prepare(args.data, args.events_per_class, args.target_mb)
    if args.peer:
        result = compare_with_peer(files, args.peer_master, args.rounds)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return
    total_mb = sum(os.path.getsize(f) for f in files) / 2**20
    print(f"{len(files)} files, {total_mb:.0f} MB, partitions of {args.partition_mb} MB uncompressed", flush=True)
    rows = {"files": len(files), "megabytes": total_mb}
    rows["single_process"] = run_single_process(files)
    for master, cores in (("local[1]", 1), ("local[2]", 2)):
        rows[f"stage_{master}"] = run_spark(master, files, "stage", args.partition_mb) | {"cores": cores}
    for master, cores in (("local[1]", 1), ("local[2]", 2)):
        rows[f"source_{master}"] = run_spark(master, files, "write", args.partition_mb) | {"cores": cores}
    rows["spark_count_local[2]"] = run_spark("local[2]", files, "count", args.partition_mb) | {"cores": 2}
    base = rows["single_process"]["events"] / rows["single_process"]["seconds"]
    print(f"{'run':24} {'events':>9} {'s':>7} {'ev/s':>9} {'ev/s/core':>9} {'/ single':>8} {'peak RSS MB':>11}")
    for name, r in rows.items():
        if not isinstance(r, dict):
            continue
        rate = r["events"] / r["seconds"]
        per_core = rate / r.get("cores", 1)
        rss = r.get("peak_worker_rss_mb", r.get("peak_rss_mb", 0))
        print(f"{name:24} {r['events']:9d} {r['seconds']:7.1f} {rate:9.0f} {per_core:9.0f} {per_core / base:8.2f} {rss:11.0f}")
    for way in ("stage", "source"):
        l1 = rows[f"{way}_local[1]"]["seconds"]
        l2 = rows[f"{way}_local[2]"]["seconds"]
        print(f"{way}: local[2] speed-up over local[1]: {l1 / l2:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
