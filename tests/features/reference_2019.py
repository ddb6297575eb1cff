"""A plain per-event Python account of what the 2019 feature code did (docs/physics.md, "The 2019
recipe"), written from its description, independent of the Numba kernels: the reference the `2019`
recipe is tested against. Slow and readable; one event at a time."""

from __future__ import annotations

import math

import numpy as np

from .reference import delta_r as _dr  # ΔR with Δφ wrapped into [−π, π], as the 2019 code's sort had it

CONE = 0.3


def _cone(eta: float, phi: float, objects: list[tuple[float, float, float]]) -> float:
    """Σ value of the objects within ΔR < 0.3; Δφ taken back by 2π only beyond ±2π (so never)."""
    total = 0.0
    for o_eta, o_phi, value in objects:
        dphi = o_phi - phi
        if dphi > 2 * math.pi:
            dphi -= 2 * math.pi
        if dphi < -2 * math.pi:
            dphi += 2 * math.pi
        if dphi * dphi + (o_eta - eta) ** 2 < CONE * CONE:
            total += value
    return total


def _p4(pt: float, eta: float, phi: float) -> list[float]:
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return [math.sqrt(px * px + py * py + pz * pz), px, py, pz, pt, eta, phi]


def convert(event: dict) -> tuple[list[float], np.ndarray] | None:
    """(14 HLF unscaled, GRU input 801 × 19 sorted and standardised) or None when the event is dropped."""
    tracks = [(t["Eta"], t["Phi"], t["PT"]) for t in event["EFlowTrack"] if not t["PT"] <= 0.5]
    photons = [(o["Eta"], o["Phi"], o["ET"]) for o in event["EFlowPhoton"] if not o["ET"] <= 1.0]
    neutrals = [(o["Eta"], o["Phi"], o["ET"]) for o in event["EFlowNeutralHadron"] if not o["ET"] <= 1.0]
    if not tracks or not photons or not neutrals:
        return None
    if not event["Electron"] and not event["MuonTight"]:
        return None

    def isolation(eta: float, phi: float, pt: float) -> tuple[float, float, float]:
        # Every object in its own sums; 1 taken off the charged one whatever the particle is.
        return _cone(eta, phi, tracks) / pt - 1.0, _cone(eta, phi, photons) / pt, _cone(eta, phi, neutrals) / pt

    found: dict[str, tuple[dict, tuple[float, float, float]]] = {}
    for flavour in ("Electron", "MuonTight"):
        for lep in event[flavour]:
            if lep["PT"] <= 23.0:
                continue
            iso = isolation(lep["Eta"], lep["Phi"], lep["PT"])
            if flavour not in found and sum(iso) < 0.45:  # the first in list order
                found[flavour] = (lep, iso)
    if not found:
        return None
    if len(found) == 2:
        flavour = "Electron" if found["Electron"][0]["Eta"] > found["MuonTight"][0]["Eta"] else "MuonTight"
    else:
        flavour = next(iter(found))
    lep, iso = found[flavour]
    is_ele = 1.0 if flavour == "Electron" else 0.0
    rows = [_p4(lep["PT"], lep["Eta"], lep["Phi"]) + [0.0, 0.0, 0.0, *iso, 0.0, 0.0, 0.0, is_ele, 1.0 - is_ele,
                                                        float(lep["Charge"])]]
    n = 0
    for t in event["EFlowTrack"]:
        if n >= 450 or t["PT"] <= 0.5:
            continue
        if _dr(lep["Eta"], lep["Phi"], t["Eta"], t["Phi"]) > 1e-4:
            rows.append(_p4(t["PT"], t["Eta"], t["Phi"]) + [t["X"], t["Y"], t["Z"], *isolation(t["Eta"], t["Phi"], t["PT"]),
                                                            1.0, 0.0, 0.0, 0.0, 0.0, float(np.sign(t["PID"]))])
            n += 1
    for name, cap, flag in (("EFlowPhoton", 150, 15), ("EFlowNeutralHadron", 200, 14)):
        n = 0
        for o in event[name]:
            if n >= cap or o["ET"] <= 1.0:
                continue
            row = _p4(o["ET"], o["Eta"], o["Phi"]) + [0.0, 0.0, 0.0, *isolation(o["Eta"], o["Phi"], o["ET"])] + [0.0] * 6
            row[flag] = 1.0
            rows.append(row)
            n += 1
    rows += [[0.0] * 19 for _ in range(801 - len(rows))]

    met = event["MissingET"][0]
    mt = 2.0 * met["MET"] * lep["PT"] * (1 - math.cos(lep["Phi"] - met["Phi"]))
    jets = [j for j in event["Jet"] if j["PT"] > 30 and abs(j["Eta"]) < 2.6]
    hlf = [sum(j["PT"] for j in jets), met["MET"], met["Phi"], mt, float(len(jets)), float(sum(1 for j in jets if j["BTag"] > 0)),
           lep["PT"], lep["Eta"], lep["Phi"], *iso, float(lep["Charge"]), is_ele]

    # Every row, the zero rows too, by decreasing ΔR from the lepton (a stable sort), then each column
    # standardised over the 801 rows.
    rows.sort(key=lambda r: _dr(lep["Eta"], lep["Phi"], r[5], r[6]), reverse=True)
    x = np.array(rows, dtype=np.float64)
    mean = x.mean(axis=0)
    std = np.sqrt(((x - mean) ** 2).mean(axis=0))
    std[std < 10 * np.finfo(np.float64).eps] = 1.0
    return hlf, (x - mean) / std
