"""The scalability study's arithmetic: efficiencies, Amdahl fit and projection, published ratios."""

from __future__ import annotations

import pytest

from topotrigger.bench.study import PUBLISHED, amdahl_serial_fraction, amdahl_speedup, summarise


def _pass(cores: int, rates: dict[str, float]) -> dict:
    return {"cores": cores, "stages": {s: {"events_per_s": r, "events_per_s_per_core": r / cores} for s, r in rates.items()}}


def test_amdahl_round_trip() -> None:
    for serial in (0.0, 0.1, 0.5, 1.0):
        assert amdahl_serial_fraction(amdahl_speedup(serial, 2), 2) == pytest.approx(serial)
    assert amdahl_speedup(0.1, 400) == pytest.approx(1 / (0.1 + 0.9 / 400))
    assert amdahl_serial_fraction(2.5, 2) == 0.0 and amdahl_serial_fraction(0.5, 2) == 1.0  # clipped


def test_summary_of_three_passes() -> None:
    passes = {"local1": _pass(1, {"features": 100.0, "train": 50.0}),
              "local2": _pass(2, {"features": 160.0, "train": 100.0}),
              "cluster2": _pass(2, {"features": 120.0, "train": 80.0})}
    summary = summarise(passes)
    assert summary["features"]["parallel_efficiency"] == {"local1": 1.0, "local2": 0.8, "cluster2": 0.6}
    assert summary["features"]["speedup"] == {"from_cores": 1, "to_cores": 2, "value": pytest.approx(1.6)}
    assert summary["features"]["amdahl_serial_fraction"] == pytest.approx(0.25)
    assert summary["features"]["projection"]["400"]["speedup"] == pytest.approx(1 / (0.25 + 0.75 / 400))
    assert summary["train"]["amdahl_serial_fraction"] == 0.0
    ref = PUBLISHED["features"]["events_per_s_per_core"]
    assert summary["features"]["vs_published_per_core"]["local1"] == pytest.approx(100.0 / ref)


def test_a_cores_sweep_fits_amdahl_between_its_smallest_and_largest_pass() -> None:
    from topotrigger.bench.study import configs

    assert [c[0] for c in configs((4, 1, 2), cluster=False)] == ["local1", "local2", "local4"]
    assert configs((1,))[-1][0] == "cluster2"
    serial = 0.2
    rate = {n: 100.0 * amdahl_speedup(serial, n) for n in (2, 4, 16)}  # an exact Amdahl machine, one core at 100
    passes = {f"local{n}": _pass(n, {"features": r}) for n, r in rate.items()}
    summary = summarise(passes)["features"]
    assert summary["speedup"]["from_cores"] == 2 and summary["speedup"]["to_cores"] == 16
    assert summary["amdahl_serial_fraction"] == pytest.approx(serial)
    assert summary["projection"]["400"]["events_per_s"] == pytest.approx(100.0 * amdahl_speedup(serial, 400))
    assert summary["parallel_efficiency"]["local16"] == pytest.approx(rate[16] / 16 / (rate[2] / 2))
