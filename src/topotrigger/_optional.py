"""The one place optional heavy dependencies are imported, with the command that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from topotrigger.errors import MissingDependencyError

_EXTRA_OF = {
    "pythia8mc": "generate",
    "fastjet": "generate",
    "matplotlib": "generate",
    "torch": "train",
    "mplhep": "evaluate",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "optuna": "tune",
    "xgboost": "xgboost",
    "fsspec_xrootd": "xrootd",
    "XRootD": "xrootd",
    "s3fs": "s3",
    "mlflow": "mlflow",
    "h5py": "published",
}


def require(module: str) -> ModuleType:
    """Import `module` or fail with one line naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_OF.get(module.split(".")[0], "all")
        raise MissingDependencyError(
            f"{module} is not installed ({exc}); install it with: pip install 'topotrigger[{extra}]'"
        ) from exc
