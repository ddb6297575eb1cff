"""The `2019` recipe on hand-built events, one quirk of the 2019 feature code each, against its reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from topotrigger.features.kernels import definitions as d
from topotrigger.features.kernels.events import compute
from topotrigger.features.scaling import Scaler, padded_2019

from .reference_2019 import convert
from .test_kernels import batch, track

TRACK = {"X": 0.0, "Y": 0.0, "Z": 0.0}


def event(**extra) -> dict:
    """A 40 GeV muon at (η, φ) = (0.5, 1) with its own track, one photon and one neutral hadron far away."""
    e = {"Electron": [], "MuonTight": [{"PT": 40.0, "Eta": 0.5, "Phi": 1.0, "Charge": -1}],
         "EFlowTrack": [track(40.0, 0.5, 1.0, pid=13, **TRACK)],
         "EFlowPhoton": [{"ET": 3.0, "Eta": -2.0, "Phi": -2.0}],
         "EFlowNeutralHadron": [{"ET": 4.0, "Eta": 2.0, "Phi": -1.0}],
         "Jet": [], "MissingET": [{"MET": 30.0, "Phi": -1.0}]}
    for key, value in extra.items():
        e[key] = value
    return e


def both(e: dict) -> tuple[object, tuple | None]:
    return compute(batch([e]), d.RECIPE_2019), convert(e)


def agree(e: dict) -> np.ndarray:
    """The kernel + 801-row scaling equals the reference; returns the kernel's unscaled rows."""
    fast, expected = both(e)
    assert (fast.cut[0] == d.CUT_FINAL) == (expected is not None)
    if expected is not None:
        np.testing.assert_allclose(fast.hlf[0], np.array(expected[0], dtype=np.float32), rtol=2e-6, atol=1e-6)
        gru = padded_2019(fast.particles, fast.counts, fast.hlf[:, 7], fast.hlf[:, 8])
        np.testing.assert_allclose(gru, expected[1], rtol=1e-4, atol=2e-5)
    return fast.particles


def test_a_cone_across_phi_pi_misses_the_other_side() -> None:
    e = event(MuonTight=[{"PT": 40.0, "Eta": 0.5, "Phi": math.pi - 0.05, "Charge": 1}],
              EFlowTrack=[track(40.0, 0.5, math.pi - 0.05, pid=-13, **TRACK)],
              EFlowPhoton=[{"ET": 6.0, "Eta": 0.5, "Phi": -math.pi + 0.05}])  # ΔR = 0.1 across ±π
    agree(e)
    assert compute(batch([e]), d.RECIPE_2019).hlf[0, d.HLF_INDEX["LepIsoGamma"]] == 0.0
    assert compute(batch([e])).hlf[0, d.HLF_INDEX["LepIsoGamma"]] == pytest.approx(6.0 / 40.0)


def test_a_neutral_hadron_keeps_its_own_et() -> None:
    rows = agree(event())
    neutral = rows[rows[:, d.PARTICLE_INDEX["isNeuHad"]] == 1][0]
    assert neutral[d.PARTICLE_INDEX["NeuPFIso"]] == pytest.approx(1.0)
    assert neutral[d.PARTICLE_INDEX["ChPFIso"]] == pytest.approx(-1.0)  # and 1 off its (empty) charged sum
    default = compute(batch([event()])).particles
    assert default[default[:, d.PARTICLE_INDEX["isNeuHad"]] == 1][0, d.PARTICLE_INDEX["NeuPFIso"]] == 0.0


def test_an_electron_track_is_a_charged_hadron() -> None:
    e = event(EFlowTrack=[track(40.0, 0.5, 1.0, pid=13, **TRACK), track(5.0, -1.0, 2.5, pid=11, **TRACK)])
    rows = agree(e)
    electron = rows[rows[:, d.PARTICLE_INDEX["Pt"]] == 5.0][0]
    assert electron[d.PARTICLE_INDEX["isChHad"]] == 1.0 and electron[d.PARTICLE_INDEX["isEle"]] == 0.0
    default = compute(batch([e])).particles
    assert default[default[:, d.PARTICLE_INDEX["Pt"]] == 5.0][0, d.PARTICLE_INDEX["isEle"]] == 1.0


def test_an_event_without_photons_is_dropped() -> None:
    e = event(EFlowPhoton=[{"ET": 0.8, "Eta": 0.0, "Phi": 0.0}])  # below 1 GeV: none counts
    agree(e)
    assert compute(batch([e]), d.RECIPE_2019).cut[0] == d.CUT_IN
    assert compute(batch([e])).cut[0] == d.CUT_FINAL


def test_the_first_isolated_lepton_in_list_order_and_the_lepton_track_in_its_sum() -> None:
    e = event(MuonTight=[{"PT": 30.0, "Eta": 0.5, "Phi": 1.0, "Charge": -1}, {"PT": 50.0, "Eta": -0.5, "Phi": -2.0, "Charge": 1}],
              EFlowTrack=[track(31.0, 0.5, 1.0, pid=13, **TRACK), track(50.0, -0.5, -2.0, pid=-13, **TRACK)])
    agree(e)
    fast = compute(batch([e]), d.RECIPE_2019)
    assert fast.hlf[0, d.HLF_INDEX["LepPt"]] == 30.0  # the first, not the hardest
    assert fast.hlf[0, d.HLF_INDEX["LepIsoCh"]] == pytest.approx(31.0 / 30.0 - 1.0)  # its track kept, 1 subtracted
    assert compute(batch([e])).hlf[0, d.HLF_INDEX["LepPt"]] == 50.0


def test_zero_rows_sort_by_their_own_delta_r_and_are_standardised_with_the_rest() -> None:
    # Lepton at (η, φ) = (0.5, 1): the zero rows sit at ΔR = √(0.5² + 1²) ≈ 1.118 from it.
    rows = np.zeros((3, d.N_PARTICLE_FEATURES), dtype=np.float32)
    rows[:, d.PARTICLE_INDEX["Eta"]] = [3.0, 1.0, 0.5]     # ΔR 2.69, then 0.5 (hence after the zeros), then the lepton
    rows[:, d.PARTICLE_INDEX["Phi"]] = [-1.0, 1.0, 1.0]
    rows[:, d.PARTICLE_INDEX["Pt"]] = [7.0, 9.0, 40.0]
    out = padded_2019(rows, np.array([3]), np.array([0.5], np.float32), np.array([1.0], np.float32))
    assert out.shape == (801, d.N_PARTICLE_FEATURES)
    pt = out[:, d.PARTICLE_INDEX["Pt"]]
    mean, std = (7 + 9 + 40) / 801, np.std(np.r_[[7.0], np.zeros(798), [9.0, 40.0]])
    np.testing.assert_allclose(pt[[0, 1, 799, 800]], (np.array([7.0, 0.0, 9.0, 40.0]) - mean) / std, rtol=1e-6)
    assert np.all(pt[1:799] == pt[1]) and pt[1] != 0  # the zero rows are neither at the end nor zero
    assert np.all(out[:, d.PARTICLE_INDEX["vtxX"]] == 0)  # a constant column is only centred


def test_the_recipe_scaler_pads_every_event_to_801_rows() -> None:
    fast = compute(batch([event(), event()]), d.RECIPE_2019)
    scaler = Scaler([0.0] * 14, [1.0] * 14, [0.0] * 19, [1.0] * 19, per_event=True, legacy_padding=True)
    _, particles, counts = scaler.transform(fast.hlf, fast.particles, fast.counts)
    assert counts.tolist() == [801, 801] and particles.shape == (1602, d.N_PARTICLE_FEATURES)
