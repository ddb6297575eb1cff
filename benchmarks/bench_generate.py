"""Generation throughput per class and profile, and where the time goes (one core, in-process).

Usage: python benchmarks/bench_generate.py [--events N] [--profiles fast,full] [--classes ...]
Prints a table of events written per core-second and the share of time in Pythia, the detector
simulation (with jets) and writing, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from topotrigger.generate.stage import FileTask, _events, file_seed
from topotrigger.generate.writer import write_tree


def measure(process: str, profile: str, events: int, out: Path) -> dict[str, float]:
    task = FileTask(process, 0, events, file_seed(1, process, 0), profile, 0.0, str(out / f"{process}.root"))
    stats = {"pythia_s": 0.0, "detector_s": 0.0, "write_s": 0.0}
    start = time.perf_counter()
    write_tree(Path(task.path), _events(task, stats))
    wall = time.perf_counter() - start
    return {"process": process, "profile": profile, "events": stats["events"], "wall_s": wall,
            "events_per_core_s": stats["events"] / wall, "pythia_s": stats["pythia_s"],
            "detector_s": stats["detector_s"], "write_s": stats["write_s"],
            "overhead_vs_pythia": (stats["detector_s"] + stats["write_s"]) / stats["pythia_s"],
            "filter_efficiency": stats["events"] / stats["tried"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--profiles", default="fast,full")
    parser.add_argument("--classes", default="ttbar,wjets,qcd")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        measure("wjets", "fast", 50, Path(tmp))  # warm-up: imports, first FastJet call
        for profile in args.profiles.split(","):
            for process in args.classes.split(","):
                rows.append(measure(process, profile, args.events, Path(tmp)))
    print(f"{'class':6} {'profile':7} {'events':>6} {'ev/core-s':>9} {'pythia %':>8} {'det+jets %':>10} {'write %':>7} "
          f"{'(det+write)/pythia':>18} {'filter eff':>10}")
    for r in rows:
        total = r["pythia_s"] + r["detector_s"] + r["write_s"]
        print(f"{r['process']:6} {r['profile']:7} {r['events']:6d} {r['events_per_core_s']:9.1f} "
              f"{100 * r['pythia_s'] / total:8.1f} {100 * r['detector_s'] / total:10.1f} {100 * r['write_s'] / total:7.1f} "
              f"{r['overhead_vs_pythia']:18.3f} {r['filter_efficiency']:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
