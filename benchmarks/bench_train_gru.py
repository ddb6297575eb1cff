"""The training loop (`topotrigger train`, in process, one thread) of a GRU model with its GRU over all
of a batch's padded steps against the GRU in slices of 32 steps (`train/models.py`), for several
batch sizes, the two alternating round after round on the same features dataset. Prints each epoch's
events/s (from the run's history) and the last epoch's validation AUCs, which must agree between the
two (the same arithmetic).

Usage: python benchmarks/bench_train_gru.py --data FEATURES_DIR [--batch-sizes 64,128,256] [--rounds 2]
       [--model inclusive] [--epochs 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from topotrigger.train import models
from topotrigger.train.loop import TrainSettings
from topotrigger.train.stage import train

REFERENCE_CPU_EVENTS_PER_CORE = 31.0  # 2020: inclusive GRU, ~740 events/s with 4 TF workers on 24 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-sizes", default="64,128,256")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="inclusive")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for gru, steps in (("padded", 0), ("sliced", 32)):
                for batch in (int(b) for b in args.batch_sizes.split(",")):
                    models._SequenceModel.chunk_steps = steps
                    history = train(TrainSettings(model=args.model, epochs=args.epochs, batch_size=batch), args.data,
                                    f"{tmp}/{rnd}-{gru}-{batch}")
                    rates = [e["events_per_s"] for e in history["epochs"]]
                    auc = [round(a, 4) for a in history["epochs"][-1]["val_auc"]]
                    rows.append({"round": rnd, "gru": gru, "batch": batch, "events_per_s": rates, "val_auc": auc})
                    print(f"round {rnd} {gru:7} batch {batch:5}: events/s per epoch "
                          f"{', '.join(f'{r:.0f}' for r in rates)} ({min(rates) / REFERENCE_CPU_EVENTS_PER_CORE:.1f}–"
                          f"{max(rates) / REFERENCE_CPU_EVENTS_PER_CORE:.1f}x the 2020 CPU figure); val AUC {auc}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
