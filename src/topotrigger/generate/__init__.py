"""Event generation: Pythia 8 -> vectorised fast detector simulation -> Delphes-like ROOT files.

Layers, each usable alone:
- `processes`: the Pythia settings of each class and profile (the physics choices);
- `pythia`: runs Pythia in batches, applies the generator-level lepton filter, returns awkward events;
- `detector`: the fast detector simulation, pure NumPy/Awkward over whole batches (no Spark, no Pythia);
- `jets`: anti-kT clustering (FastJet multi-event API) and b-tagging;
- `writer`: Delphes-named TTrees through uproot, written atomically;
- `stage`: one Spark task per file, resume, manifest; `validation`: the plots.
"""
