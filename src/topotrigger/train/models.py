"""The classifiers (docs/training.md). Particle sequences are processed up to the batch's longest
real length, never as 801 padded steps. The GRU runs over the batch's padded steps and takes each
event's state at its own last step: PyTorch's fused GRU does that 6–24× faster on a CPU, and
1.5–3.6× faster on a GPU at batches of 256–1,024, than over packed sequences (docs/performance.md), which stay available
(`packed = True`) for comparison.

Every model takes (hlf [B, N_HLF], particles [B, L, N_FEATURES], lengths [B]) and returns logits
[B, N_CLASSES], with the sizes of the feature contract (`features.kernels.definitions`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from topotrigger.features.kernels.definitions import N_CLASSES, N_HLF
from topotrigger.features.kernels.definitions import N_PARTICLE_FEATURES as N_FEATURES

DEFAULTS: dict[str, dict[str, Any]] = {
    "hlf": {"nh1": 50, "nh2": 20, "nh3": 10},
    "particle": {"hidden": 50, "dropout": 0.2},
    "inclusive": {"hidden": 50, "dropout": 0.2, "dense": 25},
    "transformer": {"d_model": 32, "heads": 4, "layers": 2, "dropout": 0.1, "dense": 32},
}
MODELS = tuple(DEFAULTS)
USES_PARTICLES = {"hlf": False, "particle": True, "inclusive": True, "transformer": True}


class HLFClassifier(nn.Module):
    def __init__(self, nh1: int, nh2: int, nh3: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_HLF, nh1), nn.ReLU(), nn.Linear(nh1, nh2), nn.ReLU(),
                                 nn.Linear(nh2, nh3), nn.ReLU(), nn.Linear(nh3, N_CLASSES))

    def forward(self, hlf: torch.Tensor, particles: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(hlf)
        return logits


def _last_gru_state(gru: nn.GRU, particles: torch.Tensor, lengths: torch.Tensor, packed: bool,
                    chunk_steps: int = 0) -> torch.Tensor:
    lengths = lengths.clamp(min=1)
    if packed:
        _, h = gru(pack_padded_sequence(particles, lengths.cpu(), batch_first=True, enforce_sorted=False))
        last: torch.Tensor = h[-1]
        return last
    if chunk_steps and particles.device.type == "cpu":
        return _chunked_last_state(gru, particles, lengths, chunk_steps)
    # The GRU is causal, so its output at step length-1 of the padded sequence is the packed final
    # state (the same numbers; exporters can trace it, and on a GPU it is the faster of the two).
    out, _ = gru(particles)
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[2])
    state: torch.Tensor = out.gather(1, index).squeeze(1)
    return state


def _chunked_last_state(gru: nn.GRU, particles: torch.Tensor, lengths: torch.Tensor, chunk: int) -> torch.Tensor:
    """The padded GRU in slices of `chunk` steps, each over the events still running: events sorted by
    length, slice k runs the fused kernel on those longer than k·chunk from their state after slice
    k-1. An event costs its length rounded up to a slice, not the batch's longest length (at 200–490
    particles per event that is a third less work)."""
    order = torch.argsort(lengths, descending=True)
    x, lens = particles[order], lengths[order]
    # Events longer than each slice start, counted on the ascending negated lengths: a prefix each time.
    starts = np.arange(0, int(lens[0]), chunk)
    longer = np.searchsorted(-lens.cpu().numpy(), -np.append(starts, starts[-1] + chunk), side="left").tolist()
    pieces: list[torch.Tensor] = []
    h: torch.Tensor | None = None
    for i, start in enumerate(starts.tolist()):
        running, finished = longer[i], longer[i + 1]  # events [finished, running) end in this slice
        out, h_n = gru(x[:running, start:start + chunk], None if h is None else h[:, :running].contiguous())
        if finished < running:
            index = (lens[finished:running] - 1 - start).view(-1, 1, 1).expand(-1, 1, out.shape[2])
            pieces.append(out[finished:running].gather(1, index).squeeze(1))
        h = h_n
    state = torch.cat(pieces[::-1])  # the longest events first: the sorted order
    return state[torch.argsort(order)]


class _SequenceModel(nn.Module):
    packed = False  # True: packed sequences (slower; benchmarks compare the two)
    chunk_steps = 32  # on a CPU, the padded GRU in slices of this many steps (0: over all padded steps)


class ParticleGRU(_SequenceModel):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.gru = nn.GRU(N_FEATURES, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, N_CLASSES))

    def forward(self, hlf: torch.Tensor, particles: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(_last_gru_state(self.gru, particles, lengths, self.packed, self.chunk_steps))
        return logits


class InclusiveClassifier(_SequenceModel):
    def __init__(self, hidden: int, dropout: float, dense: int) -> None:
        super().__init__()
        self.gru = nn.GRU(N_FEATURES, hidden, batch_first=True)
        self.hlf_dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(hidden + N_HLF, dense), nn.ReLU(), nn.Linear(dense, N_CLASSES))

    def forward(self, hlf: torch.Tensor, particles: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        state = _last_gru_state(self.gru, particles, lengths, self.packed, self.chunk_steps)
        logits: torch.Tensor = self.head(torch.cat([state, self.hlf_dropout(hlf)], dim=1))
        return logits


class TransformerClassifier(nn.Module):
    def __init__(self, d_model: int, heads: int, layers: int, dropout: float, dense: int) -> None:
        super().__init__()
        self.embed = nn.Linear(N_FEATURES, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d_model + N_HLF, dense), nn.ReLU(), nn.Linear(dense, N_CLASSES))

    def forward(self, hlf: torch.Tensor, particles: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = torch.arange(particles.shape[1], device=particles.device)
        padding = steps[None, :] >= lengths[:, None]                     # True where padded
        encoded = self.encoder(self.embed(particles), src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(encoded.dtype)
        pooled = (encoded * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)  # mean over real particles
        logits: torch.Tensor = self.head(torch.cat([pooled, hlf], dim=1))
        return logits


_CLASSES = {"hlf": HLFClassifier, "particle": ParticleGRU, "inclusive": InclusiveClassifier,
            "transformer": TransformerClassifier}


def model_params(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model's hyperparameters: defaults, then `overrides` (unknown names are an error)."""
    params = dict(DEFAULTS[name])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise KeyError(key)
        params[key] = type(params[key])(value)
    return params


def build_model(name: str, params: dict[str, Any] | None = None) -> nn.Module:
    module: nn.Module = _CLASSES[name](**model_params(name, params))
    return module


def exportable(model: nn.Module) -> nn.Module:
    """The same model with every GRU run over all padded steps, not packed sequences or slices (traceable)."""
    for module in model.modules():
        if isinstance(module, _SequenceModel):
            module.packed = False
            module.chunk_steps = 0
    return model
