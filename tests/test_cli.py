"""The command line: help, one-line user errors with exit 2, config show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from topotrigger.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_help_lists_stage_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("generate", "ingest", "features", "train", "run", "config"):
        assert command in out


@pytest.mark.parametrize("args, needle", [
    (("--master", "nonsense://x", "run"), "spark.master"),
    (("--remote", "http://x:1", "run"), "spark.remote"),
    (("--remote", "sc://x:1", "--master", "local[1]", "run"), "--remote"),
    (("evaluate", "--cross-section", "qcd=-1"), "--cross-section"),
    (("generate", "--classes", "qcd,higgs"), "generate.classes"),
    (("generate", "--events", "0"), "generate.events"),
    (("generate", "--profile", "slow"), "generate.profile"),
    (("train", "--model", "bdt"), "train.model"),
    (("features", "--layout", "wide"), "features.layout"),
    (("train", "--epochs", "0"), "train.epochs"),       # 0 used to fall back to the default and train
    (("train", "--lr", "0"), "train.lr"),
    (("train", "--batch-size", "0"), "train.batch_size"),
])
def test_user_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and needle in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_config_file_with_wrong_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[generate]\nevent = 3\n")
    code, _, err = run_cli(capsys, "--config", str(path), "run")
    assert code == 2 and "generate.event" in err and "events" in err


def test_config_show_applies_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--master", "local[1]", "config", "show")
    assert code == 0 and 'master = "local[1]"' in out


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "topotrigger", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("topotrigger ")


def test_an_unreachable_spark_connect_endpoint_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "qcd").mkdir()
    (tmp_path / "qcd" / "a.root").write_bytes(b"")
    code, _, err = run_cli(capsys, "--remote", "sc://127.0.0.1:1", "ingest", "-i", str(tmp_path / "qcd"),
                           "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("error: cannot reach the Spark Connect endpoint 127.0.0.1:1")
    assert err.strip().count("\n") == 0


def test_gpu_without_cuda_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    code, _, err = run_cli(capsys, "--run-dir", str(tmp_path), "train", "--gpu", "--epochs", "1")
    assert code == 2 and err.startswith("error: --gpu: no CUDA device") and err.strip().count("\n") == 0


def test_an_explicit_out_keeps_spark_scratch_out_of_the_working_directory(tmp_path: Path) -> None:
    from topotrigger.cli import scratch_dir
    from topotrigger.config import load_config

    default = load_config()
    assert scratch_dir(default) == Path("runs/demo")           # no --out: the run directory
    elsewhere = scratch_dir(default, str(tmp_path / "gen"))
    assert elsewhere.is_dir() and not str(elsewhere).startswith("runs")
    chosen = load_config(overrides={"run_dir": str(tmp_path / "run")})
    assert scratch_dir(chosen, str(tmp_path / "gen")) == tmp_path / "run"


def test_global_options_after_the_command() -> None:
    from topotrigger.cli import global_options_first

    assert global_options_first(["run", "--master", "local[2]", "--force", "train"]) == ["--master", "local[2]", "run", "--force", "train"]
    assert global_options_first(["-v", "train", "--run-dir=x", "--epochs", "2"]) == ["-v", "--run-dir=x", "train", "--epochs", "2"]
    assert global_options_first(["--config", "a.toml", "cluster", "start", "-c", "b.toml"]) == ["--config", "a.toml", "-c", "b.toml", "cluster", "start"]


def test_a_bad_master_after_the_command_is_the_same_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "run", "--master", "nonsense://x")
    assert code == 2 and "spark.master" in err


@pytest.mark.parametrize("stage", ["ingest", "features", "predict"])
def test_paths_are_checked_before_spark_starts(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    """A missing input and an existing output end before any Spark session is asked for."""
    import topotrigger.cli as cli

    def no_spark(*args: object, **kwargs: object) -> None:
        raise AssertionError("Spark was started before the path checks")

    monkeypatch.setattr(cli, "_spark", no_spark)
    (tmp_path / "exists").mkdir()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.root").write_bytes(b"")  # only its name is looked at before Spark
    extra = ["--model", str(tmp_path)] if stage == "predict" else []
    code, _, err = run_cli(capsys, stage, "--input", str(tmp_path / "missing"), "--out", str(tmp_path / "new"), *extra)
    assert code == 2 and "missing" in err and ("not found" in err or "no such" in err.lower())
    code, _, err = run_cli(capsys, stage, "--input", str(tmp_path / "in"), "--out", str(tmp_path / "exists"), *extra)
    assert code == 2 and "exists" in err


# Options that name what to act on or how (paths, models, one-off actions), not settings: no twin.
PER_INVOCATION = {"input", "out", "data", "model", "overwrite", "resume", "force", "params", "reference", "label",
                  "scaling_from", "format", "scale", "cores", "cluster", "mlflow", "state_dir", "space", "workers", "cores_per_worker", "memory", "port",
                  "help", "version", "config", "run_dir", "verbose", "master", "remote", "fast_start"}


def test_every_setting_of_the_cli_has_its_configuration_twin() -> None:
    import re

    import typer

    from topotrigger.cli import app
    from topotrigger.config import Config

    def keys(model: type, prefix: str = "") -> set[str]:
        out = set()
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                out |= keys(sub, f"{prefix}{name}.")
            else:
                out.add(prefix + name)
        return out

    known = keys(Config)
    missing, wrong, checked = [], [], 0

    def walk(command: Any, path: str) -> None:  # typer's own click: duck-typed
        nonlocal checked
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
            return
        for param in command.params:
            if param.param_type_name != "option" or param.name in PER_INVOCATION:
                continue
            checked += 1
            twin = re.findall(r"\((\w+\.\w+)\)", param.help or "")
            if not twin:
                missing.append(f"{path} --{param.name}")
            elif twin[-1] not in known:
                wrong.append(f"{path} --{param.name}: {twin[-1]}")

    walk(typer.main.get_command(app), "topotrigger")
    assert checked > 30
    assert not missing and not wrong, (missing, wrong)
