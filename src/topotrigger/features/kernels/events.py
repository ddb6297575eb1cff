"""Selection, isolation, particle lists and high-level features for a batch of events (Numba).

Inputs are flat per-collection columns plus event offsets (what Arrow list<struct> arrays hold);
outputs are dense arrays. One compiled loop over events: the O(n²) isolation cones need it.

Isolation of a particle p (cone ΔR < 0.3, relative to p's pT or ET):
    ChPFIso    = Σ PT of tracks with PT > 0.5,
    GammaPFIso = Σ ET of photons with ET > 1,
    NeuPFIso   = Σ ET of neutral hadrons with ET > 1,
each excluding p's own object (a lepton's own track is the track within ΔR < 1e-4 of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from topotrigger.features.kernels import definitions as d

# LLVM may contract, reassociate and use approximate transcendental functions (differences ~1e-15,
# far below the float32 outputs), but not assume that values are finite: NaN inputs must stay visible.
_FAST = {"contract", "arcp", "nsz", "reassoc", "afn"}


@dataclass
class Collection:
    """Flat columns of one collection and its per-event offsets (length n_events + 1)."""

    offsets: np.ndarray
    columns: dict[str, np.ndarray]


@dataclass
class EventFeatures:
    cut: np.ndarray          # int8 per event: the last cut-flow step reached (definitions.CUT_*)
    hlf: np.ndarray          # float32 (n_events, 14); rows of events not final are undefined
    counts: np.ndarray       # int32 particles per event (0 unless final)
    particles: np.ndarray    # float32 (sum(counts), 19), event after event, decreasing ΔR from the lepton


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _dphi(a: float, b: float) -> float:
    x = a - b
    while x > np.pi:
        x -= 2 * np.pi
    while x < -np.pi:
        x += 2 * np.pi
    return x


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _dr2(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    de = eta1 - eta2
    dp = _dphi(phi1, phi2)
    return de * de + dp * dp


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _cone_dr2(eta1: float, phi1: float, eta2: float, phi2: float, wrap: bool) -> float:
    """ΔR² for the isolation cones; without `wrap` (the 2019 code's cones) Δφ is the plain difference,
    which it wrapped only beyond ±2π, never reached: cones across φ = ±π miss the other side."""
    if wrap:
        return _dr2(eta1, phi1, eta2, phi2)
    de = eta1 - eta2
    dp = phi1 - phi2
    return de * de + dp * dp


@numba.njit(cache=True, fastmath=_FAST)
def _stable_sort(idx: np.ndarray, n: int, key: np.ndarray, sign: float, tmp: np.ndarray, bins: np.ndarray) -> None:
    """idx[:n] reordered by sign × key[idx] increasing (sign −1: key decreasing), ties in their order.
    A counting sort into about one bin per item, then an insertion sort (which only moves items within
    a bin): linear, where a comparison sort of a few hundred items cost more than the cones. With a
    NaN or infinite key (an event that is dropped) no bins: the insertion sort alone. `tmp` and
    `bins` are scratch of at least n + 1."""
    lo, hi = np.inf, -np.inf
    finite = True
    for q in range(n):
        v = sign * key[idx[q]]
        finite = finite and np.isfinite(v)
        lo, hi = min(lo, v), max(hi, v)
    scale = (n - 1) / (hi - lo) if finite and hi > lo else 0.0
    if n > 16 and np.isfinite(scale) and scale > 0:
        bins[:n + 1] = 0
        for q in range(n):
            bins[1 + min(int((sign * key[idx[q]] - lo) * scale), n - 1)] += 1
        for b in range(n):
            bins[b + 1] += bins[b]
        for q in range(n):
            b = min(int((sign * key[idx[q]] - lo) * scale), n - 1)
            tmp[bins[b]] = idx[q]
            bins[b] += 1
        idx[:n] = tmp[:n]
    for q in range(1, n):
        i = idx[q]
        v = sign * key[i]
        r = q - 1
        while r >= 0 and sign * key[idx[r]] > v:
            idx[r + 1] = idx[r]
            r -= 1
        idx[r + 1] = i


@numba.njit(cache=True, fastmath=_FAST)
def _sorted_view(c0: int, c1: int, c_pt: np.ndarray, c_eta: np.ndarray, c_phi: np.ndarray, min_pt: float,
                 s_eta: np.ndarray, s_phi: np.ndarray, s_pt: np.ndarray, s_idx: np.ndarray, s_pos: np.ndarray,
                 tmp: np.ndarray, bins: np.ndarray, wrap: bool) -> int:
    """The event's objects that enter cone sums, sorted by η (ties in list order) into the buffers
    (s_pos: object -> place); returns how many. `tmp` and `bins` are scratch, one more than the
    largest collection."""
    n = 0
    for j in range(c0, c1):
        if not c_pt[j] <= min_pt:  # as in the cone sums: NaN stays in (and poisons the sum)
            s_idx[n] = j
            n += 1
    _stable_sort(s_idx, n, c_eta, 1.0, tmp, bins)
    for q in range(n):
        j = s_idx[q]
        # φ in [−π, π] where the cones wrap, so that a pair's Δφ needs one step, no loop (`_sweep_pairs`).
        s_eta[q], s_phi[q], s_pt[q] = c_eta[j], _dphi(c_phi[j], 0.0) if wrap else c_phi[j], c_pt[j]
        s_pos[j - c0] = q
    return n


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _cone_sum(eta: float, phi: float, c0: int, c1: int, c_pt: np.ndarray, c_eta: np.ndarray, c_phi: np.ndarray,
              min_pt: float, skip: int, wrap: bool) -> float:
    """Σ pT of the objects c0..c1 above `min_pt` within the cone around (η, φ), but `skip`, in list order."""
    total = 0.0
    cone2 = d.ISO_CONE * d.ISO_CONE
    for j in range(c0, c1):
        if c_pt[j] <= min_pt or j == skip:  # NaN stays in (and poisons the sum)
            continue
        if _cone_dr2(eta, phi, c_eta[j], c_phi[j], wrap) < cone2:
            total += c_pt[j]
    return total


@numba.njit(cache=True, fastmath=_FAST)
def _sweep_pairs(na: int, a_eta: np.ndarray, a_phi: np.ndarray, a_pt: np.ndarray, nb: int, b_eta: np.ndarray,
                 b_phi: np.ndarray, b_pt: np.ndarray, same: bool, self_too: bool, wrap: bool, out_ab: np.ndarray,
                 out_ba: np.ndarray) -> None:
    """out_ab[i] = Σ pT of view-B objects within the cone of view-A object i, and out_ba the other way,
    both views η-sorted. The |Δη| window moves one way as i grows, so two pointers track it (no
    searches), and each pair within the cone is looked at once and adds to both sides. With `same`,
    A is B: only pairs q > i are visited, and an object counts itself only with `self_too`. The
    compiler may add an object's window in vectorised partial sums (the module's fast-math flags):
    the order of the float64 additions, not which objects are added, depends on it."""
    cone2 = d.ISO_CONE * d.ISO_CONE
    out_ab[:na] = 0.0
    out_ba[:nb] = 0.0
    lo, hi = 0, 0
    for i in range(na):
        eta, phi = a_eta[i], a_phi[i]
        while lo < nb and b_eta[lo] < eta - d.ISO_CONE:
            lo += 1
        hi = max(hi, lo)
        while hi < nb and b_eta[hi] <= eta + d.ISO_CONE:
            hi += 1
        total = out_ab[i]  # with `same`, what the objects before i added to it
        if same and self_too:  # the object's own term, at its place in the η order
            total += a_pt[i]
        pt = a_pt[i]
        # Branch-free, so that it vectorises: a pair in the cone adds its pT, one outside adds 0.0
        # (exact: the sums are of positive pT; an event with a NaN or infinite input is dropped
        # whatever its cones). With `wrap` the views' φ are in [−π, π]: |Δφ| ≤ 2π, one step wraps it.
        for q in range(max(lo, i + 1) if same else lo, hi):
            de = eta - b_eta[q]
            dp = abs(phi - b_phi[q])
            if wrap:
                dp = min(dp, 2 * np.pi - dp)
            inside = 1.0 if de * de + dp * dp < cone2 else 0.0
            total += inside * b_pt[q]
            out_ba[q] += inside * pt
        out_ab[i] = total


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _row_isolation(cone: np.ndarray, a: int, q: int, pt: float, lists: bool, legacy: bool) -> tuple[float, float, float]:
    """A list row's relative isolation from the sweeps' sums (object q of view a); zeros without `lists`
    (q is then not a place in a view). 2019: 1 taken off the charged one, every object being in its own."""
    ch, ga, ne = 0.0, 0.0, 0.0
    if lists:
        ch, ga, ne = cone[a, 0, q] / pt, cone[a, 1, q] / pt, cone[a, 2, q] / pt
    if legacy:
        ch -= 1.0
    return ch, ga, ne


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _any_above(c0: int, c1: int, values: np.ndarray, threshold: float) -> bool:
    for j in range(c0, c1):  # noqa: SIM110 (Numba compiles loops, not generators)
        if not values[j] <= threshold:
            return True
    return False


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _own_track(eta: float, phi: float, t0: int, t1: int, t_eta: np.ndarray, t_phi: np.ndarray) -> int:
    best, best_dr2 = -1, d.OWN_TRACK_DR * d.OWN_TRACK_DR
    for j in range(t0, t1):
        dr2 = _dr2(eta, phi, t_eta[j], t_phi[j])
        if dr2 < best_dr2:
            best, best_dr2 = j, dr2
    return best


@numba.njit(cache=True, fastmath=_FAST)
def _kernel(t_off, t_pt, t_eta, t_phi, t_pid, t_x, t_y, t_z,
            p_off, p_et, p_eta, p_phi,
            n_off, n_et, n_eta, n_phi,
            e_off, e_pt, e_eta, e_phi, e_q,
            m_off, m_pt, m_eta, m_phi, m_q,
            j_off, j_pt, j_eta, j_btag,
            met_off, met_met, met_phi,
            mt_without_sqrt, lepton_choice_by_eta, legacy_isolation, legacy_selection, legacy_particle_id, bad_input,
            cut, hlf, counts, out, max_tracks, max_photons, max_neutrals, lists):
    n_events = len(t_off) - 1
    cursor = 0
    dr_buf = np.empty(d.MAX_PARTICLES, dtype=np.float64)
    rows = np.empty((d.MAX_PARTICLES, d.N_PARTICLE_FEATURES), dtype=np.float64)
    # η-sorted views of the event's tracks, photons and neutral hadrons for the isolation cones:
    # each cone then scans only the objects within |Δη| ≤ 0.3 instead of the whole event.
    size = 1
    for ev in range(n_events):
        size = max(size, t_off[ev + 1] - t_off[ev], p_off[ev + 1] - p_off[ev], n_off[ev + 1] - n_off[ev])
    v_eta = np.empty((3, size))
    v_phi = np.empty((3, size))
    v_pt = np.empty((3, size))
    v_idx = np.empty((3, size), dtype=np.int64)
    v_pos = np.empty((3, size), dtype=np.int64)
    tmp = np.empty(max(size, d.MAX_PARTICLES) + 1, dtype=np.int64)
    bins = np.empty(max(size, d.MAX_PARTICLES) + 1, dtype=np.int64)
    cone = np.empty((3, 3, size))  # cone[a, b, q]: Σ pT of view b around object q of view a
    best = np.empty(2, dtype=np.int64)
    best_iso = np.empty((2, 3))
    order = np.empty(d.MAX_PARTICLES, dtype=np.int64)
    for ev in range(n_events):
        t0, t1 = t_off[ev], t_off[ev + 1]
        p0, p1 = p_off[ev], p_off[ev + 1]
        n0, n1 = n_off[ev], n_off[ev + 1]
        e0, e1 = e_off[ev], e_off[ev + 1]
        m0, m1 = m_off[ev], m_off[ev + 1]
        cut[ev] = d.CUT_IN
        counts[ev] = 0
        if legacy_selection and not (_any_above(t0, t1, t_pt, d.ISO_TRACK_MIN_PT) and _any_above(p0, p1, p_et, d.ISO_CALO_MIN_ET)
                                     and _any_above(n0, n1, n_et, d.ISO_CALO_MIN_ET)):
            continue  # 2019: no track, photon or neutral hadron above its threshold, no event
        if e1 > e0 or m1 > m0:
            cut[ev] = d.CUT_CANDIDATE
        wrap = not legacy_isolation
        # Best qualifying electron and muon: pT > 23 and relative isolation < 0.45.
        best[0], best[1] = -1, -1
        best_iso[:] = 0.0
        any_pt = False
        for flavour in range(2):
            l0, l1 = (e0, e1) if flavour == 0 else (m0, m1)
            l_pt = e_pt if flavour == 0 else m_pt
            l_eta = e_eta if flavour == 0 else m_eta
            l_phi = e_phi if flavour == 0 else m_phi
            for i in range(l0, l1):
                if not l_pt[i] > d.LEPTON_MIN_PT:
                    continue
                any_pt = True
                # 2019: the lepton's own track stays in its charged sum, and 1 is subtracted instead.
                # A lepton's cones are summed in a scan of the event's objects (list order, whatever
                # `lists`): sorting them by η for the sweeps below costs more than a few scans, and the
                # same order of addition gives the same HLF with and without the lists.
                own = -1 if legacy_isolation else _own_track(l_eta[i], l_phi[i], t0, t1, t_eta, t_phi)
                ch = _cone_sum(l_eta[i], l_phi[i], t0, t1, t_pt, t_eta, t_phi, d.ISO_TRACK_MIN_PT, own, wrap) / l_pt[i]
                ga = _cone_sum(l_eta[i], l_phi[i], p0, p1, p_et, p_eta, p_phi, d.ISO_CALO_MIN_ET, -1, wrap) / l_pt[i]
                ne = _cone_sum(l_eta[i], l_phi[i], n0, n1, n_et, n_eta, n_phi, d.ISO_CALO_MIN_ET, -1, wrap) / l_pt[i]
                if legacy_isolation:
                    ch -= 1.0
                # 2019: the first qualifying lepton of each flavour in list order, not the hardest.
                if ch + ga + ne < d.LEPTON_MAX_ISO and (best[flavour] < 0 or (not legacy_selection and l_pt[i] > l_pt[best[flavour]])):
                    best[flavour] = i
                    best_iso[flavour, 0], best_iso[flavour, 1], best_iso[flavour, 2] = ch, ga, ne
        if any_pt:
            cut[ev] = d.CUT_PT
        if best[0] < 0 and best[1] < 0:
            continue
        cut[ev] = d.CUT_ISOLATION
        if best[0] >= 0 and best[1] >= 0:
            if lepton_choice_by_eta:
                flavour = 0 if e_eta[best[0]] > m_eta[best[1]] else 1
            else:
                flavour = 0 if e_pt[best[0]] > m_pt[best[1]] else 1
        else:
            flavour = 0 if best[0] >= 0 else 1
        li = best[flavour]
        if flavour == 0:
            lpt, leta, lphi, lq = e_pt[li], e_eta[li], e_phi[li], e_q[li]
        else:
            lpt, leta, lphi, lq = m_pt[li], m_eta[li], m_phi[li], m_q[li]
        own = _own_track(leta, lphi, t0, t1, t_eta, t_phi)
        if lists:  # η-sorted views of the objects that enter cone sums, for the sweeps
            nt = _sorted_view(t0, t1, t_pt, t_eta, t_phi, d.ISO_TRACK_MIN_PT, v_eta[0], v_phi[0], v_pt[0], v_idx[0], v_pos[0], tmp, bins, wrap)
            npho = _sorted_view(p0, p1, p_et, p_eta, p_phi, d.ISO_CALO_MIN_ET, v_eta[1], v_phi[1], v_pt[1], v_idx[1], v_pos[1], tmp, bins, wrap)
            nneu = _sorted_view(n0, n1, n_et, n_eta, n_phi, d.ISO_CALO_MIN_ET, v_eta[2], v_phi[2], v_pt[2], v_idx[2], v_pos[2], tmp, bins, wrap)
        else:
            nt, npho, nneu = 0, 0, 0
        sizes = (nt, npho, nneu)
        for a in range(3 if lists else 0):
            for b in range(a, 3):
                # 2019: every object stays in its own sum (1 is subtracted from the charged one below).
                _sweep_pairs(sizes[a], v_eta[a], v_phi[a], v_pt[a], sizes[b], v_eta[b], v_phi[b], v_pt[b],
                             a == b, a == b and legacy_isolation, wrap, cone[a, b], cone[b, a])

        # High-level features.
        ht = 0.0
        nj = 0
        nb = 0
        for j in range(j_off[ev], j_off[ev + 1]):
            if j_pt[j] > d.JET_MIN_PT and abs(j_eta[j]) < d.JET_MAX_ETA:
                ht += j_pt[j]
                nj += 1
                if j_btag[j] > 0:
                    nb += 1
        met, mphi = 0.0, 0.0
        if met_off[ev + 1] > met_off[ev]:
            met, mphi = met_met[met_off[ev]], met_phi[met_off[ev]]
        mt2 = 2.0 * met * lpt * (1.0 - np.cos(_dphi(lphi, mphi)))
        mt = mt2 if mt_without_sqrt else np.sqrt(max(mt2, 0.0))
        h = hlf[ev]
        h[0], h[1], h[2], h[3], h[4], h[5] = ht, met, mphi, mt, nj, nb
        h[6], h[7], h[8] = lpt, leta, lphi
        h[9], h[10], h[11] = best_iso[flavour, 0], best_iso[flavour, 1], best_iso[flavour, 2]
        h[12], h[13] = lq, 1.0 if flavour == 0 else 0.0

        # Finite features only (checked row by row below).
        finite = not bad_input[ev]
        for c in range(d.N_HLF):
            if not np.isfinite(h[c]):
                finite = False

        # Particle list: lepton, tracks (skipping its own), photons, neutral hadrons; capped. Without
        # `lists` the rows are only counted, and filled only where one could be infinite with finite
        # inputs (E and pz = pT cosh η and pT sinh η, for |η| > ETA_ALWAYS_FINITE), so that the event
        # is final exactly when it is with the lists.
        k = 0
        r = rows[k]
        _fill(r, lpt, leta, lphi, 0.0, 0.0, 0.0, best_iso[flavour, 0], best_iso[flavour, 1], best_iso[flavour, 2])
        r[16] = 1.0 if flavour == 0 else 0.0
        r[17] = 1.0 - r[16]
        r[18] = lq
        finite = finite and _all_finite(r)
        dr_buf[k] = 0.0
        k += 1
        taken = 0
        for j in range(t0, t1):
            if taken >= max_tracks:
                break
            if not t_pt[j] > d.ISO_TRACK_MIN_PT:
                continue
            if legacy_selection:  # 2019: every track within ΔR ≤ 1e-4 of the lepton is its own
                if _dr2(leta, lphi, t_eta[j], t_phi[j]) <= d.OWN_TRACK_DR * d.OWN_TRACK_DR:
                    continue
            elif j == own:
                continue
            k += 1
            taken += 1
            if not lists and abs(t_eta[j]) <= ETA_ALWAYS_FINITE:
                continue
            ch, ga, ne = _row_isolation(cone, 0, v_pos[0, j - t0], t_pt[j], lists, legacy_isolation)
            r = rows[k - 1 if lists else 0]
            _fill(r, t_pt[j], t_eta[j], t_phi[j], t_x[j], t_y[j], t_z[j], ch, ga, ne)
            apid = abs(t_pid[j])
            if not legacy_particle_id:  # 2019: every track a charged hadron
                r[16] = 1.0 if apid == 11 else 0.0
                r[17] = 1.0 if apid == 13 else 0.0
            r[13] = 1.0 - r[16] - r[17]
            r[18] = np.sign(t_pid[j])
            finite = finite and _all_finite(r)
            dr_buf[k - 1] = _dr2(leta, lphi, t_eta[j], t_phi[j])
        for flavour_calo in range(2):
            c0, c1 = (p0, p1) if flavour_calo == 0 else (n0, n1)
            c_et = p_et if flavour_calo == 0 else n_et
            c_eta = p_eta if flavour_calo == 0 else n_eta
            c_phi = p_phi if flavour_calo == 0 else n_phi
            cap = max_photons if flavour_calo == 0 else max_neutrals
            taken = 0
            for j in range(c0, c1):
                if taken >= cap:
                    break
                if not c_et[j] > d.ISO_CALO_MIN_ET:
                    continue
                k += 1
                taken += 1
                if not lists and abs(c_eta[j]) <= ETA_ALWAYS_FINITE:
                    continue
                a = 1 + flavour_calo
                ch, ga, ne = _row_isolation(cone, a, v_pos[a, j - c0], c_et[j], lists, legacy_isolation)
                r = rows[k - 1 if lists else 0]
                _fill(r, c_et[j], c_eta[j], c_phi[j], 0.0, 0.0, 0.0, ch, ga, ne)
                r[14 if flavour_calo == 1 else 15] = 1.0
                finite = finite and _all_finite(r)
                dr_buf[k - 1] = _dr2(leta, lphi, c_eta[j], c_phi[j])

        # Then order by decreasing ΔR (the lepton, ΔR = 0, comes last).
        if not finite:
            continue
        cut[ev] = d.CUT_FINAL
        counts[ev] = k
        if not lists:
            continue
        _order_by_decreasing(dr_buf, k, order, tmp, bins)
        for i in range(k):
            out[cursor + i] = rows[order[i]]
        cursor += k
    return cursor


# With finite inputs (float32, |value| < 3.5e38) a particle row can only be infinite through
# pT cosh η or pT sinh η, and only beyond |η| ≈ 620 (cosh 620 ≈ 5e268; 5e268 × 3.5e38 < 1.8e308).
ETA_ALWAYS_FINITE = 600.0


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _all_finite(r: np.ndarray) -> bool:
    for c in range(len(r)):  # noqa: SIM110 (Numba compiles loops, not generators)
        if not np.isfinite(r[c]):
            return False
    return True


@numba.njit(cache=True, fastmath=_FAST)
def _order_by_decreasing(values: np.ndarray, k: int, order: np.ndarray, tmp: np.ndarray, bins: np.ndarray) -> None:
    """order[:k] = indices of values[:k] by decreasing value, ties in index order (a stable sort)."""
    for q in range(k):
        order[q] = q
    _stable_sort(order, k, values, -1.0, tmp, bins)


@numba.njit(cache=True, fastmath=_FAST, inline="always")
def _fill(r, pt_in, eta_in, phi_in, x, y, z, ch, ga, ne):
    # The EFlow columns may come as float32: every feature is computed in float64 all the same.
    pt, eta, phi = np.float64(pt_in), np.float64(eta_in), np.float64(phi_in)
    r[:] = 0.0
    grow = np.exp(eta)  # cosh and sinh from one exponential
    r[0] = pt * 0.5 * (grow + 1.0 / grow)
    r[1] = pt * np.cos(phi)
    r[2] = pt * np.sin(phi)
    r[3] = pt * np.sinh(eta) if abs(eta) < 0.1 else pt * 0.5 * (grow - 1.0 / grow)
    r[4] = pt
    r[5] = eta
    r[6] = phi
    r[7], r[8], r[9] = x, y, z
    r[10], r[11], r[12] = ch, ga, ne


@numba.njit(cache=True)
def _any_exponent_full(bits: np.ndarray, exponent: int, sign: int) -> bool:
    """Whether any of the floats (as their bits) is NaN or infinite: its exponent all ones, which is
    the one exponent that carries into the sign bit when its lowest bit is added. An OR of integers,
    which vectorises, where a test per value with early exits did not."""
    e = bits.dtype.type(exponent)
    low = bits.dtype.type(exponent & -exponent)
    top = bits.dtype.type(0)
    for i in range(len(bits)):
        top |= (bits[i] & e) + low
    return (top & bits.dtype.type(sign)) != 0


@numba.njit(cache=True)
def _mark_non_finite(offsets: np.ndarray, values: np.ndarray, bad: np.ndarray) -> None:
    for ev in range(len(offsets) - 1):
        for j in range(offsets[ev], offsets[ev + 1]):
            if not np.isfinite(values[j]):
                bad[ev] = True
                break


_EXPONENT = {4: (np.uint32, 0x7F800000, 1 << 31), 8: (np.uint64, 0x7FF0000000000000, 1 << 63)}


def non_finite(collections: dict[str, Collection], n_events: int) -> np.ndarray:
    """Events with a NaN or infinite value anywhere in their input objects (`ingest` stores its negation
    per event, as `finite`, so that the select pass need not read every column to know it)."""
    bad = np.zeros(n_events, dtype=np.bool_)
    for c in collections.values():
        for values in c.columns.values():
            if values.dtype.kind != "f":
                continue
            used = np.ascontiguousarray(values[c.offsets[0]:c.offsets[-1]])
            kind, exponent, sign = _EXPONENT[used.dtype.itemsize]
            if _any_exponent_full(used.view(kind), exponent, sign):  # rare: find the events
                _mark_non_finite(np.ascontiguousarray(c.offsets, dtype=np.int64) - c.offsets[0], used, bad)
    return bad


def take_events(collections: dict[str, Collection], events: np.ndarray) -> dict[str, Collection]:
    """The collections of the events `events` (indices into the batch, in that order) alone: a gather
    of their objects' values, without the Arrow take of the nested columns (which cost more than
    the kernel on them)."""
    events = np.asarray(events, dtype=np.int64)
    out = {}
    for name, c in collections.items():
        starts = np.asarray(c.offsets, dtype=np.int64)[events]
        lengths = np.asarray(c.offsets, dtype=np.int64)[events + 1] - starts
        offsets = np.zeros(len(events) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        out[name] = Collection(offsets, {f: values[index] for f, values in c.columns.items()})
    return out


# The input columns `compute` reads (a subset of the pipeline's collections; Charge of a track is its
# PID's sign, a jet's φ and mass enter no feature).
KERNEL_INPUTS: dict[str, tuple[str, ...]] = {
    "EFlowTrack": ("PT", "Eta", "Phi", "PID", "X", "Y", "Z"),
    "EFlowPhoton": ("ET", "Eta", "Phi"),
    "EFlowNeutralHadron": ("ET", "Eta", "Phi"),
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "MuonTight": ("PT", "Eta", "Phi", "Charge"),
    "Jet": ("PT", "Eta", "BTag"),
    "MissingET": ("MET", "Phi"),
}

# The inputs that enter the particle rows alone: `compute(lists=False)` needs them only to find events
# with a non-finite value, so it does without them when told which events those are (`bad_input`).
ROW_ONLY: dict[str, tuple[str, ...]] = {"EFlowTrack": ("PID", "X", "Y", "Z")}

CAPPED = {"tracks": ("EFlowTrack", "PT", d.ISO_TRACK_MIN_PT, d.MAX_TRACKS),
          "photons": ("EFlowPhoton", "ET", d.ISO_CALO_MIN_ET, d.MAX_PHOTONS),
          "neutral hadrons": ("EFlowNeutralHadron", "ET", d.ISO_CALO_MIN_ET, d.MAX_NEUTRALS)}


@numba.njit(cache=True)
def _more_above(offsets: np.ndarray, values: np.ndarray, threshold: float, cap: int, out: np.ndarray) -> None:
    for ev in range(len(offsets) - 1):
        n = 0
        for j in range(offsets[ev], offsets[ev + 1]):
            if values[j] > threshold:  # NaN is not above
                n += 1
        out[ev] = n > cap


def capped(collections: dict[str, Collection]) -> dict[str, np.ndarray]:
    """Per event and particle kind, whether more objects pass the particle-list threshold than the list
    takes (the lepton's own track counted among the tracks): the rest are left out of the list."""
    out = {}
    for kind, (name, field, threshold, cap) in CAPPED.items():
        c = collections[name]
        out[kind] = np.zeros(len(c.offsets) - 1, dtype=np.bool_)
        _more_above(np.ascontiguousarray(c.offsets, dtype=np.int64), c.columns[field], threshold, cap, out[kind])
    return out


def compute(collections: dict[str, Collection], options: d.FeatureOptions = d.FeatureOptions(),
            max_tracks: int = d.MAX_TRACKS, max_photons: int = d.MAX_PHOTONS,
            max_neutrals: int = d.MAX_NEUTRALS, lists: bool = True, bad_input: np.ndarray | None = None) -> EventFeatures:
    """Features of every event in the batch (see the module docstring and docs/physics.md).

    With `lists=False` the particle lists are not built: no isolation cones but the lepton's, and
    `particles` is empty; the cut flow, the HLF and `counts` are those of `lists=True`. (A row's
    cone sums are finite whenever the event's inputs are, so the finiteness that makes an event final
    does not depend on them.) The features stage selects with it and builds the lists only for the
    events it keeps.

    `bad_input`: the events with a non-finite input value, when the caller knows them (an ingested
    dataset's `finite` column); the collections' values are then not checked, and with `lists=False`
    the ROW_ONLY columns may be left out."""
    t, p, n = collections["EFlowTrack"], collections["EFlowPhoton"], collections["EFlowNeutralHadron"]
    e, m, j, met = collections["Electron"], collections["MuonTight"], collections["Jet"], collections["MissingET"]
    n_events = len(t.offsets) - 1
    bound = (1 + np.minimum(np.diff(t.offsets), max_tracks) + np.minimum(np.diff(p.offsets), max_photons)
             + np.minimum(np.diff(n.offsets), max_neutrals))
    cut = np.zeros(n_events, dtype=np.int8)
    # Written in float32 directly (the kernel computes in float64 and rounds once on the store).
    hlf = np.zeros((n_events, d.N_HLF), dtype=np.float32)
    counts = np.zeros(n_events, dtype=np.int32)
    out = np.empty((int(bound.sum()) if lists else 0, d.N_PARTICLE_FEATURES), dtype=np.float32)

    def f64(c: Collection, name: str) -> np.ndarray:
        return np.ascontiguousarray(c.columns[name], dtype=np.float64)

    def f32(values: np.ndarray) -> np.ndarray:
        # The EFlow objects are most of the values: float32 as stored (the kernel widens each value it
        # loads, exactly), where a float64 copy of them cost 5 % of the features stage.
        return values if values.dtype == np.float32 and values.flags.c_contiguous else np.ascontiguousarray(values, dtype=np.float64)

    def eflow(c: Collection, name: str) -> np.ndarray:
        return f32(c.columns[name])

    def off(c: Collection) -> np.ndarray:
        return np.ascontiguousarray(c.offsets, dtype=np.int64)

    def row_only(name: str, dtype: type) -> np.ndarray:
        if name in t.columns or lists or bad_input is None:
            return t.columns[name]
        # Read only for rows with |η| > ETA_ALWAYS_FINITE, whose finiteness `bad_input` already says.
        return np.zeros(len(t.columns["PT"]), dtype=dtype)

    pid = row_only("PID", np.int32)
    used = _kernel(off(t), eflow(t, "PT"), eflow(t, "Eta"), eflow(t, "Phi"),
                   pid if pid.dtype == np.int32 and pid.flags.c_contiguous else np.ascontiguousarray(pid, dtype=np.int64),
                   *(f32(row_only(name, np.float32)) for name in ("X", "Y", "Z")),
                   off(p), eflow(p, "ET"), eflow(p, "Eta"), eflow(p, "Phi"),
                   off(n), eflow(n, "ET"), eflow(n, "Eta"), eflow(n, "Phi"),
                   off(e), f64(e, "PT"), f64(e, "Eta"), f64(e, "Phi"), f64(e, "Charge"),
                   off(m), f64(m, "PT"), f64(m, "Eta"), f64(m, "Phi"), f64(m, "Charge"),
                   off(j), f64(j, "PT"), f64(j, "Eta"), f64(j, "BTag"),
                   off(met), f64(met, "MET"), f64(met, "Phi"),
                   options.mt_without_sqrt, options.lepton_choice_by_eta, options.legacy_isolation,
                   options.legacy_selection, options.legacy_particle_id,
                   non_finite(collections, n_events) if bad_input is None else np.ascontiguousarray(bad_input, dtype=np.bool_),
                   cut, hlf, counts, out, max_tracks, max_photons, max_neutrals, lists)
    return EventFeatures(cut, hlf, counts, out[:used])
