"""A large ingest + features pass with bounded memory, at two data-set sizes.

The events are a `generate` output (default: the demo's) repeated: copy i of every file has every
azimuthal angle of every object turned by the same angle δ_i = 2π·frac(i·0.618…) (wrapped to
[-π, π)). A rotation about the beam axis is a symmetry of the physics and of the detector model, so
each copy holds valid, distinct events, and their keys (a hash of MET, leptons and jets, `features/
keys.py`) differ. Copy 0 is the original.

For each size: `topotrigger ingest` then `topotrigger features` (the CLI, one Spark application
each), reporting wall time, events/s, the peak RSS of each Python worker, of the driver's Python
and of the driver JVM (sampled from /proc every 0.5 s), Spark's own spill and shuffle byte
counts from its event log, and the bytes the features passes write in between (its metadata.json).

Usage: python benchmarks/bench_large.py --work DIR --sizes 200000,2000000 [--source RUN/generate]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from topotrigger.generate.writer import write_tree
from topotrigger.ingest.paths import expand

CLASSES = ("qcd", "ttbar", "wjets")
GOLDEN = (math.sqrt(5) - 1) / 2


def rotated(events: dict[str, ak.Array], angle: float) -> dict[str, ak.Array]:
    out = {}
    for name, records in events.items():
        fields = {f: records[f] for f in records.fields}
        if "Phi" in fields:
            fields["Phi"] = ak.values_astype((fields["Phi"] + angle + np.pi) % (2 * np.pi) - np.pi, np.float32)
        out[name] = ak.zip(fields)
    return out


def read_all(path: str) -> dict[str, ak.Array]:
    with uproot.open(path) as handle:
        tree = handle["Delphes"]
        keys = [k for k in tree.keys() if "." in k]  # noqa: SIM118 (a TTree, not a dict)
        collections = sorted({k.split(".", 1)[0] for k in keys})
        return {c: ak.zip({k.split(".", 1)[1]: tree[k].array() for k in keys if k.startswith(c + ".")})
                for c in collections}


def make_copies(source: Path, out: Path, copies: int) -> int:
    """Copies 0..copies-1 of every file of `source` under out/CLASS/; returns the events written."""
    events = 0
    for cls in CLASSES:
        (out / cls).mkdir(parents=True, exist_ok=True)
        for path in expand([str(source / cls)]):
            original = read_all(path)
            n = len(next(iter(original.values())))
            for i in range(copies):
                target = out / cls / f"{Path(path).stem}_phi{i:04d}.root"
                if not target.exists():
                    write_tree(target, [rotated(original, 2 * np.pi * ((i * GOLDEN) % 1.0))])
                events += n
    return events


def subset(copies_dir: Path, out: Path, copies: int) -> None:
    """Hard links to copies 0..copies-1 (the smaller size reads a prefix of the larger one)."""
    for cls in CLASSES:
        (out / cls).mkdir(parents=True, exist_ok=True)
        for path in sorted((copies_dir / cls).glob("*_phi*.root")):
            if int(path.stem.rsplit("_phi", 1)[1]) < copies and not (out / cls / path.name).exists():
                os.link(path, out / cls / path.name)


def rss_by_role() -> dict[str, dict[int, int]]:
    roles: dict[str, dict[int, int]] = {"python worker": {}, "driver python": {}, "driver JVM": {}}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        if b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd:
            roles["python worker"][int(pid)] = rss
        elif b"SparkSubmit" in cmd:
            roles["driver JVM"][int(pid)] = rss
        elif b"-m\x00topotrigger" in cmd:
            roles["driver python"][int(pid)] = rss
    return roles


def run_stage(args: list[str], log: Path) -> dict:
    peak: dict[str, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for role, pids in rss_by_role().items():
                for rss in pids.values():
                    peak[role] = max(peak.get(role, 0), rss)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "topotrigger", *args], stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed; see {log}")
    return {"seconds": seconds, "peak_rss_mb": {k: v / 2**20 for k, v in peak.items()}}


def spark_metrics(event_logs: Path) -> dict[str, float]:
    """Sums over every task of the applications logged in `event_logs`."""
    total = {"shuffle_write_mb": 0.0, "shuffle_read_mb": 0.0, "memory_spilled_mb": 0.0, "disk_spilled_mb": 0.0}
    for path in (p for p in event_logs.rglob("*") if p.is_file()):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event.get("Event") != "SparkListenerTaskEnd" or "Task Metrics" not in event:
                continue
            m = event["Task Metrics"]
            total["shuffle_write_mb"] += m["Shuffle Write Metrics"]["Shuffle Bytes Written"] / 2**20
            read = m["Shuffle Read Metrics"]
            total["shuffle_read_mb"] += (read["Remote Bytes Read"] + read["Local Bytes Read"]) / 2**20
            total["memory_spilled_mb"] += m["Memory Bytes Spilled"] / 2**20
            total["disk_spilled_mb"] += m["Disk Bytes Spilled"] / 2**20
    return total


def pass_over(inputs: Path, work: Path, master: str) -> dict:
    logs = work / "eventlog"
    logs.mkdir(parents=True, exist_ok=True)
    config = work / "spark.toml"
    config.write_text(f'[spark]\ndriver_memory = "4g"\nconf = {{"spark.eventLog.enabled" = "true", '
                      f'"spark.eventLog.dir" = "{logs.resolve().as_uri()}", '
                      '"spark.eventLog.compress" = "false", "spark.eventLog.rolling.enabled" = "false"}\n')
    result = {}
    for stage, args in (("ingest", ["-i", str(inputs), "--out", str(work / "ingest")]),
                        ("features", ["--input", str(work / "ingest"), "--out", str(work / "features")])):
        before = set(logs.iterdir())
        result[stage] = run_stage(["-c", str(config), "--master", master, stage, *args, "--overwrite"],
                                  work / f"{stage}.log")
        new = logs / "new"
        new.mkdir(exist_ok=True)
        for path in set(logs.iterdir()) - before - {new}:
            path.rename(new / path.name)
        result[stage]["spark"] = spark_metrics(new)
        for path in new.iterdir():
            path.rename(work / f"{stage}.eventlog")
        new.rmdir()
    stage_json = json.loads((work / "ingest" / "_manifest.json").read_text())
    result["events"] = int(sum(stage_json["counts"].values()))
    result["ingest_mb"] = sum(f.stat().st_size for f in (work / "ingest").rglob("*.parquet")) / 2**20
    result["features_mb"] = sum(f.stat().st_size for f in (work / "features").rglob("*.parquet")) / 2**20
    meta = json.loads((work / "features" / "metadata.json").read_text())
    result["features"]["timings_s"] = meta["timings_s"]
    result["features"]["intermediate_mb"] = {k: v / 2**20 for k, v in meta.get("intermediate_bytes", {}).items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--source", type=Path, default=Path("runs/demo/generate"))
    parser.add_argument("--sizes", default="200000,2000000", help="events per pass, comma-separated")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    per_copy = sum(uproot.open(p)["Delphes"].num_entries for c in CLASSES for p in expand([str(args.source / c)]))
    copies = {size: math.ceil(size / per_copy) for size in sizes}
    start = time.perf_counter()
    written = make_copies(args.source, args.work / "copies", max(copies.values()))
    print(f"{written} events in {max(copies.values())} rotated copies, {time.perf_counter() - start:.0f} s", flush=True)
    results = {}
    for size in sizes:
        inputs = args.work / f"inputs-{size}"
        subset(args.work / "copies", inputs, copies[size])
        results[size] = pass_over(inputs, args.work / f"pass-{size}", args.master)
        print(json.dumps({size: results[size]}, indent=2), flush=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
