"""Runtime: how every stage gets its Java and its SparkSession (`get_spark`), nothing else."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from topotrigger.runtime.java import JavaHome, find_java
    from topotrigger.runtime.spark import get_spark

__all__ = ["JavaHome", "find_java", "get_spark"]

# Loaded on first use: Python workers import `runtime.tasks` (task sizing) and should not pay for the
# configuration schema (pydantic) that `runtime.spark` brings.
_HOMES = {"JavaHome": "java", "find_java": "java", "get_spark": "spark"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"topotrigger.runtime.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
