"""The feature contract: names (and from them sizes and indices), cuts and options (docs/physics.md)."""

from __future__ import annotations

from dataclasses import dataclass

HLF_NAMES: tuple[str, ...] = ("HT", "MET", "phiMET", "MT", "nJets", "nBjets", "LepPt", "LepEta", "LepPhi",
                              "LepIsoCh", "LepIsoGamma", "LepIsoNeu", "LepCharge", "LepIsEle")
PARTICLE_NAMES: tuple[str, ...] = ("E", "Px", "Py", "Pz", "Pt", "Eta", "Phi", "vtxX", "vtxY", "vtxZ",
                                   "ChPFIso", "GammaPFIso", "NeuPFIso", "isChHad", "isNeuHad", "isGamma",
                                   "isEle", "isMu", "Charge")
N_HLF, N_PARTICLE_FEATURES = len(HLF_NAMES), len(PARTICLE_NAMES)
# Where each feature sits in an event's HLF vector or a particle's row: code names features, not positions.
HLF_INDEX: dict[str, int] = {name: i for i, name in enumerate(HLF_NAMES)}
PARTICLE_INDEX: dict[str, int] = {name: i for i, name in enumerate(PARTICLE_NAMES)}
N_CLASSES = 3  # qcd, ttbar, wjets: the labels 0, 1, 2 of every dataset and the outputs of every model

ISO_CONE = 0.3
ISO_TRACK_MIN_PT = 0.5
ISO_CALO_MIN_ET = 1.0
LEPTON_MIN_PT = 23.0
LEPTON_MAX_ISO = 0.45
MAX_TRACKS, MAX_PHOTONS, MAX_NEUTRALS = 450, 150, 200
MAX_PARTICLES = 1 + MAX_TRACKS + MAX_PHOTONS + MAX_NEUTRALS   # 801
OWN_TRACK_DR = 1e-4
JET_MIN_PT, JET_MAX_ETA = 30.0, 2.6

# Cut-flow steps an event reaches (stored per event; "final" means all features are finite).
CUT_IN, CUT_CANDIDATE, CUT_PT, CUT_ISOLATION, CUT_FINAL = 0, 1, 2, 3, 4
CUT_NAMES = ("in", "lepton candidate", "lepton pT > 23", "lepton isolated", "final (finite features)")


@dataclass(frozen=True)
class FeatureOptions:
    """Switches that reproduce the 2019 code's quirks, for comparisons; all off by default."""

    mt_without_sqrt: bool = False        # 2019: MT = 2·MET·pT·(1 − cos Δφ), no square root
    lepton_choice_by_eta: bool = False   # 2019: electron vs muon decided by comparing η, not pT
    # 2019 isolation: every object (the lepton's own track included) stays in its own sums and 1 is
    # subtracted from every relative charged isolation (right for tracks, wrong for the lepton whose
    # track pT differs, for photons and neutral hadrons); Δφ in the cones is not wrapped at ±π.
    legacy_isolation: bool = False
    # 2019 selection: no event without a track > 0.5, a photon > 1 and a neutral hadron > 1 GeV; the
    # first qualifying lepton of each flavour in list order; every track within ΔR ≤ 1e-4 of it left out.
    legacy_selection: bool = False
    legacy_particle_id: bool = False     # 2019: every track a charged hadron (isEle = isMu = 0)


# The 2019 recipe (`features --recipe 2019`): every quirk of the 2019 feature code.
RECIPE_2019 = FeatureOptions(True, True, True, True, True)
