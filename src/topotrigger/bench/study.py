"""The scalability study: `stages.py` on local[N] for each N of a cores sweep (default 1 and 2) and on a
2-worker standalone cluster, then throughput and parallel efficiency per stage, the comparison with
the published 2019-2020 figures, and an Amdahl projection (marked as such) to larger clusters.

    OUT/<config>/result.json   one pass (seconds and events/s per stage)
    OUT/bench.json             all passes, efficiencies, serial fractions, projections, references
    OUT/throughput.png, OUT/efficiency.png
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from topotrigger.errors import UserError
from topotrigger.io.atomic import atomic_path, write_json

# The published 2019–2020 figures (docs/performance.md), per core.
PUBLISHED = {
    "features": {"events_per_s_per_core": 12.0, "what": "2019 ingestion + features, Python UDFs (54.5 M events, 400 cores)"},
    "train": {"events_per_s_per_core": 740 / 24, "what": "2020 inclusive GRU on CPU, 4 workers on a 24-core box"},
}
PROJECT_TO = (8, 64, 400)
CLUSTER = ("cluster2", None, 2)


def configs(cores: tuple[int, ...] = (1, 2), cluster: bool = True) -> list[tuple[str, str | None, int]]:
    """(name, master, cores) of each pass: local[N] per N of the sweep, then the 2-worker cluster."""
    return [(f"local{n}", f"local[{n}]", n) for n in sorted(set(cores))] + ([CLUSTER] if cluster else [])


def _pass(name: str, master: str, cores: int, scale: float, out: Path) -> dict[str, Any]:
    target = out / name
    if (target / "result.json").is_file():  # finished earlier: resume the study
        cached: dict[str, Any] = json.loads((target / "result.json").read_text())
        return cached
    shutil.rmtree(target, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "topotrigger.bench.stages", "--master", master, "--cores", str(cores),
                           "--scale", str(scale), "--out", str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"benchmark pass {name} ({master}) failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads((target / "result.json").read_text())
    return result


def amdahl_serial_fraction(speedup: float, cores: int, base: int = 1) -> float:
    """s in T(n) = s + (1 - s) / n, from one measured speedup T(base) / T(cores); clipped to [0, 1]."""
    if speedup <= 0:
        return 1.0
    denominator = speedup - speedup / cores - 1.0 + 1.0 / base
    if denominator == 0:
        return 0.0
    return min(1.0, max(0.0, (1.0 / base - speedup / cores) / denominator))


def amdahl_speedup(serial: float, cores: int) -> float:
    return 1.0 / (serial + (1.0 - serial) / cores)


def summarise(passes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per stage: events/s per core and parallel efficiency of every pass against the local pass with
    the fewest cores; the speedup from it to the local pass with the most, and the Amdahl fit."""
    local = sorted((p["cores"], n) for n, p in passes.items() if n.startswith("local"))
    (n0, first), (n1, last) = local[0], local[-1]
    one = passes[first]["stages"]
    summary: dict[str, Any] = {}
    for stage, base in one.items():
        entry: dict[str, Any] = {"events_per_s_per_core": {n: p["stages"][stage]["events_per_s_per_core"]
                                                           for n, p in passes.items()}}
        entry["parallel_efficiency"] = {n: p["stages"][stage]["events_per_s_per_core"] / base["events_per_s_per_core"]
                                        for n, p in passes.items()}
        speedup = passes[last]["stages"][stage]["events_per_s"] / base["events_per_s"]
        serial = amdahl_serial_fraction(speedup, n1, n0) if n1 > n0 else 1.0
        entry["speedup"] = {"from_cores": n0, "to_cores": n1, "value": speedup}
        entry["amdahl_serial_fraction"] = serial
        per_core_1 = base["events_per_s"] / amdahl_speedup(serial, n0)  # the fit's one-core rate
        entry["projection"] = {str(n): {"speedup": amdahl_speedup(serial, n),
                                        "events_per_s": per_core_1 * amdahl_speedup(serial, n)}
                               for n in PROJECT_TO}
        if stage in PUBLISHED:
            ref = PUBLISHED[stage]["events_per_s_per_core"]
            entry["vs_published_per_core"] = {n: v / ref for n, v in entry["events_per_s_per_core"].items()}
        summary[stage] = entry
    return summary


def _plots(out: Path, passes: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    from topotrigger.evaluate.plots import _pyplot

    plt = _pyplot()
    names = list(passes)
    for what, ylabel, filename, log in (("events_per_s_per_core", "events/s per core", "throughput.png", True),
                                        ("parallel_efficiency", "per-core throughput / local[1]", "efficiency.png", False)):
        fig, ax = plt.subplots(figsize=(9, 5))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [summary[s][what][name] for s in summary]
            ax.bar([j + i * width for j in range(len(summary))], values, width, label=name)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(summary))], list(summary))
        ax.minorticks_off()
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        else:
            ax.axhline(1.0, color="k", lw=0.8)
        ax.legend(fontsize=10)
        fig.tight_layout()
        with atomic_path(out / filename) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)


def study(scale: float, out: Path, cluster_port: int | None = None, cores: tuple[int, ...] = (1, 2),
          cluster: bool = True) -> dict[str, Any]:
    from topotrigger.runtime import cluster as cluster_runtime

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    passes = {}
    for name, master, n in configs(cores, cluster):
        if master is None:
            if (out / name / "result.json").is_file():
                passes[name] = _pass(name, "", n, scale, out)
                continue
            state = out / "cluster-state"
            spec = cluster_runtime.ClusterSpec(workers=2, cores_per_worker=1, memory="1g",
                                               port=cluster_port or cluster_runtime._free_port())
            status = cluster_runtime.start(spec, state)
            try:
                passes[name] = _pass(name, str(status.master_url), n, scale, out)
            finally:
                cluster_runtime.stop(state)
        else:
            passes[name] = _pass(name, master, n, scale, out)
    summary = summarise(passes)
    result = {"scale": scale, "passes": passes, "summary": summary, "published": PUBLISHED,
              "projection_note": "Amdahl projection from the speedup between the smallest and largest local passes "
                                 "of this machine; a projection, not a measurement"}
    write_json(out / "bench.json", result)
    _plots(out, passes, summary)
    return result
