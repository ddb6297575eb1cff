"""Distributed data-parallel training through Spark's TorchDistributor: the Spark side is a thin
barrier job (or local torchrun) around `distributed_main`, a plain function of this package so
that torchrun children and executors can import it."""

from __future__ import annotations

import os
from typing import Any


def distributed_main(settings: dict[str, Any], data_dir: str, out_dir: str, resume: bool, gpu: bool) -> dict[str, Any]:
    import torch

    from topotrigger.train.loop import TrainSettings, run_training

    backend = "nccl" if gpu and torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    try:
        history = run_training(TrainSettings(**settings), data_dir, out_dir, resume=resume, gpu=gpu,
                               quiet=int(os.environ.get("RANK", "0")) != 0)
    finally:
        torch.distributed.destroy_process_group()
    # In local mode every rank writes the result pickle: make all ranks return the same thing.
    return history
