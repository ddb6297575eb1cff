"""Effect of each behaviour of the 2019 recipe alone, against the default recipe, on ingested events:
events selected differently, and among events selected by both, how many HLF values and particle rows
change (beyond float32 rounding). Prints a Markdown table (docs/physics.md).

Usage: python benchmarks/recipe_2019_effects.py INGESTED_DIR
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from topotrigger.features.arrow import collections_of
from topotrigger.features.ingested import plan, read
from topotrigger.features.kernels import definitions as d
from topotrigger.features.kernels.events import compute

FLAGS = ("mt_without_sqrt", "lepton_choice_by_eta", "legacy_isolation", "legacy_selection", "legacy_particle_id")


def main(path: str) -> None:
    batches = [b for piece in plan(path) for b in read(piece)]
    base = [compute(collections_of(b)) for b in batches]
    events = sum(len(f.cut) for f in base)
    print(f"{events} events, {sum(int((f.cut == d.CUT_FINAL).sum()) for f in base)} selected by the default recipe\n")
    print("| behaviour | events selected differently | events with any HLF changed | particle rows changed (per 1,000 events) |")
    print("|---|---|---|---|")
    for flag in (*FLAGS, "all (the 2019 recipe)"):
        options = d.RECIPE_2019 if flag.startswith("all") else dataclasses.replace(d.FeatureOptions(), **{flag: True})
        moved = hlf_changed = rows_changed = 0
        for batch, ref in zip(batches, base):
            alt = compute(collections_of(batch), options)
            a, b = ref.cut == d.CUT_FINAL, alt.cut == d.CUT_FINAL
            moved += int((a != b).sum())
            both = np.flatnonzero(a & b)
            hlf_changed += int((~np.isclose(ref.hlf[both], alt.hlf[both], rtol=1e-5, atol=1e-6)).any(axis=1).sum())
            ra, rb = np.concatenate([[0], np.cumsum(ref.counts)]), np.concatenate([[0], np.cumsum(alt.counts)])
            for i in both:
                x, y = ref.particles[ra[i]:ra[i + 1]], alt.particles[rb[i]:rb[i + 1]]
                if x.shape != y.shape:
                    rows_changed += max(len(x), len(y))
                    continue
                # Row by row in the default's order: the rows are sorted by ΔR, the same in both.
                rows_changed += int((~np.isclose(x, y, rtol=1e-5, atol=1e-5)).any(axis=1).sum())
        name = f"`--{flag.replace('_', '-')}`" if not flag.startswith("all") else "`--recipe 2019` (all)"
        print(f"| {name} | {moved} | {hlf_changed} | {1000 * rows_changed / events:,.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
