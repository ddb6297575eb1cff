"""Digests of manifests and settings: what tells a stage that its inputs or settings changed."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(data: Any) -> str:
    """SHA-256 of `data` as canonical JSON (sorted keys), independent of how it was formatted or ordered."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
