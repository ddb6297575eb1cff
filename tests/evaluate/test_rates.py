"""Trigger rates on a synthetic case whose σ, ε and scores give the answer by hand."""

from __future__ import annotations

import numpy as np
import pytest

from topotrigger.evaluate.rates import event_weights, lepton_stream, parse_cross_sections, stream_rates, threshold_at, working_points

CLASSES = ["qcd", "ttbar", "wjets"]
# σ in pb of the events that entered the cut flow; the cut flow keeps 1/10, 1/2 and 1/4 of them.
SIGMA = {"qcd": {"pb": 5.0e5, "err_pb": 5.0e3}, "ttbar": {"pb": 100.0, "err_pb": 0.0}, "wjets": {"pb": 4.0e3}}
CUTFLOW = {"qcd": {"all": 1000, "lepton": 300, "selected": 100},
           "ttbar": {"all": 1000, "lepton": 800, "selected": 500},
           "wjets": {"all": 1000, "lepton": 600, "selected": 250}}
LUMI = 2e34


def scores() -> tuple[np.ndarray, np.ndarray]:
    """100 events per class; the ttbar score of ttbar events is 0.01, 0.02, ... 1.00, of qcd events
    0.005 ... 0.5 (half above 0.25), of wjets events all 0.1."""
    labels = np.repeat([0, 1, 2], 100)
    p = np.zeros((300, 3))
    p[100:200, 1] = np.arange(1, 101) / 100
    p[0:100, 1] = np.arange(1, 101) / 200
    p[200:300, 1] = 0.1
    p[:, 0] = (1 - p[:, 1]) / 2
    p[:, 2] = (1 - p[:, 1]) / 2
    return p, labels


def test_stream_rate_is_luminosity_times_cross_section_times_selection_efficiency() -> None:
    stream = stream_rates(SIGMA, CUTFLOW, LUMI, CLASSES)
    # 5e5 pb = 5e-31 cm²; × 2e34 cm⁻²s⁻¹ = 1e4 Hz; × 0.1 = 1000 Hz.
    assert stream["qcd"]["rate_hz"] == pytest.approx(1000.0)
    assert stream["ttbar"]["rate_hz"] == pytest.approx(100e-36 * 2e34 * 0.5)
    assert stream["wjets"]["rate_hz"] == pytest.approx(4e-33 * 2e34 * 0.25)
    # The qcd interval: 1 % on σ and the Clopper–Pearson deviations of 100/1000, in quadrature.
    eff = stream["qcd"]["selection_efficiency"]
    lo, hi = stream["qcd"]["interval"]
    assert lo == pytest.approx(1000 - np.hypot(10.0, 1e4 * (0.1 - eff["interval"][0])))
    assert hi == pytest.approx(1000 + np.hypot(10.0, 1e4 * (eff["interval"][1] - 0.1)))


def test_working_points_by_hand() -> None:
    p, labels = scores()
    stream = stream_rates(SIGMA, CUTFLOW, LUMI, CLASSES)
    points = working_points(p, labels, CLASSES, stream, (0.95, 0.5))
    wp95, wp50 = points["ttbar"]
    # 95 % of the ttbar scores 0.01..1.00 are at or above 0.06; qcd scores 0.005..0.5 above it: 89 of 100.
    assert wp95["threshold"] == pytest.approx(0.06)
    assert wp95["signal_efficiency"]["value"] == pytest.approx(0.95)
    assert wp95["classes"]["qcd"]["kept"]["k"] == 89
    assert wp95["classes"]["wjets"]["kept"]["k"] == 100
    assert wp95["classes"]["qcd"]["rate_hz"] == pytest.approx(1000 * 0.89)
    # At 50 %: cut 0.51; qcd (max 0.5) and wjets (0.1) are all rejected, only ttbar's 50 % remains.
    assert wp50["threshold"] == pytest.approx(0.51)
    assert wp50["background_rate_hz"] == 0.0
    ttbar_rate = stream["ttbar"]["rate_hz"]
    assert wp50["output_rate_hz"] == pytest.approx(0.5 * ttbar_rate)
    input_rate = sum(s["rate_hz"] for s in stream.values())
    assert wp50["reduction"] == pytest.approx(input_rate / (0.5 * ttbar_rate))
    # No background event kept: the background rate's upper end is the Clopper–Pearson upper limit of 0/100.
    assert wp50["background_interval"][1] > 0
    assert wp50["few_events"]


def test_event_weights_make_each_class_sum_to_its_rate() -> None:
    p, labels = scores()
    stream = stream_rates(SIGMA, CUTFLOW, LUMI, CLASSES)
    w = event_weights(labels, stream, CLASSES)
    for k, c in enumerate(CLASSES):
        assert w[labels == k].sum() == pytest.approx(stream[c]["rate_hz"])


def test_threshold_keeps_at_least_the_target() -> None:
    s = np.random.default_rng(1).random(37)
    for target in (0.99, 0.95, 0.9, 0.5, 0.01):
        cut = threshold_at(s, target)
        assert np.mean(s >= cut) >= target and np.mean(s > cut) < target


def test_without_all_cross_sections_no_rates_and_a_reason() -> None:
    stream, reason = lepton_stream(CLASSES, {"qcd": SIGMA["qcd"]}, CUTFLOW, LUMI)
    assert stream is None and reason is not None and "ttbar, wjets" in reason
    stream, reason = lepton_stream(CLASSES, SIGMA, None, LUMI)
    assert reason is None and stream is not None and stream["classes"]["qcd"]["rate_hz"] == pytest.approx(1e4)


def test_cross_section_option_parsing() -> None:
    assert parse_cross_sections("qcd=1.5e3, ttbar=40") == {"qcd": 1500.0, "ttbar": 40.0}
    for bad in ("qcd", "qcd=x", "qcd=-1", "=3"):
        with pytest.raises(ValueError, match="CLASS=PICOBARNS"):
            parse_cross_sections(bad)
