"""The feature kernels on hand-built events with known answers (no Spark)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from topotrigger.features.kernels import definitions as d
from topotrigger.features.kernels.events import Collection, capped, compute, non_finite
from topotrigger.io.delphes import PIPELINE_COLLECTIONS

FIELDS = PIPELINE_COLLECTIONS


def batch(events: list[dict[str, list[dict]]]) -> dict[str, Collection]:
    out = {}
    for name, fields in FIELDS.items():
        counts = [len(e.get(name, [])) for e in events]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        columns = {f: np.array([o.get(f, 0.0) for e in events for o in e.get(name, [])], dtype=np.float64) for f in fields}
        out[name] = Collection(offsets, columns)
    return out


def track(pt, eta, phi, pid=211, **kw):
    return {"PT": pt, "Eta": eta, "Phi": phi, "PID": pid, "Charge": math.copysign(1, pid), **kw}


def muon_event(**extra):
    """A 40 GeV muon at (0, 0) with its own track, 60 GeV MET at phi = pi/2."""
    event = {"MuonTight": [{"PT": 40.0, "Eta": 0.0, "Phi": 0.0, "Charge": -1}],
             "EFlowTrack": [track(40.0, 0.0, 0.0, pid=13)],
             "MissingET": [{"MET": 60.0, "Phi": math.pi / 2}]}
    for key, value in extra.items():
        event[key] = event.get(key, []) + value
    return event


def test_isolation_cone_edge_and_own_track_excluded() -> None:
    inside = track(4.0, 0.0, 0.2999)
    outside = track(4.0, 0.0, 0.3001)
    soft = track(0.4, 0.0, 0.1)  # below the 0.5 GeV track threshold
    photon = {"ET": 2.0, "Eta": 0.1, "Phi": 0.0}
    dim = {"ET": 0.9, "Eta": 0.1, "Phi": 0.0}   # below the 1 GeV calorimeter threshold
    f = compute(batch([muon_event(EFlowTrack=[inside, outside, soft], EFlowPhoton=[photon, dim],
                                  EFlowNeutralHadron=[{"ET": 3.0, "Eta": -0.2, "Phi": 0.05}])]))
    assert f.cut.tolist() == [d.CUT_FINAL]
    iso_ch, iso_ga, iso_ne = f.hlf[0, 9:12]
    assert iso_ch == pytest.approx(4.0 / 40.0)      # own 40 GeV track not counted, edge track in, outer out
    assert iso_ga == pytest.approx(2.0 / 40.0)
    assert iso_ne == pytest.approx(3.0 / 40.0)


def test_dphi_wraps_around() -> None:
    across = track(8.0, 0.0, -math.pi + 0.05)
    event = {"MuonTight": [{"PT": 40.0, "Eta": 0.0, "Phi": math.pi - 0.05, "Charge": 1}],
             "EFlowTrack": [track(40.0, 0.0, math.pi - 0.05, pid=-13), across],
             "MissingET": [{"MET": 10.0, "Phi": 0.0}]}
    f = compute(batch([event]))
    assert f.hlf[0, 9] == pytest.approx(8.0 / 40.0)
    # The particle list holds that track at dR = 0.1 from the lepton.
    rows = f.particles
    assert rows.shape[0] == 2


def test_isolation_and_pt_cuts_with_cutflow() -> None:
    no_lepton = {"EFlowTrack": [track(5.0, 0.0, 0.0)], "MissingET": [{"MET": 1.0, "Phi": 0.0}]}
    soft_lepton = muon_event()
    soft_lepton["MuonTight"][0]["PT"] = 20.0
    not_isolated = muon_event(EFlowTrack=[track(30.0, 0.1, 0.1)])
    good = muon_event()
    nan_input = muon_event(Jet=[{"PT": float("nan"), "Eta": 0.0, "Phi": 0.0, "BTag": 0}])
    f = compute(batch([no_lepton, soft_lepton, not_isolated, good, nan_input]))
    assert f.cut.tolist() == [d.CUT_IN, d.CUT_CANDIDATE, d.CUT_PT, d.CUT_FINAL, d.CUT_ISOLATION]
    assert f.counts.tolist() == [0, 0, 0, 1, 0]


def test_mt_jets_and_bjets() -> None:
    jets = [{"PT": 50.0, "Eta": 1.0, "Phi": 1.0, "BTag": 1}, {"PT": 35.0, "Eta": -2.0, "Phi": 2.0, "BTag": 0},
            {"PT": 29.0, "Eta": 0.0, "Phi": 0.0, "BTag": 1}, {"PT": 80.0, "Eta": 2.7, "Phi": 0.0, "BTag": 1}]
    f = compute(batch([muon_event(Jet=jets)]))
    ht, met, phimet, mt, nj, nb = f.hlf[0, :6]
    assert (ht, nj, nb) == (85.0, 2, 1)
    assert met == 60.0 and phimet == pytest.approx(math.pi / 2)
    assert mt == pytest.approx(math.sqrt(2 * 60 * 40 * (1 - math.cos(math.pi / 2))), rel=1e-6)
    legacy = compute(batch([muon_event(Jet=jets)]), d.FeatureOptions(mt_without_sqrt=True))
    assert legacy.hlf[0, 3] == pytest.approx(2 * 60 * 40, rel=1e-6)
    assert f.hlf[0, 6:9].tolist() == [40.0, 0.0, 0.0] and f.hlf[0, 12] == -1 and f.hlf[0, 13] == 0


def test_track_cap_lepton_first_and_order_by_decreasing_dr() -> None:
    many = [track(1.0, 0.001 * i, 1.0 + 0.001 * i) for i in range(500)]
    f = compute(batch([muon_event(EFlowTrack=many, EFlowPhoton=[{"ET": 5.0, "Eta": 2.0, "Phi": 0.0}])]))
    assert f.counts.tolist() == [1 + 450 + 1]
    rows = f.particles
    dr = np.hypot(rows[:, 5], rows[:, 6])     # lepton at (0, 0)
    assert np.all(np.diff(dr) <= 1e-6)          # decreasing distance; closest last
    assert rows[-1, 17] == 1.0 and rows[-1, 4] == 40.0  # the muon, last
    assert rows[0, 15] == 1.0                    # the photon at dR = 2 comes first
    assert np.sum(rows[:, 13]) == 450            # charged hadrons capped at 450, own track not among them
    e, px, py, pz, pt, eta = rows[0, :6]
    assert e == pytest.approx(pt * math.cosh(eta)) and pz == pytest.approx(pt * math.sinh(eta), rel=1e-6)


def test_electron_vs_muon_choice() -> None:
    event = muon_event(Electron=[{"PT": 30.0, "Eta": 1.5, "Phi": 2.0, "Charge": 1}],
                       EFlowTrack=[track(30.0, 1.5, 2.0, pid=-11)])
    by_pt = compute(batch([event]))
    assert by_pt.hlf[0, 13] == 0.0 and by_pt.hlf[0, 6] == 40.0        # the 40 GeV muon
    by_eta = compute(batch([event]), d.FeatureOptions(lepton_choice_by_eta=True))
    assert by_eta.hlf[0, 13] == 1.0 and by_eta.hlf[0, 6] == 30.0      # 2019: the electron has the larger eta


def test_kernels_import_no_spark_or_arrow() -> None:
    import subprocess
    import sys

    code = ("import sys; import topotrigger.features.kernels.events, topotrigger.features.kernels.definitions; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('pyspark', 'pyarrow', 'awkward', 'py4j')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_capped_counts_objects_above_threshold_against_the_caps() -> None:
    def collection(values: list[list[float]], field: str) -> Collection:
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])])
        return Collection(offsets, {field: np.array([x for v in values for x in v], dtype=float)})

    over = d.MAX_PHOTONS + 1
    collections = {"EFlowTrack": collection([[1.0] * (d.MAX_TRACKS + 1), [0.4] * 600], "PT"),
                   "EFlowPhoton": collection([[2.0] * d.MAX_PHOTONS, [2.0] * over], "ET"),
                   "EFlowNeutralHadron": collection([[0.5] * 300, []], "ET")}
    hit = capped(collections)
    assert hit["tracks"].tolist() == [True, False]          # 451 above 0.5; 600 below it
    assert hit["photons"].tolist() == [False, True]         # exactly the cap is not over it
    assert hit["neutral hadrons"].tolist() == [False, False]


@pytest.mark.parametrize("options", [d.FeatureOptions(), d.FeatureOptions(
    mt_without_sqrt=True, lepton_choice_by_eta=True, legacy_isolation=True, legacy_selection=True, legacy_particle_id=True)],
    ids=["corrected", "2019"])
def test_selection_without_particle_lists_is_the_same_selection(options: d.FeatureOptions) -> None:
    """`lists=False` (the features stage's first pass) gives the cut flow, HLF and particle counts of the
    full computation, an infinite input included."""
    calo = {"EFlowPhoton": [{"ET": 3.0, "Eta": 1.0, "Phi": 1.0}], "EFlowNeutralHadron": [{"ET": 4.0, "Eta": -1.0, "Phi": 2.0}]}
    events = [muon_event(EFlowTrack=[track(10.0, 0.1, 0.1), track(2.0, -1.0, 2.0)], **calo), muon_event(**calo),
              muon_event(EFlowPhoton=[{"ET": float("inf"), "Eta": 0.2, "Phi": 0.0}], EFlowNeutralHadron=calo["EFlowNeutralHadron"]),
              muon_event(EFlowTrack=[track(0.6, 0.3, 0.3)] * 500, **calo), muon_event(),
              # Finite inputs, infinite E and pz (pT cosh η beyond |η| ≈ 620): not final, with or without lists.
              muon_event(EFlowPhoton=[{"ET": 3.0, "Eta": 720.0, "Phi": 1.0}], EFlowNeutralHadron=calo["EFlowNeutralHadron"]),
              muon_event(EFlowTrack=[track(1e36, -650.0, 1.0)], **calo),
              muon_event(EFlowPhoton=[{"ET": 3.0, "Eta": 610.0, "Phi": 1.0}], EFlowNeutralHadron=calo["EFlowNeutralHadron"])]
    full, light = compute(batch(events), options), compute(batch(events), options, lists=False)
    assert np.array_equal(full.cut, light.cut) and np.array_equal(full.counts, light.counts)
    final = full.cut == d.CUT_FINAL
    assert final[-1] and not final[-2] and not final[-3]
    assert final.sum() >= 3 and np.array_equal(full.hlf[final], light.hlf[final])
    assert light.particles.shape == (0, d.N_PARTICLE_FEATURES)


def test_linear_sorts_are_stable_sorts() -> None:
    """The counting-then-insertion sorts of the kernel order as a stable comparison sort would, ties,
    few or many objects, tiny and huge ranges and NaN included (the η views and the ΔR order)."""
    from topotrigger.features.kernels.events import _order_by_decreasing, _sorted_view

    rng = np.random.default_rng(7)
    cases = [rng.uniform(-5, 5, 300), np.round(rng.uniform(-2, 2, 200), 1), rng.uniform(-5, 5, 10),
             np.array([1.0, 1.0 + 1e-300, 1.0, 1.0] * 10), np.array([-1e30, 0.0, 1e30] * 10), np.full(50, 0.3),
             np.concatenate([rng.uniform(-1, 1, 40), [np.nan], rng.uniform(-1, 1, 40)])]
    for values in cases:
        n = len(values)
        pt = np.where(np.arange(n) % 7 == 3, 0.1, 5.0)  # some below the threshold
        buffers = [np.empty(n) for _ in range(3)] + [np.empty(n, np.int64) for _ in range(4)] + [np.empty(n + 1, np.int64)]
        s_eta, s_phi, s_pt, s_idx, s_pos, tmp, bins = buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5], buffers[7]
        phi = rng.uniform(-9, 9, n)
        m = _sorted_view(0, n, pt, values, phi, 0.5, s_eta, s_phi, s_pt, s_idx, s_pos, tmp, bins, True)
        kept = np.flatnonzero(pt > 0.5)
        if not np.isnan(values).any():
            expected = kept[np.argsort(values[kept], kind="stable")]
            assert m == len(kept) and s_idx[:m].tolist() == expected.tolist()
        assert sorted(s_idx[:m].tolist()) == kept.tolist()
        assert np.array_equal(s_pos[s_idx[:m]], np.arange(m))
        assert np.all(np.abs(s_phi[:m]) <= np.pi) and np.allclose(np.cos(s_phi[:m]), np.cos(phi[s_idx[:m]]))
        if not np.isnan(values).any():
            order = np.empty(n, np.int64)
            _order_by_decreasing(values.astype(np.float64), n, order, tmp, bins)
            assert order.tolist() == np.argsort(-values, kind="stable").tolist()


def test_isolation_with_phi_outside_minus_pi_to_pi() -> None:
    """A particle's cones are the same whether φ is given in [−π, π] or shifted by ±2π (φ in [0, 2π)
    in some files; here tracks and photons 4π apart): the cones wrap around φ = ±π."""
    def event(shift: float) -> dict:
        tracks = [track(5.0, 0.1 * i, math.remainder(3.0 + 0.05 * i, 2 * math.pi) - shift) for i in range(30)]
        photons = [{"ET": 2.0 + i, "Eta": 0.05 * i, "Phi": -3.1 + 0.01 * i + shift} for i in range(20)]
        return muon_event(EFlowTrack=tracks, EFlowPhoton=photons,
                          EFlowNeutralHadron=[{"ET": 3.0, "Eta": 0.0, "Phi": 3.1 + shift}])
    a, b = compute(batch([event(0.0)])), compute(batch([event(2 * math.pi)]))
    assert a.cut[0] == b.cut[0] == d.CUT_FINAL
    np.testing.assert_allclose(a.particles[:, 10:13], b.particles[:, 10:13], rtol=1e-6, atol=1e-6)
    assert np.abs(a.particles[:, 10:13]).sum() > 10  # the cones do hold objects across φ = ±π


def test_take_events_gathers_the_events_asked_for_in_their_order() -> None:
    from topotrigger.features.kernels.events import take_events

    calo = {"EFlowPhoton": [{"ET": 3.0, "Eta": 1.0, "Phi": 1.0}], "EFlowNeutralHadron": [{"ET": 4.0, "Eta": -1.0, "Phi": 2.0}]}
    events = [muon_event(EFlowTrack=[track(10.0 + i, 0.1 * i, 0.1), track(2.0, -1.0, 2.0)] * i, **calo) for i in range(6)]
    events[2] = muon_event()  # no calorimeter objects: empty collections in the middle
    whole = batch(events)
    for pick in ([4, 0, 5], [2], [], [3, 3, 1]):
        taken = take_events(whole, np.array(pick, dtype=np.int64))
        alone = batch([events[i] for i in pick])
        for name, c in alone.items():
            assert taken[name].offsets.tolist() == c.offsets.tolist(), name
            for field, values in c.columns.items():
                assert np.array_equal(taken[name].columns[field], values), (name, field)
        full, part = compute(whole), compute(taken)
        assert np.array_equal(part.hlf, full.hlf[pick]) and np.array_equal(part.counts, full.counts[pick])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def testnon_finite_marks_exactly_the_events_with_a_non_finite_value(dtype: type) -> None:
    """The bit test behind it: NaN and ±inf are bad; the largest finite values, subnormals and −0 are not."""
    info = np.finfo(dtype)
    edge = [info.max, -info.max, info.smallest_subnormal, -0.0, info.tiny]
    for bad in (np.nan, np.inf, -np.inf, None):
        values = np.array(edge * 4, dtype=dtype)
        if bad is not None:
            values[12] = bad
        # Offsets that start past the first values (a sliced batch): those values belong to no event.
        head = np.array([np.nan] * 3, dtype=dtype)
        collection = Collection(np.array([3, 8, 8, 14, 23]), {"x": np.concatenate([head, values]), "n": np.arange(23)})
        expected = [False, False, False, bad is not None]  # value 12 is at 15: the event 14..23's
        assert non_finite({"c": collection}, 4).tolist() == expected


def test_gathered_rows_and_their_moments_are_those_of_the_events_asked() -> None:
    from topotrigger.features.kernels.columns import gather_rows
    from topotrigger.features.scaling import Moments

    rng = np.random.default_rng(5)
    sources, expected, events = [], [], []
    for _ in range(3):
        counts = rng.integers(0, 6, 40)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rows = rng.normal(size=(int(counts.sum()), d.N_PARTICLE_FEATURES)).astype(np.float32)
        pick = rng.permutation(40)[:25]
        sources.append((rows, starts[pick], counts[pick]))
        expected += [rows[starts[i]:starts[i] + counts[i]] for i in pick]
        events.append((rows, starts[pick], counts[pick]))
    want = np.concatenate(expected)
    assert np.array_equal(gather_rows(sources), want)
    rows, starts, counts = events[0]
    hlf = rng.normal(size=(len(counts), d.N_HLF)).astype(np.float32)
    got, ref = Moments.of_events(hlf, rows, starts, counts), Moments.of(hlf, np.concatenate(expected[:25]))
    assert got.n == ref.n and np.array_equal(got.hlf_min, ref.hlf_min) and np.array_equal(got.hlf_max, ref.hlf_max)
    assert np.allclose(got.total, ref.total, rtol=1e-12, atol=1e-12) and np.allclose(got.total_sq, ref.total_sq, rtol=1e-12)
