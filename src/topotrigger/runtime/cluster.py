"""A Spark standalone cluster on this machine, from the installed pyspark: `topotrigger cluster`.

The pyspark wheel ships `sbin/spark-daemon.sh` but not `start-master.sh`/`start-worker.sh`, so the
master and each worker are started through the daemon script with their classes. Everything binds
to 127.0.0.1. Logs, pid files, worker scratch space and `cluster.json` live in a state directory;
`stop` stops exactly the daemons whose pid files are there, so it never touches a cluster it did
not start. Starting a running cluster or stopping a stopped one does nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from topotrigger.errors import UserError
from topotrigger.io.atomic import write_json
from topotrigger.runtime.java import find_java, launcher_home

MASTER = "org.apache.spark.deploy.master.Master"
CONNECT = "org.apache.spark.sql.connect.service.SparkConnectServer"
WORKER = "org.apache.spark.deploy.worker.Worker"
DEFAULT_STATE_DIR = Path.home() / ".local" / "state" / "topotrigger" / "cluster"


class ClusterError(UserError, RuntimeError):
    """The cluster could not be started or queried."""


@dataclass
class ClusterSpec:
    workers: int = 2
    cores_per_worker: int = 1
    memory: str = "1g"
    port: int = 7077
    webui_port: int = 0  # 0: a free port


@dataclass
class ClusterStatus:
    running: bool
    master_url: str | None
    webui_url: str | None
    alive_workers: int
    cores: int
    memory_mb: int
    state_dir: str
    daemons: dict[str, bool]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "JAVA_HOME": str(launcher_home(find_java().home)), "SPARK_HOME": str(_spark_home()),
            "SPARK_LOG_DIR": str(state / "logs"), "SPARK_PID_DIR": str(state / "pids"),
            "SPARK_WORKER_DIR": str(state / "work"), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_MASTER_HOST": "127.0.0.1", "SPARK_IDENT_STRING": "topotrigger",
            "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": ""}


def _daemon(state: Path, action: str, cls: str, instance: int, *args: str) -> None:
    script = _spark_home() / "sbin" / "spark-daemon.sh"
    env = _env(state)
    env.pop("SPARK_NO_DAEMONIZE")
    result = subprocess.run(["bash", str(script), action, cls, str(instance), *args], env=env,
                            capture_output=True, text=True)
    if result.returncode != 0 and action in ("start", "submit"):
        raise ClusterError(f"could not start {cls.rsplit('.', 1)[-1]} {instance}: "
                           f"{(result.stdout + result.stderr).strip().splitlines()[-1:]}")


def _pid_file(state: Path, cls: str, instance: int) -> Path:
    return state / "pids" / f"spark-topotrigger-{cls}-{instance}.pid"


def _alive(state: Path, cls: str, instance: int) -> bool:
    path = _pid_file(state, cls, instance)
    if not path.is_file():
        return False
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError):
        return False
    return True


def _master_json(webui_port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui_port}/json/", timeout=2) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except (OSError, ValueError):
        return None


def _read_state(state: Path) -> dict[str, Any] | None:
    path = state / "cluster.json"
    return json.loads(path.read_text()) if path.is_file() else None


def status(state_dir: Path = DEFAULT_STATE_DIR) -> ClusterStatus:
    state = _read_state(state_dir)
    if state is None:
        return ClusterStatus(False, None, None, 0, 0, 0, str(state_dir), {})
    daemons = {"master": _alive(state_dir, MASTER, 1)}
    daemons |= {f"worker-{i}": _alive(state_dir, WORKER, i) for i in range(1, state["spec"]["workers"] + 1)}
    info = _master_json(state["webui_port"]) if daemons["master"] else None
    workers = [w for w in (info or {}).get("workers", []) if w.get("state") == "ALIVE"]
    return ClusterStatus(daemons["master"], state["master_url"], f"http://127.0.0.1:{state['webui_port']}",
                         len(workers), sum(w.get("cores", 0) for w in workers),
                         sum(w.get("memory", 0) for w in workers), str(state_dir), daemons)


def start(spec: ClusterSpec, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 90.0) -> ClusterStatus:
    current = status(state_dir)
    if current.running:
        return current
    if _port_open(spec.port):
        raise ClusterError(f"port {spec.port} on 127.0.0.1 is in use by something else; choose another with --port")
    for sub in ("logs", "pids", "work"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    webui = spec.webui_port or _free_port()
    master_url = f"spark://127.0.0.1:{spec.port}"
    write_json(state_dir / "cluster.json", {"spec": asdict(spec), "master_url": master_url, "webui_port": webui,
                                            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    try:
        _daemon(state_dir, "start", MASTER, 1, "--host", "127.0.0.1", "--port", str(spec.port),
                "--webui-port", str(webui))
        _wait(lambda: _master_json(webui) is not None, timeout, "the master did not come up", state_dir)
        for i in range(1, spec.workers + 1):
            _daemon(state_dir, "start", WORKER, i, "--host", "127.0.0.1", "--cores", str(spec.cores_per_worker),
                    "--memory", spec.memory, "--webui-port", str(_free_port()),
                    "--work-dir", str(state_dir / "work"), master_url)
        _wait(lambda: status(state_dir).alive_workers >= spec.workers, timeout,
              f"{spec.workers} worker(s) did not register", state_dir)
    except BaseException:
        stop(state_dir)
        raise
    return status(state_dir)


def _wait(ready: Any, timeout: float, what: str, state_dir: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    raise ClusterError(f"{what} within {timeout:.0f} s; see the logs in {state_dir / 'logs'}")


def stop(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    """Stops the daemons this state directory started; returns whether anything was running."""
    state = _read_state(state_dir)
    if state is None:
        return False
    was_running = False
    for i in range(state["spec"]["workers"], 0, -1):
        was_running |= _alive(state_dir, WORKER, i)
        _daemon(state_dir, "stop", WORKER, i)
    was_running |= _alive(state_dir, MASTER, 1)
    _daemon(state_dir, "stop", MASTER, 1)
    (state_dir / "cluster.json").unlink(missing_ok=True)
    return was_running


def start_connect(state_dir: Path, port: int = 15002, master: str = "local[2]", timeout: float = 90.0) -> str:
    """A Spark Connect server on 127.0.0.1:`port` whose Spark runs on `master`; returns its sc:// URL.
    Its Python workers run this interpreter (the venv), as the executors of `start` do."""
    url = f"sc://127.0.0.1:{port}"
    if _alive(state_dir, CONNECT, 1):
        return url
    if _port_open(port):
        raise ClusterError(f"port {port} on 127.0.0.1 is in use by something else; choose another")
    for sub in ("logs", "pids"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
    try:
        _daemon(state_dir, "submit", CONNECT, 1, "--master", master, "--conf", f"spark.connect.grpc.binding.port={port}",
                "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", f"spark.pyspark.python={sys.executable}")
        _wait(lambda: _port_open(port), timeout, "the Spark Connect server did not come up", state_dir)
    except BaseException:
        stop_connect(state_dir)
        raise
    return url


def stop_connect(state_dir: Path) -> bool:
    """Stops the Spark Connect server this state directory started; returns whether it was running."""
    was_running = _alive(state_dir, CONNECT, 1)
    if (state_dir / "pids").is_dir():
        _daemon(state_dir, "stop", CONNECT, 1)
    return was_running

