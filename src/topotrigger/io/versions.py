"""Software versions recorded in every manifest."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

_PACKAGES = ("topotrigger", "pyspark", "pyarrow", "numpy", "awkward", "uproot", "numba", "pythia8mc", "fastjet", "torch",
             "onnx", "onnxruntime", "optuna", "xgboost", "mlflow-skinny")


def software_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
