"""Terminal summaries of stage results (rich tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from topotrigger.evaluate.stage import EvaluateResult
    from topotrigger.features.stage import FeaturesResult
    from topotrigger.generate.stage import GenerateResult
    from topotrigger.ingest.stage import IngestResult
    from topotrigger.tune.stage import TuneResult


def print_generate(console: Console, result: "GenerateResult") -> None:
    from topotrigger.generate.stage import class_summary

    summaries = {p: class_summary(p, result.files) for p in sorted({f["task"]["process"] for f in result.files})}
    table = Table(title=f"generated events in {result.out}")
    for column in ("class", "files", "events", "filter eff.", "effective σ [pb]", "events/s (task)"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for process, summary in summaries.items():
        wall = sum(f["wall_s"] for f in result.files if f["task"]["process"] == process)
        table.add_row(process, str(summary["files"]), str(summary["events"]), f"{summary['filter_efficiency']:.3f}",
                      f"{summary['effective_cross_section_pb']:.4g}", f"{summary['events'] / wall:.1f}" if wall else "-")
    console.print(table)
    names = list(next(iter(summaries.values()))["mean_multiplicity"]) if summaries else []
    if names:
        table = Table(title=f"mean objects per event (pile-up ⟨μ⟩ = {next(iter(summaries.values()))['mean_pileup']:g})")
        table.add_column("class")
        for name in names:
            table.add_column(name.replace("EFlow", ""), justify="right")
        for process, summary in summaries.items():
            table.add_row(process, *(f"{summary['mean_multiplicity'].get(n, 0.0):.1f}" for n in names))
        console.print(table)
    if result.skipped:
        console.print(f"{result.skipped} file(s) were already complete and kept")


def print_ingest(console: Console, result: "IngestResult") -> None:
    table = Table(title=f"ingested events in {result.out}")
    table.add_column("label", justify="right")
    table.add_column("samples")
    table.add_column("files", justify="right")
    table.add_column("events", justify="right")
    for label, count in sorted(result.counts.items()):
        mine = [f for f in result.files if f["label"] == label]
        table.add_row(str(label), ", ".join(sorted({f["sample"] for f in mine})), str(len(mine)), str(count))
    console.print(table)
    total = sum(result.counts.values())
    console.print(f"{total} events in {result.seconds:.1f} s ({total / max(result.seconds, 1e-9):.0f} events/s)")
    for bad in result.skipped:
        console.print(f"skipped {bad['path']}: {bad['reason']}", markup=False)


def print_features(console: Console, result: "FeaturesResult") -> None:
    table = Table(title="selection cut flow (events reaching each step)")
    steps = list(next(iter(result.cutflow.values())))
    table.add_column("class")
    for step in steps:
        table.add_column(step, justify="right")
    for name, flow in result.cutflow.items():
        table.add_row(name, *(str(flow[s]) for s in steps))
    console.print(table)
    for split, counts in result.counts.items():
        console.print(f"{split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if any(n for kinds in result.capped.values() for n in kinds.values()):
        console.print("selected events whose particle list reached a cap (450 tracks, 150 photons, 200 neutral hadrons): "
                      + "; ".join(f"{c} " + ", ".join(f"{k} {n}" for k, n in kinds.items()) for c, kinds in result.capped.items()))
    console.print(f"{result.events_in} input events in {result.seconds:.1f} s "
                  f"({result.events_in / max(result.seconds, 1e-9):.0f} events/s); written to {result.out}")


def print_evaluate(console: Console, result: "EvaluateResult") -> None:
    metrics = result.metrics
    classes = metrics["class_names"]
    table = Table(title=f"{metrics['split']} split, {metrics['events']:,} events")
    table.add_column("model")
    for column in ("accuracy", *(f"AUC {c}" for c in classes), "bkg acc. @99% sig (ttbar)"):
        table.add_column(column, justify="right")
    for name, m in metrics["models"].items():
        ci = m.get("intervals", {})
        ttbar = m["per_class"].get("ttbar", {}).get("intervals", {}).get("background_acceptance_at_99pct_signal")
        table.add_row(name, _interval(m["accuracy"], ci.get("accuracy")),
                      *(_interval(m["auc"][c], ci.get("auc", {}).get(c)) for c in classes),
                      _interval(ttbar["value"], ttbar["interval"]) if ttbar else "-")
    console.print(table)
    stream = metrics.get("stream")
    if stream:
        print_rates(console, metrics, stream)
    elif metrics.get("rates_note"):
        console.print(metrics["rates_note"])
    console.print("intervals: central 68.3 % (bootstrap for accuracy and AUC, Clopper–Pearson for efficiencies, "
                  "propagated to rates)")
    console.print(f"report: {result.report}")


RATE_SELECTORS = ("ttbar", "wjets")


def _hz(value: float, interval: list[float]) -> str:
    return f"{value:.3g} [{interval[0]:.3g}, {interval[1]:.3g}]"


def print_rates(console: Console, metrics: dict[str, Any], stream: dict[str, Any]) -> None:
    """The lepton-triggered stream per class, then the output of the ttbar and wjets selectors (Hz)."""
    classes = stream["classes"]
    table = Table(title=f"lepton-selected stream at L = {stream['luminosity_cm2_s']:.3g} cm⁻²s⁻¹")
    for column in ("class", "σ [pb]", "selection eff.", "rate [Hz]"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, c in classes.items():
        eff = c["selection_efficiency"]
        table.add_row(name, f"{c['cross_section_pb']:.4g}", f"{eff['value']:.4f}" if eff else "-", _hz(c["rate_hz"], c["interval"]))
    console.print(table)
    table = Table(title="output of each selector at working points of signal efficiency (test split)")
    for column in ("model", "selector", "target", "cut", "signal eff.", "background [Hz]", "output [Hz]", "reduction"):
        table.add_column(column, justify="left" if column in ("model", "selector") else "right")
    for model, m in metrics["models"].items():
        for selector in [s for s in RATE_SELECTORS if s in (m.get("working_points") or {})]:
            for wp in m["working_points"][selector]:
                eff = wp["signal_efficiency"]
                flag = " *" if wp["few_events"] else ""
                table.add_row(model, selector, f"{wp['target']:.0%}", f"{wp['threshold']:.3f}",
                              f"{eff['value']:.3f} [{eff['interval'][0]:.3f}, {eff['interval'][1]:.3f}]",
                              _hz(wp["background_rate_hz"], wp["background_interval"]) + flag,
                              _hz(wp["output_rate_hz"], wp["output_interval"]), f"{wp['reduction']:.3g}")
    console.print(table)
    console.print("*: some class keeps fewer than 10 test events at this cut")


def _interval(value: float, interval: list[float] | None) -> str:
    return f"{value:.3f}" if not interval else f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def print_tune(console: Console, result: "TuneResult") -> None:
    trials = result.trials
    failed = [t for t in trials if t["status"] != "ok"]
    table = Table(title=f"{len(trials)} trials ({result.ran} run now, {len(failed)} failed) in {result.out}")
    for column in ("trial", "parameters", "val loss", "val acc.", "mean val AUC", "s"):
        table.add_column(column, justify="left" if column == "parameters" else "right")
    ranked = sorted((t for t in trials if t["status"] == "ok"), key=lambda t: t["val_loss"])
    for t in ranked[:10]:
        params = ", ".join(f"{k}={v}" for k, v in sorted(t["params"].items()))
        table.add_row(str(t["index"]), params, f"{t['val_loss']:.4f}", f"{t['val_accuracy']:.3f}",
                      f"{t['mean_val_auc']:.3f}", f"{t['seconds']:.1f}")
    console.print(table)
    for t in failed[:5]:
        console.print(f"trial {t['index']} failed: {t['reason']}")
    if result.best:
        console.print(f"best parameters: {result.out / 'best.json'} (use: topotrigger train --params {result.out / 'best.json'})")


def print_bench(console: Console, result: dict[str, Any], out: object) -> None:
    summary = result["summary"]
    passes = list(result["passes"])
    table = Table(title=f"events/s per core (scale {result['scale']}); efficiency vs the fewest cores in brackets")
    table.add_column("stage")
    for name in passes:
        table.add_column(name, justify="right")
    table.add_column("Amdahl serial fraction", justify="right")
    for stage, entry in summary.items():
        cells = [f"{entry['events_per_s_per_core'][n]:,.0f} ({entry['parallel_efficiency'][n]:.2f})" for n in passes]
        table.add_row(stage, *cells, f"{entry['amdahl_serial_fraction']:.2f}")
    console.print(table)
    console.print(f"bench.json and plots in {out}")
