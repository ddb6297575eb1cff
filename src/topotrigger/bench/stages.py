"""One benchmark pass in one Spark session: every stage on a dataset sized by `scale`, timed.

Run as `python -m topotrigger.bench.stages --master M --scale S --out DIR`, one process per Spark
master (a process can hold only one SparkContext). Writes DIR/result.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from topotrigger.config import FeaturesConfig, GenerateConfig, IngestConfig, SparkConfig
from topotrigger.io.atomic import write_json

EVENTS_PER_SCALE = 1000  # generated events per class at scale 1


def run(master: str, scale: float, out: Path, cores: int) -> dict[str, Any]:
    from topotrigger.evaluate.stage import score_dataset  # noqa: F401  (import cost outside the timings)
    from topotrigger.features.stage import features
    from topotrigger.generate.stage import generate
    from topotrigger.ingest.stage import ingest
    from topotrigger.predict.stage import predict
    from topotrigger.runtime import get_spark
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.stage import train

    spark = get_spark(SparkConfig(master=master, executor_memory="1g" if master.startswith("spark://") else None),
                      out)
    spark.range(cores * 4, numPartitions=cores * 4).count()  # executors up and Python workers started
    events = max(int(EVENTS_PER_SCALE * scale), 50)
    stages: dict[str, dict[str, float]] = {}

    def timed(name: str, count: Any, body: Any) -> Any:
        start = time.perf_counter()
        result = body()
        seconds = time.perf_counter() - start
        n = count(result)
        stages[name] = {"events": n, "seconds": seconds, "events_per_s": n / seconds,
                        "events_per_s_per_core": n / seconds / cores}
        return result

    # One file per core and class, so that every core has generation work.
    gen_cfg = GenerateConfig(events=events, files_per_class=cores, seed=99)
    timed("generate", lambda r: sum(f["events"] for f in r.files),
          lambda: generate(gen_cfg, out / "generate", spark, progress=False, plots=False))
    ingest_cfg = IngestConfig(partition_bytes=8 * 1024 * 1024)  # several partitions per core at small scales
    timed("ingest", lambda r: sum(r.counts.values()),
          lambda: ingest(ingest_cfg, [str(out / "generate")], str(out / "ingest"), spark, overwrite=True))
    timed("features", lambda r: r.events_in,
          lambda: features(FeaturesConfig(), str(out / "ingest"), str(out / "features"), spark, overwrite=True))
    settings = TrainSettings(model="inclusive", epochs=2, batch_size=64, patience=10)
    history = timed("train", lambda h: sum(e["events"] for e in h["epochs"]),
                    lambda: train(settings, str(out / "features"), str(out / "model"), cores, spark if cores > 1 else None))
    # Steady state: the last epoch's training throughput, without the start-up of the DDP processes
    # and without validation, which the wall time above includes.
    last = history["epochs"][-1]["events_per_s"]
    stages["train"] |= {"events_per_s": last, "events_per_s_per_core": last / cores,
                        "wall_events_per_s": stages["train"]["events_per_s"]}
    timed("predict", lambda r: r.events,
          lambda: predict(str(out / "model"), str(out / "features" / "train"), str(out / "scores"), spark, overwrite=True))
    spark.stop()
    return {"master": master, "cores": cores, "scale": scale, "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--master", required=True)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "result.json", run(args.master, args.scale, args.out, args.cores))


if __name__ == "__main__":
    main()
