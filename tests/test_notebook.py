"""examples/pipeline.ipynb runs top to bottom (its code cells, in order, in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "pipeline.ipynb"

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_notebook_runs(tmp_path: Path) -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [("".join(c["source"])) for c in cells if c["cell_type"] == "code"]
    assert not any(c.lstrip().startswith(("%", "!")) for c in code)  # plain Python: no magics to emulate
    script = "\n\n".join(code) + "\nassert result.report.is_file() and set(table.index) == {'hlf', 'inclusive'}\n"
    env = {**os.environ, "TOPOTRIGGER_EVENTS": "80", "TOPOTRIGGER_PROFILE": "quick", "TOPOTRIGGER_RUN_DIR": str(tmp_path / "run")}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "report:" in done.stdout
