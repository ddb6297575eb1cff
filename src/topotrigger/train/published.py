"""The published 2020 inclusive classifier as a model every command accepts: `published:inclusive-2020`.

The Keras 3 file shipped with the package (`published/inclusive-classifier.keras`, Apache-2.0, see the
NOTICE beside it) is read with h5py (no TensorFlow or Keras at run time) into a PyTorch network with
the same arithmetic: Masking(0) → GRU(50, reset_after) over the 801 × 19 particle rows, concatenated
with the 14 HLF → Dense(25, relu) → Dense(3, softmax). Keras's masking skips a step whose 19 values
are all zero and carries the state over it; so does the GRU here.

Its inputs are those of the 2019 recipe (`features --recipe 2019`): GRU_input as that recipe writes it,
HLF min-max scaled with the 2019 ranges. Those ranges were fitted on the 25.5 M selected events of the
2019 work and are not published; `RANGES_2019` holds the ones its printed notebook outputs show, the
others are the dataset's own (the 2019 procedure: min-max over all selected events, which is how the
`2019` recipe fits them). A JSON file {feature: [min, max]} overrides any of them:
`published:inclusive-2020@ranges.json`.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import nn

from topotrigger import _optional
from topotrigger.errors import InputError, MissingInputError
from topotrigger.features.kernels.definitions import HLF_INDEX, HLF_NAMES, N_CLASSES, N_HLF, N_PARTICLE_FEATURES, PARTICLE_NAMES
from topotrigger.modeldir import PUBLISHED, ModelInfo

MODELS = {"inclusive-2020": "inclusive-classifier.keras"}
CLASSES = {"0": "qcd", "1": "ttbar", "2": "wjets"}
RECIPE = "2019"
# (min, max) of the 2019 HLF scaler where the 2020 notebooks print them; the others are fitted on the data.
RANGES_2019: dict[str, tuple[float | None, float | None]] = {
    "HT": (0.0, 4946.90), "MET": (0.0, 7041.9), "nJets": (0.0, 15.0),
    "LepIsoCh": (None, 0.45), "LepIsoGamma": (None, 0.45), "LepIsoNeu": (None, 0.45),
}


def parse_spec(spec: str) -> tuple[str, str | None]:
    """(model name, HLF ranges file or None) of `published:NAME[@RANGES.json]`."""
    name, _, ranges_file = spec[len(PUBLISHED):].partition("@")
    return name, ranges_file or None


class PublishedInclusive(nn.Module):
    """The 2020 inclusive classifier's network; returns logits (its softmax is applied by the caller).

    The GRU is Keras's own step, in Keras's weight layout (gates z, r, h) and order of operations:
    in float32 over 801 steps, a library GRU (another summation order) drifts 1e-6 away from it."""

    def __init__(self, hidden: int = 50, dense: int = 25) -> None:
        super().__init__()
        self.hidden = hidden
        self.kernel = nn.Parameter(torch.zeros(N_PARTICLE_FEATURES, 3 * hidden))
        self.recurrent_kernel = nn.Parameter(torch.zeros(hidden, 3 * hidden))
        self.bias = nn.Parameter(torch.zeros(2, 3 * hidden))   # input bias, recurrent bias (reset_after)
        self.dense = nn.Linear(hidden + N_HLF, dense)
        self.out = nn.Linear(dense, N_CLASSES)

    def forward(self, hlf: torch.Tensor, particles: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        logits: torch.Tensor = self.out(torch.relu(self.dense(torch.cat([self.state(particles), hlf], dim=1))))
        return logits

    def state(self, particles: torch.Tensor) -> torch.Tensor:
        """The GRU's last state (batch, 50): a step whose row is all zero leaves it as it was (Masking)."""
        n = self.hidden
        mask = (particles != 0).any(dim=2, keepdim=True)
        h = particles.new_zeros(particles.shape[0], n)
        for t in range(particles.shape[1]):
            x = torch.matmul(particles[:, t], self.kernel) + self.bias[0]
            r = torch.matmul(h, self.recurrent_kernel) + self.bias[1]
            z = torch.sigmoid(x[:, :n] + r[:, :n])
            reset = torch.sigmoid(x[:, n:2 * n] + r[:, n:2 * n])
            candidate = torch.tanh(x[:, 2 * n:] + reset * r[:, 2 * n:])
            h = torch.where(mask[:, t], z * h + (1 - z) * candidate, h)
        return h


def keras_state_dict(archive: bytes) -> dict[str, torch.Tensor]:
    """The PyTorch weights of the Keras 3 archive (`model.weights.h5` inside the zip)."""
    h5py = _optional.require("h5py")
    with zipfile.ZipFile(io.BytesIO(archive)) as z, h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
        w = {name: np.asarray(f[f"layers/{key}"]) for name, key in
             (("kernel", "gru/cell/vars/0"), ("recurrent_kernel", "gru/cell/vars/1"), ("bias", "gru/cell/vars/2"),
              ("dense.weight", "dense/vars/0"), ("dense.bias", "dense/vars/1"),
              ("out.weight", "dense_1/vars/0"), ("out.bias", "dense_1/vars/1"))}
    for name in ("dense.weight", "out.weight"):  # Keras stores Dense kernels as (in, out)
        w[name] = w[name].T
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in w.items()}


def archive_bytes(name: str) -> bytes:
    return resources.files("topotrigger.published").joinpath(MODELS[name]).read_bytes()


def _ranges_override(path: str | None) -> dict[str, tuple[float | None, float | None]]:
    if not path:
        return {}
    from topotrigger.io import storage

    try:
        given = json.loads(storage.read_text(path))
    except FileNotFoundError:
        raise MissingInputError(f"HLF ranges file not found: {storage.redact(path)}") from None
    except ValueError as exc:
        raise InputError(f"{storage.redact(path)} is not JSON ({exc})") from None
    bad = [k for k, v in given.items() if k not in HLF_INDEX or not (isinstance(v, list) and len(v) == 2)]
    if bad:
        raise InputError(f"{storage.redact(path)}: {bad[0]!r} is not an HLF name with [min, max] "
                         f"(names: {', '.join(HLF_NAMES)})")
    return {k: (float(v[0]), float(v[1])) for k, v in given.items()}


@dataclass
class PublishedModel:
    """A `Scorer` (modeldir) for the published network."""

    info: ModelInfo
    module: PublishedInclusive
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.info.model

    @property
    def uses_particles(self) -> bool:
        return True

    @classmethod
    def load(cls, spec: str) -> "PublishedModel":
        name, ranges_file = parse_spec(spec)
        if name not in MODELS:
            raise InputError(f"unknown published model {name!r} (known: {', '.join(PUBLISHED + m for m in MODELS)})")
        module = PublishedInclusive()
        module.load_state_dict(keras_state_dict(archive_bytes(name)))
        info = ModelInfo(model=PUBLISHED + name, params={}, settings={"recipe": RECIPE}, layout="anchor",
                         hlf_names=list(HLF_NAMES), particle_names=list(PARTICLE_NAMES), label_names=dict(CLASSES))
        return cls(info, module.eval(), {**RANGES_2019, **_ranges_override(ranges_file)})

    def check_dataset(self, metadata: dict[str, Any], where: str) -> None:
        """The network reads 2019-recipe inputs: a dataset built otherwise is refused (the public 2020
        files, which carry no metadata, are taken as they are)."""
        if not metadata:
            return
        recipe = (metadata.get("settings") or {}).get("recipe")
        if recipe != RECIPE:
            raise InputError(f"{self.name} takes the 2019 feature recipe; {where} was built with recipe "
                             f"{recipe or 'default'}: rebuild it with `topotrigger features --recipe 2019`")
        names = metadata.get("label_names")
        if names and {str(k): v for k, v in names.items()} != CLASSES:
            raise InputError(f"{self.name} scores the classes {CLASSES}; {where} has {names}")

    def hlf_map(self, scaler: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(a, b, lo, hi): dataset-scaled HLF x → raw x·a + b → 2019-scaled (raw − lo) / (hi − lo)."""
        if scaler is None:  # the public 2020 files: HLF_input is already scaled with the 2019 ranges
            return np.ones(N_HLF), np.zeros(N_HLF), np.zeros(N_HLF), np.ones(N_HLF)
        fitted_lo, fitted_hi = np.asarray(scaler["hlf_min"], float), np.asarray(scaler["hlf_max"], float)
        lo, hi = fitted_lo.copy(), fitted_hi.copy()
        for name, (mn, mx) in self.ranges.items():
            if mn is not None:
                lo[HLF_INDEX[name]] = mn
            if mx is not None:
                hi[HLF_INDEX[name]] = mx
        return fitted_hi - fitted_lo, fitted_lo, lo, hi

    @torch.no_grad()
    def probabilities(self, hlf: np.ndarray, particles: torch.Tensor, scaler: dict[str, Any] | None) -> np.ndarray:
        a, b, lo, hi = self.hlf_map(scaler)
        span = np.where(hi > lo, hi - lo, 1.0)
        scaled = np.where(hi > lo, (hlf * a + b - lo) / span, 0.5)  # Spark's MinMaxScaler on a constant: 0.5
        logits = self.module(torch.from_numpy(scaled.astype(np.float32)), particles)
        return torch.softmax(logits, dim=1).numpy()

    def dataset_scores(self, path: str, spark: Any = None, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        from topotrigger.features.contract import dataset_metadata
        from topotrigger.train.data import ParquetEvents

        scaler = dataset_metadata(path.rsplit("/", 1)[0], ()).get("scaler")
        out, labels = [], []
        for batch in ParquetEvents(path, batch_size, shuffle=False, with_particles=True):
            particles = batch.particles
            if particles.shape[1] < 801:  # rows beyond an event's length are zero: masked, as in the original
                particles = nn.functional.pad(particles, (0, 0, 0, 801 - particles.shape[1]))
            out.append(self.probabilities(batch.hlf.numpy().astype(np.float64), particles, scaler))
            labels.append(batch.labels.numpy())
        if not labels:
            raise InputError(f"{path} holds no events to evaluate")
        return np.concatenate(out), np.concatenate(labels)
