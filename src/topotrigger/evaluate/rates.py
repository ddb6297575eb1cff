"""Trigger rates in physical units, as plain NumPy functions.

The lepton-triggered stream: each class c enters with the rate R_c = L · σ_c · ε_c, with σ_c the
effective cross-section of the events that entered the cut flow (pb; `generate` records it, or the
user gives it) and ε_c the fraction of them the selection keeps (the cut flow). The test split holds
a random sample of each class's selected events, so a selector's cut that keeps k_c of its n_c test
events of class c keeps R_c · k_c / n_c of that class's rate, and each test event stands for R_c / n_c Hz.

Intervals (central 68.3 %): Clopper–Pearson on every efficiency, the cross-section's statistical error;
a product's interval adds the factors' relative deviations in quadrature, a sum's interval adds the
terms' deviations in quadrature (independent factors and terms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from topotrigger.evaluate.metrics import efficiency

CM2_PER_PB = 1e-36
DEFAULT_LUMINOSITY = 2e34          # cm⁻² s⁻¹, the LHC Run 2 peak the 2019 study assumed
WORKING_POINTS = (0.99, 0.95, 0.90)


def _product(value: float, factors: list[tuple[float, float, float]]) -> list[float]:
    """The interval of `value` = Π factors, each (value, lower, upper): each factor's deviation times the
    other factors, added in quadrature."""
    low = high = 0.0
    for i, (v, lo, hi) in enumerate(factors):
        others = float(np.prod([f[0] for j, f in enumerate(factors) if j != i]))
        low += (others * (v - lo)) ** 2
        high += (others * (hi - v)) ** 2
    return [max(value - low ** 0.5, 0.0), value + high ** 0.5]


def _sum(terms: list[tuple[float, list[float]]]) -> list[float]:
    total = sum(v for v, _ in terms)
    low = sum((v - i[0]) ** 2 for v, i in terms) ** 0.5
    high = sum((i[1] - v) ** 2 for v, i in terms) ** 0.5
    return [max(total - low, 0.0), total + high]


def stream_rates(cross_sections: dict[str, dict[str, Any]], cutflow: dict[str, dict[str, int]] | None,
                 luminosity: float, class_names: list[str]) -> dict[str, dict[str, Any]]:
    """Per class, its rate after the lepton selection: {cross_section_pb, cross_section_err_pb,
    selection_efficiency (an `efficiency` figure, or None without a cut flow), rate_hz, interval}."""
    out = {}
    for name in class_names:
        sigma = cross_sections[name]
        pb, err = float(sigma["pb"]), float(sigma.get("err_pb") or 0.0)
        factors = [(pb, pb - err, pb + err)]
        selection = None
        flow = (cutflow or {}).get(name)
        if flow:
            steps = list(flow.values())
            selection = efficiency(steps[-1], steps[0])
            factors.append((selection["value"], *selection["interval"]))
        factors.append((luminosity * CM2_PER_PB, luminosity * CM2_PER_PB, luminosity * CM2_PER_PB))
        value = float(np.prod([f[0] for f in factors]))
        interval = _product(value, factors)
        out[name] = {"cross_section_pb": pb, "cross_section_err_pb": err, "selection_efficiency": selection,
                     "rate_hz": value, "interval": interval}
    return out


def event_weights(labels: np.ndarray, stream: dict[str, dict[str, Any]], class_names: list[str]) -> np.ndarray:
    """Hz per test event: R_c / n_c for an event of class c."""
    counts = np.bincount(labels, minlength=len(class_names))
    per_event: np.ndarray = np.array([stream[c]["rate_hz"] / max(counts[k], 1) for k, c in enumerate(class_names)])
    return np.asarray(per_event[labels])


def threshold_at(signal_scores: np.ndarray, target: float) -> float:
    """The highest cut (score ≥ cut) keeping at least `target` of the signal events."""
    ordered = np.sort(signal_scores)[::-1]
    return float(ordered[max(int(np.ceil(target * len(ordered))) - 1, 0)])


def working_points(probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
                   stream: dict[str, dict[str, Any]], targets: tuple[float, ...] = WORKING_POINTS) -> dict[str, list[dict[str, Any]]]:
    """Per selector (a class's score) and target signal efficiency: the cut, the signal efficiency, the
    output rate of each class and in total, the background rate, and the rate reduction against the
    lepton selection alone. The cut is taken on the test events themselves (a quantile of the signal
    scores): the efficiencies at a cut fixed elsewhere would carry the same binomial intervals."""
    input_rate = sum(s["rate_hz"] for s in stream.values())
    input_interval = _sum([(s["rate_hz"], s["interval"]) for s in stream.values()])
    out: dict[str, list[dict[str, Any]]] = {}
    for k, selector in enumerate(class_names):
        points = []
        for target in targets:
            cut = threshold_at(probabilities[labels == k, k], target)
            per_class = {}
            for c, name in enumerate(class_names):
                mine = probabilities[labels == c, k]
                kept = efficiency(int(np.sum(mine >= cut)), len(mine))
                rate = stream[name]["rate_hz"] * kept["value"]
                per_class[name] = {"kept": kept, "rate_hz": rate, "interval": _product(rate, [
                    (stream[name]["rate_hz"], *stream[name]["interval"]), (kept["value"], *kept["interval"])])}
            background = [(v["rate_hz"], v["interval"]) for name, v in per_class.items() if name != selector]
            total = [(v["rate_hz"], v["interval"]) for v in per_class.values()]
            output = sum(v for v, _ in total)
            output_interval = _sum(total)
            points.append({
                "target": target, "threshold": cut, "signal_efficiency": per_class[selector]["kept"],
                "classes": per_class,
                "background_rate_hz": sum(v for v, _ in background), "background_interval": _sum(background),
                "output_rate_hz": output, "output_interval": output_interval,
                "input_rate_hz": input_rate, "input_interval": input_interval,
                "reduction": input_rate / output if output > 0 else float("inf"),
                "reduction_interval": [input_interval[0] / output_interval[1] if output_interval[1] > 0 else float("inf"),
                                       input_interval[1] / output_interval[0] if output_interval[0] > 0 else float("inf")],
                "few_events": any(v["kept"]["few_events"] for v in per_class.values()),
            })
        out[selector] = points
    return out


def parse_cross_sections(text: str) -> dict[str, float]:
    """`qcd=1.2e3,ttbar=40` -> {"qcd": 1200.0, "ttbar": 40.0} (pb); ValueError names the bad item."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"cross-section {item!r} is not CLASS=PICOBARNS") from None
        if not name.strip() or not number > 0 or not np.isfinite(number):
            raise ValueError(f"cross-section {item!r} is not CLASS=PICOBARNS with a positive number")
        out[name.strip()] = number
    return out


def lepton_stream(class_names: list[str], cross_sections: dict[str, dict[str, Any]],
                  cutflow: dict[str, dict[str, int]] | None, luminosity: float) -> tuple[dict[str, Any] | None, str | None]:
    """The `stream` block of metrics.json (`stream_rates` with how the selection was known), or None and
    the one-line reason there are no rates."""
    missing = [c for c in class_names if c not in cross_sections]
    if missing:
        return None, (f"no trigger rates: no cross-section for {', '.join(missing)} "
                      "(give them with --cross-section CLASS=PICOBARNS,...)")
    return {"luminosity_cm2_s": luminosity,
            "selection": "from the dataset's cut flow" if cutflow else
                         "no cut flow: the cross-sections are taken as those of the selected events",
            "classes": stream_rates(cross_sections, cutflow, luminosity, class_names)}, None
