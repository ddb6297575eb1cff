from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from topotrigger.config import Config, load_config
from topotrigger.errors import ConfigError, MissingInputError

ROOT = Path(__file__).resolve().parents[1]


def test_default_toml_matches_built_in_defaults() -> None:
    assert load_config(ROOT / "configs" / "default.toml") == Config()


def test_to_toml_round_trips() -> None:
    cfg = load_config(overrides={"generate.events": 17, "spark.conf": {"spark.x.y": "1"}})
    again = Config.model_validate(tomllib.loads(cfg.to_toml()))
    assert again == cfg


def test_overrides_beat_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[generate]\nevents = 5\nprofile = "quick"\n')
    cfg = load_config(path, {"generate.events": 9, "generate.seed": None})
    assert cfg.generate.events == 9
    assert cfg.generate.profile == "quick"
    assert cfg.generate.seed == Config().generate.seed


def test_unknown_key_names_key_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[spark]\nmastr = 'local[1]'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "spark.mastr" in msg and "master" in msg and "\n" not in msg


def test_bad_literal_lists_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"generate\.profile.*'cms' or 'quick'"):
        load_config(overrides={"generate.profile": "medium"})


@pytest.mark.parametrize("master", ["local", "local[*]", "local[3]", "local[2,4]", "local-cluster[2,1,1024]",
                                    "spark://127.0.0.1:7077", "spark://a:1,b:2", "yarn", "k8s://https://h:6443"])
def test_known_masters(master: str) -> None:
    assert load_config(overrides={"spark.master": master}).spark.master == master


@pytest.mark.parametrize("master", ["nonsense://x", "local[0]", "spark://nohost", "", "mesos://h:5050"])
def test_unknown_masters(master: str) -> None:
    with pytest.raises(ConfigError, match="spark.master"):
        load_config(overrides={"spark.master": master})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[spark\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
