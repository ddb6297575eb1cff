"""The `generate` stage: one Spark task per output file; resumable, deterministic, atomic.

Layout of the output directory:
    OUT/settings.json              the generation settings (a rerun with other settings is refused)
    OUT/manifest.json              all files, counts, filter efficiencies, cross-sections, versions
    OUT/<class>/<class>_NNN.root   TTree "Delphes"
    OUT/<class>/<class>_NNN.json   per-file record, written after its ROOT file (marks it complete)
    OUT/<class>/manifest.json      the records of that class
    OUT/plots/<class>.png          validation histograms
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from topotrigger.config import GenerateConfig
from topotrigger.errors import OutputExistsError, OutputPathError, UserError
from topotrigger.generate import detector, jets, pileup, processes
from topotrigger.generate.pythia import PythiaSource, lepton_filter
from topotrigger.generate.writer import write_tree
from topotrigger.io import storage
from topotrigger.io.atomic import read_json, remove_stale_temporaries, write_json
from topotrigger.io.versions import software_versions
from topotrigger.runtime.tasks import run_tasks

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MAX_BATCH = 2000


@dataclass(frozen=True)
class FileTask:
    process: str
    file_index: int
    events: int
    seed: int
    profile: str
    pileup: float
    path: str
    pileup_seed: int = 0        # the minimum-bias library's: the same for every file, so workers share it
    pileup_library: int = 1000

    @property
    def record_path(self) -> Path:
        return Path(self.path).with_suffix(".json")


@dataclass
class GenerateResult:
    out: Path
    files: list[dict[str, Any]]
    skipped: int  # files already complete from an earlier run

    def events(self, process: str) -> int:
        return sum(f["events"] for f in self.files if f["task"]["process"] == process)


def file_seed(seed: int, process: str, file_index: int) -> int:
    """A Pythia seed (1..900,000,000) per file, stable across runs and machines."""
    digest = hashlib.sha256(f"{seed}/{process}/{file_index}".encode()).digest()
    return 1 + int.from_bytes(digest[:8], "little") % 899_999_999


def mean_pileup(cfg: GenerateConfig) -> float:
    return cfg.pileup if cfg.pileup is not None else processes.DEFAULT_PILEUP[cfg.profile]


def plan(cfg: GenerateConfig, out: Path) -> list[FileTask]:
    tasks = []
    for process in cfg.classes:
        k = cfg.files_per_class
        for i in range(k):
            n = cfg.events // k + (1 if i < cfg.events % k else 0)
            if n == 0:
                continue
            tasks.append(FileTask(process, i, n, file_seed(cfg.seed, process, i), cfg.profile, mean_pileup(cfg),
                                  str(out / process / f"{process}_{i:03d}.root"), file_seed(cfg.seed, "minbias", 0),
                                  cfg.pileup_library))
    return tasks


def is_complete(task: FileTask) -> bool:
    if not (Path(task.path).is_file() and task.record_path.is_file()):
        return False
    try:
        return bool(read_json(task.record_path).get("task") == asdict(task))
    except ValueError:
        return False


def _events(task: FileTask, stats: dict[str, Any]) -> Iterator[dict[str, ak.Array]]:
    """Filtered, simulated events of one file, in chunks; fills `stats` (seconds per step) as it goes."""
    for key in ("pythia_s", "pileup_s", "detector_s", "jets_s", "write_s"):
        stats.setdefault(key, 0.0)
    source = PythiaSource(processes.pythia_settings(task.process, task.profile, task.seed, task.file_index),
                          processes.FORCED_DECAYS.get(task.process, ()))
    t0 = time.perf_counter()
    minbias = pileup.library(task.pileup_seed, task.pileup_library) if task.pileup > 0 else None
    stats["pileup_s"] += time.perf_counter() - t0
    rng = np.random.default_rng([task.seed, task.file_index])
    kept = tried = 0
    # Events with pile-up hold thousands of particles: smaller batches bound a task's memory.
    max_batch = MAX_BATCH if task.pileup <= 0 else max(50, int(MAX_BATCH * 5 / (5 + task.pileup)))
    batch = min(task.events, 200)
    while kept < task.events:
        t0 = time.perf_counter()
        events = source.batch(batch)
        mask = np.asarray(lepton_filter(events.particles))
        passing = np.flatnonzero(mask)
        need = task.events - kept
        if len(passing) > need:
            # Count as tried only the events up to the last one kept, so the efficiency stays unbiased.
            tried += int(passing[need - 1]) + 1
            passing = passing[:need]
        else:
            tried += len(events)
        selected = events[passing]
        t1 = time.perf_counter()
        stats["pythia_s"] += t1 - t0
        if len(selected):
            hard, hard_counts = detector.flat_columns(selected.particles)
            particles = pileup.place(hard, hard_counts, rng, task.pileup, minbias)
            t2 = time.perf_counter()
            collections, candidates = detector.simulate(particles, len(selected), rng)
            t3 = time.perf_counter()
            collections["Jet"] = jets.btag(jets.cluster(candidates), selected.hadrons, rng)
            t4 = time.perf_counter()
            number = task.file_index * 1_000_000_000 + kept + np.arange(len(selected), dtype=np.int64)
            ones = np.ones(len(selected), dtype=np.int64)
            collections["Event"] = detector.jagged({
                "Number": number,
                "Weight": np.asarray(selected.weight, dtype=np.float32),
                "ProcessID": np.full(len(selected), processes.PROCESS_ID[task.process], dtype=np.int32),
            }, ones)
            stats["pileup_s"] += t2 - t1
            stats["detector_s"] += t3 - t2
            stats["jets_s"] += t4 - t3
            stats["particles"] = stats.get("particles", 0) + len(particles["event"])
            stats["multiplicity"] = _add_multiplicities(stats.get("multiplicity", {}), collections)
            stats["weight_sum"] = stats.get("weight_sum", 0.0) + float(np.sum(selected.weight))
            kept += len(selected)
            t5 = time.perf_counter()
            yield collections
            stats["write_s"] += time.perf_counter() - t5
        efficiency = max(kept, 1) / max(tried, 1)
        batch = int(min(max_batch, max(50, 1.2 * (task.events - kept) / efficiency)))
    stats["tried"] = tried
    stats["events"] = kept
    stats["sigma_mb"], stats["sigma_err_mb"] = source.cross_section()
    stats["open_fractions"] = {str(k): v for k, v in source.open_fractions.items()}


def _add_multiplicities(sums: dict[str, float], collections: dict[str, ak.Array]) -> dict[str, float]:
    """Running totals of every EFlow object, and of those above the feature thresholds, per collection."""
    from topotrigger.generate.validation import THRESHOLDS

    out = dict(sums)
    for name, (field, cut) in THRESHOLDS.items():
        c = collections[name]
        out[name] = out.get(name, 0.0) + float(ak.sum(ak.num(c)))
        out[f"{name} {field} > {cut:g}"] = out.get(f"{name} {field} > {cut:g}", 0.0) + float(ak.sum(c[field] > cut))
    return out


def generate_file(task_dict: dict[str, Any]) -> dict[str, Any]:
    """Spark task: write one ROOT file and its record; skip if an earlier run completed it."""
    task = FileTask(**task_dict)
    if is_complete(task):
        return {**read_json(task.record_path), "reused": True}
    stats: dict[str, Any] = {"weight_sum": 0.0}
    start = time.perf_counter()
    write_tree(Path(task.path), _events(task, stats))
    stats["wall_s"] = time.perf_counter() - start
    # write_s was measured around the generator's yields, i.e. the time spent in uproot.
    record = {
        "task": asdict(task),
        "file": os.path.basename(task.path),
        "bytes": os.path.getsize(task.path),
        "filter_efficiency": stats["events"] / stats["tried"] if stats["tried"] else 0.0,
        **stats,
    }
    write_json(task.record_path, record)
    return {**record, "reused": False}


def generate_files(tasks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Spark task body: `generate_file` for each task of the group."""
    for task in tasks:
        yield generate_file(task)


def _check_output(cfg: GenerateConfig, out: Path) -> None:
    settings = out / "settings.json"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output directory {out} is not writable: {exc.strerror or exc}") from None
    wanted = cfg.model_dump(mode="json")
    if settings.is_file():
        found = read_json(settings)
        if found != wanted:
            diff = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise OutputExistsError(
                f"{out} holds events generated with other settings (differs in: {', '.join(diff)}); "
                "use another --out or delete it"
            )
    else:
        if any(p for p in out.iterdir() if not p.name.startswith(".")):
            raise OutputExistsError(f"{out} is not empty and was not made by `topotrigger generate`; use another --out")
        write_json(settings, wanted)


def generate(cfg: GenerateConfig, out: Path | str, spark: "SparkSession", progress: bool = True,
             plots: bool = True, reference: str | None = None) -> GenerateResult:
    """Generate `cfg.events` filtered events per class into `out` on Spark (one task per file). The
    validation plots overlay the per-object spectra of `reference`, a real Delphes file, when given."""
    from topotrigger.runtime.progress import run_with_progress

    if storage.is_remote(str(out)):
        raise OutputPathError(f"generate writes ROOT files to a local (or mounted shared) directory, not {storage.redact(str(out))}; "
                              "copy them to the object store afterwards, ingest reads them there")
    out = Path(out).resolve()
    ref = None
    if plots and reference:  # read first: a file that is not a Delphes file fails before anything is written
        from topotrigger.generate.validation import reference_spectra

        ref = reference_spectra(reference)
    _check_output(cfg, out)
    tasks = plan(cfg, out)
    for process in cfg.classes:
        (out / process).mkdir(exist_ok=True)
        remove_stale_temporaries(out / process)
    todo = [asdict(t) for t in tasks]

    def job() -> list[dict[str, Any]]:
        return run_tasks(spark, todo, generate_files)

    records = run_with_progress(spark, "generate", job) if progress else job()
    records.sort(key=lambda r: (r["task"]["process"], r["task"]["file_index"]))
    skipped = sum(1 for r in records if r.pop("reused"))
    _write_manifests(cfg, out, records)
    if plots:
        from topotrigger.generate.validation import observables, plot_class, read_events, spectra

        for process in cfg.classes:
            events = read_events([Path(t.path) for t in tasks if t.process == process])
            plot_class(process, observables(events), out / "plots" / f"{process}.png", spectra(events), ref)
    return GenerateResult(out, records, skipped)


def class_summary(process: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, filter efficiency and cross-sections of one class from its file records.

    `effective_cross_section_pb` is the cross-section of the events written: Pythia's σ of the hard process
    (with the open share of W and top decays) × the configurations the files take turns on × the filter
    efficiency × the mean forced-decay weight of the kept events (Σ weights of kept events / events tried).
    """
    mine = [r for r in records if r["task"]["process"] == process]
    events = sum(r["events"] for r in mine)
    tried = sum(r["tried"] for r in mine)
    # Cross-sections per file are independent estimates of the same process: weight by tries.
    sigma_mb = sum(r["sigma_mb"] * r["tried"] for r in mine) / tried if tried else 0.0
    sigma_err_mb = (sum((r["sigma_err_mb"] * r["tried"]) ** 2 for r in mine) ** 0.5 / tried) if tried else 0.0
    weight_sum = sum(r.get("weight_sum", r["events"]) for r in mine)
    configurations = processes.CONFIGURATIONS.get(process, 1)
    effective_pb = sigma_mb * 1e9 * configurations * weight_sum / tried if tried else 0.0
    multiplicity: dict[str, float] = {}
    for r in mine:
        for name, total in r.get("multiplicity", {}).items():
            multiplicity[name] = multiplicity.get(name, 0.0) + total
    return {
        "events": events, "tried": tried, "files": len(mine),
        "mean_pileup": mine[0]["task"]["pileup"] if mine else 0.0,
        "mean_multiplicity": {name: total / events for name, total in multiplicity.items()} if events else {},
        "mean_particles_in_detector": sum(r.get("particles", 0) for r in mine) / events if events else 0.0,
        "filter_efficiency": events / tried if tried else 0.0,
        "sigma_mb": sigma_mb, "sigma_err_mb": sigma_err_mb, "configurations": configurations,
        "mean_event_weight": weight_sum / events if events else 0.0,
        "open_fractions": mine[0].get("open_fractions", {}) if mine else {},
        "effective_cross_section_pb": effective_pb,
        # Statistical only: Pythia's σ estimate and the binomial filter efficiency, in quadrature.
        "effective_cross_section_err_pb": effective_pb * ((sigma_err_mb / sigma_mb) ** 2 + (
            (1 - events / tried) / events if events and tried else 0.0)) ** 0.5 if sigma_mb else 0.0,
    }


def _write_manifests(cfg: GenerateConfig, out: Path, records: list[dict[str, Any]]) -> None:
    versions = software_versions()
    summary = {}
    for process in cfg.classes:
        summary[process] = class_summary(process, records)
        write_json(out / process / "manifest.json", {"stage": "generate", "process": process,
                                                     "settings": cfg.model_dump(mode="json"),
                                                     "summary": summary[process],
                                                     "files": [r for r in records if r["task"]["process"] == process],
                                                     "software": versions})
    write_json(out / "manifest.json", {"stage": "generate", "settings": cfg.model_dump(mode="json"),
                                       "classes": summary, "files": records, "software": versions})
