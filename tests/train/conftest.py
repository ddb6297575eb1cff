from __future__ import annotations

from pathlib import Path

import pytest

from tests.datasets import write_compact


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "features"
    write_compact(root / "train", 600, 1)
    write_compact(root / "test", 150, 2)
    return root
