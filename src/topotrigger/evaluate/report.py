"""A self-contained `report.html`: plots embedded as base64 PNG, tables, configuration, versions."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from topotrigger.evaluate.metrics import ACCEPTANCES

# The published 2020 figures (Migliorini et al. 2020), on the CERN dataset (not ours): comparable in kind only.
PUBLISHED_2020: dict[str, dict[str, Any]] = {
    "hlf (2020 published, other dataset)": {"accuracy": 0.916, "auc": {"qcd": 0.987, "ttbar": 0.986, "wjets": 0.981}},
    "inclusive (2020 published, other dataset)": {"accuracy": 0.956, "auc": {"qcd": 0.995, "ttbar": 0.997, "wjets": 0.995}},
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.reference td { color: #777; font-style: italic; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _with_interval(value: Any, interval: list[float] | None) -> str:
    if interval is None or not all(isinstance(v, float) for v in interval):
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(interval[0])}, {_fmt(interval[1])}]"


def _figure(figure: dict[str, Any]) -> str:
    """An efficiency with its interval, flagged when it rests on fewer than 10 events."""
    text = _with_interval(figure["value"], figure["interval"])
    return text + " (fewer than 10 events)" if figure["few_events"] else text


def _counts(counts: dict[str, dict[str, int]] | None) -> str:
    if not counts:
        return "not recorded"
    return "; ".join(f"{split} " + ", ".join(f"{c} {n:,}" for c, n in per_class.items()) for split, per_class in counts.items())


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"></p>'


def _rates(metrics: dict[str, Any], classes: list[str]) -> str:
    stream = metrics.get("stream")
    if not stream:
        return f"<p>{html.escape(metrics.get('rates_note') or 'no trigger rates')}</p>"
    sigma = metrics.get("cross_sections", {})
    rows = [[c, s["cross_section_pb"], s["cross_section_err_pb"], sigma.get(c, {}).get("source", ""),
             _figure(s["selection_efficiency"]) if s["selection_efficiency"] else "-",
             _with_interval(s["rate_hz"], s["interval"])] for c, s in stream["classes"].items()]
    parts = [f"""<p>The single-lepton-triggered stream at L = {stream['luminosity_cm2_s']:.3g} cm⁻²s⁻¹: each class's
rate is L × σ × selection efficiency ({html.escape(stream['selection'])}); σ is the effective cross-section of the
events that entered the selection (generator filter and forced decays included). Each selector's cut is set on
the test split to keep the target share of its signal; a class's output rate is its stream rate times the share
of its test events the cut keeps. The reduction is the whole stream's rate over the selector's output rate.
Statistical intervals only: no systematic uncertainty of the simulation is included.</p>""",
             _table(["class", "σ [pb]", "σ stat. error [pb]", "σ from", "selection efficiency", "stream rate [Hz]"], rows)]
    for name, m in metrics["models"].items():
        points = m.get("working_points") or {}
        rows = []
        for selector, wps in points.items():
            for wp in wps:
                flag = " (fewer than 10 events)" if wp["few_events"] else ""
                rows.append([selector, f"{wp['target']:.0%}", wp["threshold"], _figure(wp["signal_efficiency"]),
                             *(_with_interval(wp["classes"][c]["rate_hz"], wp["classes"][c]["interval"]) for c in classes),
                             _with_interval(wp["background_rate_hz"], wp["background_interval"]) + flag,
                             _with_interval(wp["output_rate_hz"], wp["output_interval"]),
                             _with_interval(wp["reduction"], wp["reduction_interval"])])
        parts.append(f"<h3>{html.escape(name)}</h3>" + _table(
            ["selector", "target", "cut", "signal efficiency", *(f"{c} rate [Hz]" for c in classes),
             "background rate [Hz]", "output rate [Hz]", "reduction vs lepton selection"], rows))
    return "".join(parts)


def write_report(path: Path, metrics: dict[str, Any], plots: list[Path], context: dict[str, Any]) -> Path:
    classes: list[str] = metrics["class_names"]
    models: dict[str, Any] = metrics["models"]
    summary_rows, css = [], []
    for name, m in models.items():
        t = m["training"]
        ci = m.get("intervals", {})
        summary_rows.append([name, _with_interval(m["accuracy"], ci.get("accuracy")),
                             *(_with_interval(m["auc"][c], ci.get("auc", {}).get(c)) for c in classes), t.get("epochs", ""),
                             t.get("seconds", ""), t.get("events_per_s", ""), m["model_bytes"]])
        css.append("")
    for name, ref in PUBLISHED_2020.items():
        summary_rows.append([name, ref["accuracy"], *(ref["auc"].get(c, "") for c in classes), "", "", "", ""])
        css.append("reference")
    summary = _table(["model", "accuracy", *(f"AUC {c}" for c in classes), "epochs", "training s",
                      "training events/s", "model bytes"], summary_rows, css)

    trigger_rows = []
    for name, m in models.items():
        for c in classes:
            view = m["per_class"][c]
            effs = view["intervals"]["signal_efficiency_at_background_acceptance"]
            acceptance = view["intervals"]["background_acceptance_at_99pct_signal"]
            trigger_rows.append([name, c, *(_figure(effs[str(a)]) for a in ACCEPTANCES), _figure(acceptance),
                                 view["rate_reduction_at_99pct_signal"]])
    trigger = _table(["model", "selector", *(f"signal eff. at {a:g} bkg" for a in ACCEPTANCES),
                      "bkg acceptance at 99% signal", "bkg rejection (1/acceptance) at 99% signal"], trigger_rows)

    rates_html = _rates(metrics, classes)

    cutflow = context.get("cutflow") or {}
    steps = list(next(iter(cutflow.values()), {}).keys())
    cutflow_table = _table(["class", *steps], [[c, *(flow[s] for s in steps)] for c, flow in cutflow.items()])

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>topotrigger evaluation</title><style>{_STYLE}</style></head>
<body>
<h1>topotrigger evaluation</h1>
<p>Dataset <code>{html.escape(str(metrics['dataset']))}</code>, split <code>{html.escape(metrics['split'])}</code>,
{metrics['events']:,} events (read by this stage only: training and tuning validate on val/); split sizes per
class: {html.escape(_counts(context.get('counts')))}.
Intervals are central 68.3 %: bootstrap (200 seeded resamples) on accuracy and AUC, Clopper–Pearson on
efficiencies. Reference rows (grey) are the 2020 published figures on the CERN dataset (Migliorini et
al., Comput Softw Big Sci 4, 8 (2020); the study: Nguyen et al., Comput Softw Big Sci 3, 12 (2019)),
not on these events: comparable in kind, not to the digit.</p>
<h2>Classifiers</h2>{summary}
<h2>Trigger rates</h2>{rates_html}
<h2>Trigger view (efficiencies)</h2>
<p>Each class's score as a selector of that class, on top of the lepton selection (which keeps
every event here: signal efficiency 1, background acceptance 1). Background = the other classes of
this balanced sample, unweighted: these are efficiencies, not trigger rates.</p>
{trigger}
<h2>Plots</h2>{''.join(_image(p) for p in plots)}
<h2>Dataset cut flow</h2>{cutflow_table}
<h2>Configuration</h2><pre>{html.escape(json.dumps(context.get('configuration', {}), indent=2, sort_keys=True))}</pre>
<h2>Software</h2><pre>{html.escape(json.dumps(context.get('software', {}), indent=2, sort_keys=True))}</pre>
</body></html>
"""
    path.write_text(page)
    return path
