"""A plain per-event Python implementation of the feature contract (docs/physics.md): readable, slow, independent of
the Numba kernels. Used by the tests (agreement on generated events) and by the benchmark."""

from __future__ import annotations

import math

from topotrigger.features.kernels import definitions as d


def delta_phi(a: float, b: float) -> float:
    x = a - b
    while x > math.pi:
        x -= 2 * math.pi
    while x < -math.pi:
        x += 2 * math.pi
    return x


def delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    return math.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def cone_sum(eta: float, phi: float, objects: list[dict], key: str, min_value: float, skip: int = -1) -> float:
    return sum(o[key] for i, o in enumerate(objects)
               if i != skip and o[key] > min_value and delta_r(eta, phi, o["Eta"], o["Phi"]) < d.ISO_CONE)


def isolation(eta: float, phi: float, pt: float, event: dict, skip_track: int = -1, skip_photon: int = -1,
              skip_neutral: int = -1) -> tuple[float, float, float]:
    ch = cone_sum(eta, phi, event["EFlowTrack"], "PT", d.ISO_TRACK_MIN_PT, skip_track) / pt
    ga = cone_sum(eta, phi, event["EFlowPhoton"], "ET", d.ISO_CALO_MIN_ET, skip_photon) / pt
    ne = cone_sum(eta, phi, event["EFlowNeutralHadron"], "ET", d.ISO_CALO_MIN_ET, skip_neutral) / pt
    return ch, ga, ne


def own_track(lepton: dict, tracks: list[dict]) -> int:
    best, best_dr = -1, d.OWN_TRACK_DR
    for i, t in enumerate(tracks):
        dr = delta_r(lepton["Eta"], lepton["Phi"], t["Eta"], t["Phi"])
        if dr < best_dr:
            best, best_dr = i, dr
    return best


def four_vector(pt: float, eta: float, phi: float) -> list[float]:
    return [pt * math.cosh(eta), pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta), pt, eta, phi]


def event_features(event: dict) -> tuple[int, list[float] | None, list[list[float]] | None]:
    """(last cut-flow step reached, 14 HLF, particle rows in decreasing ΔR) for one event."""
    leptons = [(0, lep) for lep in event["Electron"]] + [(1, lep) for lep in event["MuonTight"]]
    if not leptons:
        return d.CUT_IN, None, None
    step = d.CUT_CANDIDATE
    best: dict[int, tuple[dict, tuple[float, float, float]]] = {}
    for flavour, lep in leptons:
        if not lep["PT"] > d.LEPTON_MIN_PT:
            continue
        step = d.CUT_PT
        iso = isolation(lep["Eta"], lep["Phi"], lep["PT"], event, skip_track=own_track(lep, event["EFlowTrack"]))
        if sum(iso) < d.LEPTON_MAX_ISO and (flavour not in best or lep["PT"] > best[flavour][0]["PT"]):
            best[flavour] = (lep, iso)
    if not best:
        return step, None, None
    flavour = max(best, key=lambda f: best[f][0]["PT"]) if len(best) == 2 else next(iter(best))
    lep, lep_iso = best[flavour]

    jets = [j for j in event["Jet"] if j["PT"] > d.JET_MIN_PT and abs(j["Eta"]) < d.JET_MAX_ETA]
    met = event["MissingET"][0] if event["MissingET"] else {"MET": 0.0, "Phi": 0.0}
    mt = math.sqrt(max(2 * met["MET"] * lep["PT"] * (1 - math.cos(delta_phi(lep["Phi"], met["Phi"]))), 0.0))
    hlf = [sum(j["PT"] for j in jets), met["MET"], met["Phi"], mt, len(jets), sum(1 for j in jets if j["BTag"] > 0),
           lep["PT"], lep["Eta"], lep["Phi"], *lep_iso, lep["Charge"], 1.0 if flavour == 0 else 0.0]

    rows: list[tuple[float, list[float]]] = []
    lepton_row = four_vector(lep["PT"], lep["Eta"], lep["Phi"]) + [0, 0, 0, *lep_iso, 0, 0, 0,
                                                                     1.0 if flavour == 0 else 0.0, 1.0 if flavour == 1 else 0.0, lep["Charge"]]
    rows.append((0.0, lepton_row))
    own = own_track(lep, event["EFlowTrack"])
    tracks = [(i, t) for i, t in enumerate(event["EFlowTrack"]) if i != own and t["PT"] > d.ISO_TRACK_MIN_PT][: d.MAX_TRACKS]
    for i, t in tracks:
        iso = isolation(t["Eta"], t["Phi"], t["PT"], event, skip_track=i)
        pid = abs(t["PID"])
        is_ele, is_mu = float(pid == 11), float(pid == 13)
        row = four_vector(t["PT"], t["Eta"], t["Phi"]) + [t["X"], t["Y"], t["Z"], *iso, 1.0 - is_ele - is_mu, 0.0, 0.0,
                                                         is_ele, is_mu, float(math.copysign(1, t["PID"]) if t["PID"] else 0)]
        rows.append((delta_r(lep["Eta"], lep["Phi"], t["Eta"], t["Phi"]), row))
    for kind, name, cap in ((15, "EFlowPhoton", d.MAX_PHOTONS), (14, "EFlowNeutralHadron", d.MAX_NEUTRALS)):
        objects = [(i, o) for i, o in enumerate(event[name]) if o["ET"] > d.ISO_CALO_MIN_ET][:cap]
        for i, o in objects:
            iso = isolation(o["Eta"], o["Phi"], o["ET"], event, skip_photon=i if kind == 15 else -1,
                            skip_neutral=i if kind == 14 else -1)
            row = four_vector(o["ET"], o["Eta"], o["Phi"]) + [0.0, 0.0, 0.0, *iso, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
            row[kind] = 1.0
            rows.append((delta_r(lep["Eta"], lep["Phi"], o["Eta"], o["Phi"]), row))
    rows.sort(key=lambda r: -r[0])  # stable: ties keep list order
    particles = [r for _, r in rows]
    if not all(math.isfinite(x) for x in hlf) or not all(math.isfinite(x) for r in particles for x in r):
        return d.CUT_ISOLATION, None, None
    return d.CUT_FINAL, hlf, particles
