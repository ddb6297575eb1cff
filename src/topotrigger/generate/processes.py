"""Pythia 8 settings per class and profile. Every number here is documented in docs/generation.md."""

from __future__ import annotations

COMMON = [
    "Beams:eCM = 13000.",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showProcesses = off",
    "Init:showMultipartonInteractions = off",
    "Random:setSeed = on",
]

# `cms`: the underlying event on (Pythia's default MPI tune), with pile-up by default; `quick`: MPI off
# and no pile-up by default, several times faster, for tests and quick looks.
PROFILES = {
    "cms": ["PartonLevel:MPI = on"],
    "quick": ["PartonLevel:MPI = off"],
}

# The mean pile-up of a profile when none is given: 2017 CMS running averaged ⟨μ⟩ ≈ 32 (2016: ≈ 27).
DEFAULT_PILEUP = {"cms": 30.0, "quick": 0.0}

# b hadrons whose decays are forced semileptonic (e or mu) in the QCD sample.
B_HADRONS = (511, 521, 531, 5122)

CLASS_SETTINGS: dict[str, list[str]] = {
    # Heavy-flavour QCD: the isolated-lepton QCD background of a single-lepton trigger is dominated
    # by semileptonic b decays; forcing them (and a pT-hat cut) makes it ~1e4 times cheaper to fill.
    "qcd": [
        "HardQCD:hardbbbar = on",
        "PhaseSpace:pTHatMin = 30.",
        *[f"{pid}:onMode = off" for pid in B_HADRONS],
        *[f"{pid}:onIfAny = 11 13" for pid in B_HADRONS],
    ],
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off"],
    "wjets": [
        "WeakBosonAndParton:qqbar2Wg = on",
        "WeakBosonAndParton:qg2Wq = on",
        "PhaseSpace:pTHatMin = 20.",
        "24:onMode = off",
        "24:onIfAny = 11 13",
    ],
}

# Hadrons whose decay tables a class restricts: each decay weighs the event by its open fraction.
FORCED_DECAYS: dict[str, tuple[int, ...]] = {"qcd": B_HADRONS}

# Disjoint configurations of equal cross-section that a class's files take turns to produce: ttbar files
# make W+ → ℓν, W- → qq̄' or the mirror (`ttbar_lepton_side`); Pythia's cross-section is that of one, and tt̄
# production is charge-symmetric, so the semileptonic cross-section is twice it.
CONFIGURATIONS = {"ttbar": 2}

# Process codes written as Event.ProcessID (the class's hard process; Pythia's per-event code is not
# in the batch record).
PROCESS_ID = {"qcd": 121, "ttbar": 601, "wjets": 221}


def ttbar_lepton_side(file_index: int) -> list[str]:
    """Semileptonic ttbar: W+ leptonic in even files, W- in odd ones, so both charges are produced."""
    leptonic, hadronic = ("Pos", "Neg") if file_index % 2 == 0 else ("Neg", "Pos")
    return [f"24:on{leptonic}IfAny = 11 13", f"24:on{hadronic}IfAny = 1 2 3 4 5"]


def pythia_settings(process: str, profile: str, seed: int, file_index: int = 0) -> list[str]:
    settings = [*COMMON, *PROFILES[profile], f"Random:seed = {seed}", *CLASS_SETTINGS[process]]
    if process == "ttbar":
        settings += ttbar_lepton_side(file_index)
    return settings


def minbias_settings(seed: int) -> list[str]:
    """Minimum-bias (soft QCD, non-diffractive + diffractive) events for pile-up overlay. Always with
    multi-parton interactions: Pythia cannot make non-diffractive events without them."""
    return [*COMMON, *PROFILES["cms"], f"Random:seed = {seed}", "SoftQCD:inelastic = on"]
