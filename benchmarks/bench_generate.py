"""Generation throughput per class and profile, and where the time goes (one core, in-process).

Usage: python benchmarks/bench_generate.py [--events N] [--profiles cms,quick] [--classes ...] [--pileup MU]
Prints events written per core-second and the shares of time in Pythia, the pile-up overlay, the
detector, jets and writing, measured side by side in one run. The minimum-bias library is made once
before the timed runs (a worker pays it once, not per file) and its cost is printed on its own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from topotrigger.generate import pileup, processes
from topotrigger.generate.stage import FileTask, _events, file_seed
from topotrigger.generate.writer import write_tree

STEPS = ("pythia_s", "pileup_s", "detector_s", "jets_s", "write_s")
LIBRARY_SEED, LIBRARY_SIZE = file_seed(1, "minbias", 0), 1000


def measure(process: str, profile: str, mu: float, events: int, out: Path) -> dict[str, Any]:
    task = FileTask(process, 0, events, file_seed(1, process, 0), profile, mu, str(out / f"{process}.root"),
                    LIBRARY_SEED, LIBRARY_SIZE)
    stats: dict[str, Any] = {}
    start = time.perf_counter()
    write_tree(Path(task.path), _events(task, stats))
    wall = time.perf_counter() - start
    return {"process": process, "profile": profile, "pileup": mu, "events": stats["events"], "wall_s": wall,
            "events_per_core_s": stats["events"] / wall, **{k: stats[k] for k in STEPS},
            "particles_per_event": stats["particles"] / stats["events"],
            "multiplicity": {k: v / stats["events"] for k, v in stats["multiplicity"].items()},
            "bytes_per_event": Path(task.path).stat().st_size / stats["events"],
            "filter_efficiency": stats["events"] / stats["tried"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--profiles", default="cms,quick")
    parser.add_argument("--classes", default="ttbar,wjets,qcd")
    parser.add_argument("--pileup", type=float, default=None, help="override the profiles' default pile-up")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    pileup.library(LIBRARY_SEED, LIBRARY_SIZE)
    library_s = time.perf_counter() - start
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        measure("wjets", "quick", 0.0, 50, Path(tmp))  # warm-up: imports, first FastJet call
        for profile in args.profiles.split(","):
            mu = args.pileup if args.pileup is not None else processes.DEFAULT_PILEUP[profile]
            for process in args.classes.split(","):
                rows.append(measure(process, profile, mu, args.events, Path(tmp)))
    print(f"minimum-bias library: {LIBRARY_SIZE} events in {library_s:.1f} s (once per worker)")
    print(f"{'class':6} {'profile':7} {'mu':>4} {'events':>6} {'ev/core-s':>9} {'pythia%':>7} {'pileup%':>7} "
          f"{'detector%':>9} {'jets%':>5} {'write%':>6} {'not-pythia%':>11} {'particles':>9} {'kB/event':>8}")
    for r in rows:
        total = sum(r[k] for k in STEPS)
        share = {k: 100 * r[k] / total for k in STEPS}
        print(f"{r['process']:6} {r['profile']:7} {r['pileup']:4g} {r['events']:6d} {r['events_per_core_s']:9.1f} "
              f"{share['pythia_s']:7.1f} {share['pileup_s']:7.1f} {share['detector_s']:9.1f} {share['jets_s']:5.1f} "
              f"{share['write_s']:6.1f} {100 - share['pythia_s']:11.1f} {r['particles_per_event']:9.0f} "
              f"{r['bytes_per_event'] / 1e3:8.1f}")
    if args.json:
        args.json.write_text(json.dumps({"library_s": library_s, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
