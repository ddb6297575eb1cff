"""The layers import only what their boundary allows (checked on the source, without importing it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "topotrigger"


def _imports(path: Path) -> set[str]:
    """Modules imported at run time (imports under `if TYPE_CHECKING:` are for annotations only)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(*parts: str) -> list[Path]:
    target = SRC.joinpath(*parts)
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


NO_SPARK = [
    ("features", "kernels"), ("features", "contract.py"), ("ingest", "reader.py"),
    ("generate", "detector.py"), ("generate", "jets.py"), ("generate", "pileup.py"), ("train", "models.py"), ("train", "data.py"),
    ("train", "loop.py"), ("io", "storage.py"), ("io", "manifest.py"), ("modeldir.py",),
]


@pytest.mark.parametrize("parts", NO_SPARK, ids=["/".join(p) for p in NO_SPARK])
def test_pure_layers_import_no_pyspark(parts: tuple[str, ...]) -> None:
    for path in _files(*parts):
        bad = sorted(n for n in _imports(path) if n == "pyspark" or n.startswith("pyspark."))
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_kernels_import_no_arrow_or_torch() -> None:
    for path in _files("features", "kernels"):
        bad = sorted(n for n in _imports(path) if n.split(".")[0] in ("pyarrow", "torch", "pyspark"))
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_models_know_nothing_of_data_or_infrastructure() -> None:
    bad = sorted(n for n in _imports(SRC / "train" / "models.py")
                 if n.split(".")[0] in ("pyarrow", "pyspark") or n.startswith(("topotrigger.io", "topotrigger.train.data")))
    assert not bad


def test_stages_import_no_cli() -> None:
    for path in SRC.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        assert "topotrigger.cli" not in _imports(path), f"{path.relative_to(SRC)} imports the CLI"


def test_one_way_to_reach_a_file_system() -> None:
    """Paths become file systems in `io.storage` only: no ad-hoc URI tests, no second client."""
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text()
        if rel != "io/storage.py":
            assert '"://" in' not in text and '"://" not in' not in text, f"{rel} tests for a URI itself"
            assert "FileSystem.from_uri" not in text and "_jvm" not in text and "_jsc" not in text, rel


def test_spark_glue_uses_dataframe_apis_only() -> None:
    """No RDD API, SparkContext or JVM gateway outside functions named `_classic_*` (the fallbacks a
    classic session may take; Spark Connect has none of these)."""
    banned = ("sparkContext", "parallelize", "mapPartitions", ".rdd", "_jvm", "_jsc")
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        allowed: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("_classic_"):
                allowed |= set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if number not in allowed and not code.lstrip().startswith(('"', "`")) and any(b in code for b in banned):
                raise AssertionError(f"{path.relative_to(SRC)}:{number} uses the RDD API or SparkContext: {line.strip()}")


def test_the_root_read_path_imports_no_pandas_or_configuration() -> None:
    """Every Python worker that reads ROOT files (the `root` source, the ingest tasks) and the planner of
    every query imports this path: pandas (pulled in by pyarrow.dataset) and the configuration schema
    (pydantic) cost it ≈ 0.25 s each time, which a one-partition-per-file read pays per worker."""
    import subprocess
    import sys

    code = ("import sys; import topotrigger.ingest.source, topotrigger.runtime.tasks; "
            "bad = [m for m in ('pandas', 'pydantic', 'topotrigger.config') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
