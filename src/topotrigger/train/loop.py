"""The training loop: Adam, a plateau learning-rate schedule, early stopping on validation loss,
history.json, checkpoints (every epoch and every K steps) and resume. Rank 0 alone writes.

Works in one process or as a DDP rank (gloo on CPU, NCCL on GPU); the caller sets up the process
group. Global batch = batch_size × world size; the learning rate is scaled by √world (documented in
docs/training.md), a common rule for Adam.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from topotrigger.errors import ConfigError, UserError
from topotrigger.io import storage
from topotrigger.io.atomic import atomic_path, remove_stale_temporaries, write_json
from topotrigger.modeldir import class_names
from topotrigger.train.data import ParquetEvents, validation_source
from topotrigger.train.metrics import classification_metrics
from topotrigger.train.models import USES_PARTICLES, build_model, model_params


class DivergedError(UserError, FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass
class TrainSettings:
    model: str = "hlf"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 7
    params: dict[str, Any] = field(default_factory=dict)
    patience: int = 3
    checkpoint_every_steps: int = 0
    shuffle_buffer: int = 20_000
    length_buckets: bool = False  # batches of events of similar length (train/data.py): faster, trains worse


def _device(gpu: bool) -> torch.device:
    if gpu and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def evaluate(model: nn.Module, data: ParquetEvents, device: torch.device) -> tuple[float, dict[str, Any], np.ndarray, np.ndarray]:
    model.eval()
    losses, probs, labels = [], [], []
    with torch.no_grad():
        for batch in data:
            batch = batch.to(device)
            logits = model(batch.hlf, batch.particles, batch.lengths)
            losses.append(nn.functional.cross_entropy(logits, batch.labels, reduction="sum").item())
            probs.append(torch.softmax(logits, dim=1).cpu().numpy())
            labels.append(batch.labels.cpu().numpy())
    p = np.concatenate(probs) if probs else np.zeros((0, 3))
    y = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    return sum(losses) / max(len(y), 1), classification_metrics(p, y), p, y


# What a checkpoint must share with the run resuming it: the network (its weights only fit that shape).
# The optimizer continues with its checkpointed state, learning rate included; the number of epochs
# may grow (resuming to train longer is the point).
RESUME_KEYS = ("model", "params")


def _arguments(settings: TrainSettings, params: dict[str, Any]) -> dict[str, Any]:
    return {"model": settings.model, "params": params, "batch_size": settings.batch_size, "lr": settings.lr,
            "seed": settings.seed}


def _save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     epoch: int, step: int, best: float, bad_epochs: int, arguments: dict[str, Any],
                     settings: TrainSettings) -> None:
    state = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "epoch": epoch, "step": step, "best_val_loss": best,
             "bad_epochs": bad_epochs, "arguments": arguments, "settings": asdict(settings)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", model)
    return inner if isinstance(inner, nn.Module) else model


@dataclass
class _State:
    """One training run in progress: the network, its optimiser and schedule, and where it stands."""

    settings: TrainSettings
    params: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    out: Path
    rank: int
    world: int
    step: int = 0
    best: float = math.inf
    bad_epochs: int = 0
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: str = "val/"
    classes: list[str] = field(default_factory=lambda: class_names(None))

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoint.pt"

    @property
    def arguments(self) -> dict[str, Any]:
        return _arguments(self.settings, self.params)

    def save_checkpoint(self, epoch: int) -> None:
        _save_checkpoint(self.checkpoint, self.model, self.optimizer, self.scheduler, epoch, self.step, self.best,
                         self.bad_epochs, self.arguments, self.settings)

    def resume(self, device: torch.device) -> None:
        """Continue from the checkpoint (refused if it was written for other hyperparameters)."""
        state = torch.load(self.checkpoint, map_location=device, weights_only=True)
        check_resumable(state, self.arguments, self.checkpoint)
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch, self.step = state["epoch"] + 1, state["step"]
        self.best, self.bad_epochs = state["best_val_loss"], state["bad_epochs"]
        if (self.out / "history.json").is_file():
            self.history = json.loads((self.out / "history.json").read_text())["epochs"][:self.start_epoch]

    def summary(self) -> dict[str, Any]:
        return {"settings": asdict(self.settings), "params": self.params, "world_size": self.world,
                "validation": self.validation, "epochs": self.history}


def _setup(settings: TrainSettings, out: Path, device: torch.device) -> _State:
    """1. The network (wrapped for DDP when distributed), Adam with the √world learning-rate rule, the schedule."""
    rank, world = _rank_world()
    torch.manual_seed(settings.seed)
    params = model_params(settings.model, settings.params)
    model = build_model(settings.model, params).to(device)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr * math.sqrt(world))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    return _State(settings, params, model, optimizer, scheduler, out, rank, world)


def _train_epoch(run: _State, train: ParquetEvents, epoch: int, device: torch.device, quiet: bool) -> tuple[int, float]:
    """2. One pass over this rank's share of the training split; (events seen, summed loss)."""
    settings, model, optimizer = run.settings, run.model, run.optimizer
    train.set_epoch(epoch)
    model.train()
    seen, total_loss, t0 = 0, 0.0, time.perf_counter()
    join = model.join() if isinstance(model, nn.parallel.DistributedDataParallel) else contextlib.nullcontext()
    # A bar only on a terminal: piped (CI, `make demo > log`) it would leave a blank line per epoch.
    progress = _Bar(not quiet and run.rank == 0 and sys.stdout.isatty(), f"epoch {epoch + 1}", math.ceil(train.num_events / run.world / settings.batch_size))
    with join, progress as bar:
        for batch in train:
            batch = batch.to(device)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(batch.hlf, batch.particles, batch.lengths), batch.labels)
            if not torch.isfinite(loss):
                raise DivergedError(f"training diverged at epoch {epoch}, step {run.step} (loss {loss.item()}); "
                                    f"the last good checkpoint is {run.checkpoint}; try a smaller --lr")
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            run.step += 1
            seen += len(batch.labels)
            total_loss += loss.item() * len(batch.labels)
            bar.advance(seen * run.world / max(time.perf_counter() - t0, 1e-9))
            if run.rank == 0 and settings.checkpoint_every_steps and run.step % settings.checkpoint_every_steps == 0:
                run.save_checkpoint(epoch - 1)
    return seen, total_loss


def _end_epoch(run: _State, val: ParquetEvents, epoch: int, seen: int, total_loss: float, seconds: float,
               device: torch.device, quiet: bool) -> None:
    """3. Validate, step the schedule, track the best loss; rank 0 writes the best weights, the
    checkpoint and the history."""
    rank0_seen = seen
    if run.world > 1:
        # Ranks may hold unequal shares (units are dealt round-robin): count every rank's events, not
        # rank 0's times the world size. NCCL reduces on the GPU, gloo on the CPU.
        where = device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
        totals = torch.tensor([float(seen), total_loss], dtype=torch.float64, device=where)
        torch.distributed.all_reduce(totals)
        seen, total_loss = int(totals[0].item()), float(totals[1].item())
    val_loss, val_metrics, _, _ = evaluate(_unwrap(run.model), val, device)
    run.scheduler.step(val_loss)
    improved = val_loss < run.best
    run.best, run.bad_epochs = (val_loss, 0) if improved else (run.best, run.bad_epochs + 1)
    record = {"epoch": epoch, "train_loss": total_loss / max(seen, 1), "val_loss": val_loss,
              "val_accuracy": val_metrics["accuracy"], "val_auc": val_metrics["auc"],
              "lr": run.optimizer.param_groups[0]["lr"], "seconds": seconds,
              "events": seen, "events_per_s": seen / max(seconds, 1e-9), "rank0_events": rank0_seen}
    run.history.append(record)
    if run.rank != 0:
        return
    if improved:
        with atomic_path(run.out / "model.pt") as tmp:
            torch.save(_unwrap(run.model).state_dict(), tmp)
    run.save_checkpoint(epoch)
    write_json(run.out / "history.json", run.summary())
    if not quiet:
        auc = ", ".join(f"{c} {a:.3f}" for c, a in zip(run.classes, record["val_auc"]))
        print(f"{run.settings.model} epoch {epoch + 1}/{run.settings.epochs}: train loss {record['train_loss']:.4f}, "
              f"val loss {val_loss:.4f}, val acc {record['val_accuracy']:.3f}, val AUC {auc}, "
              f"{record['events_per_s']:.0f} events/s", flush=True)


def run_training(settings: TrainSettings, data_dir: str, out_dir: str, resume: bool = False, gpu: bool = False,
                 quiet: bool = False) -> dict[str, Any]:
    """Train `settings.model` on DATA/train, validate on DATA/val (or a seeded share of DATA/train when the
    dataset has no val/); returns the history (same on every rank). On a CPU each training process
    computes with one thread: PyTorch's intra-op threads slow the small GRU matrices down (3× slower
    with two threads on the project machine, docs/performance.md); more cores go to `--workers`."""
    device = _device(gpu)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _run_training(settings, data_dir, out_dir, resume, device, quiet)
    finally:
        torch.set_num_threads(threads)


def _run_training(settings: TrainSettings, data_dir: str, out_dir: str, resume: bool, device: torch.device,
                  quiet: bool) -> dict[str, Any]:
    run = _setup(settings, Path(out_dir), device)
    metadata = storage.join(data_dir, "metadata.json")
    run.classes = class_names(storage.read_json(metadata).get("label_names") if storage.exists(metadata) else None)
    particles = USES_PARTICLES[settings.model]
    # Validation (early stopping, schedule, best weights) never sees test/: that split is evaluate's alone.
    val_path, train_holdout, val_holdout, run.validation = validation_source(data_dir, settings.seed)
    train = ParquetEvents(f"{data_dir}/train", settings.batch_size, run.rank, run.world, shuffle=True,
                          buffer_events=settings.shuffle_buffer, seed=settings.seed, with_particles=particles,
                          holdout=train_holdout, length_buckets=settings.length_buckets)
    val = ParquetEvents(val_path, 1024, 0, 1, shuffle=False, with_particles=particles, holdout=val_holdout)
    if val_holdout is not None and run.rank == 0 and not quiet:
        print(f"validation events: {run.validation}", flush=True)
    if resume and run.checkpoint.is_file():
        run.resume(device)
    if run.rank == 0:
        run.out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run.out)  # a killed run may have died while writing a checkpoint

    for epoch in range(run.start_epoch, settings.epochs):
        if run.bad_epochs > settings.patience:
            break
        t0 = time.perf_counter()
        seen, total_loss = _train_epoch(run, train, epoch, device, quiet)
        _end_epoch(run, val, epoch, seen, total_loss, time.perf_counter() - t0, device, quiet)
    result = run.summary()
    if run.world > 1:
        # DDP keeps replicas in step; record that it did (every rank gets the same answer).
        flat = torch.cat([p.detach().reshape(-1).cpu() for p in _unwrap(run.model).parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(run.world)]
        torch.distributed.all_gather(gathered, flat)
        result["replicas_identical"] = all(torch.equal(gathered[0], g) for g in gathered[1:])
    return result


def check_resumable(state: dict[str, Any], arguments: dict[str, Any], path: Path) -> None:
    """Refuse, in one line, to resume a checkpoint written for another model or other hyperparameters."""
    saved = state.get("arguments")
    if saved is None:
        raise ConfigError(f"{path} records no model arguments (written by an older version): "
                        "train without --resume, or into another --out")
    differ = [f"{k} {saved.get(k)!r} -> {arguments[k]!r}" for k in RESUME_KEYS if saved.get(k) != arguments[k]]
    if differ:
        raise ConfigError(f"cannot resume {path}: it was written with other settings ({'; '.join(differ)}); "
                        "train without --resume, or into another --out")


class _Bar:
    """A rich progress bar over the batches of an epoch, with throughput; silent when not shown."""

    def __init__(self, show: bool, description: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]:.0f} events/s"), TimeElapsedColumn(),
                                 transient=True, disable=not show)
        self.task = self.progress.add_task(description, total=total, rate=0.0)

    def __enter__(self) -> "_Bar":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def advance(self, rate: float) -> None:
        self.progress.update(self.task, advance=1, rate=rate)
