"""One typed configuration for every stage: a TOML file, validated once, plus CLI overrides.

`load_config(path, overrides)` is the only entry: the defaults are the models below
(`configs/default.toml` spells them out for users to copy; a test keeps the two equal), the user's
file and then the dotted CLI overrides are merged on top, and the result is validated once.
Errors name the key and what is allowed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from topotrigger.errors import ConfigError, MissingInputError

if TYPE_CHECKING:
    from topotrigger.features.kernels.definitions import FeatureOptions

CLASSES: tuple[str, ...] = ("qcd", "ttbar", "wjets")
DEFAULT_LABELS: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

_MASTER_PATTERNS = (
    r"local",
    r"local\[(\*|[1-9]\d*)\]",
    r"local\[(\*|[1-9]\d*),\s*[1-9]\d*\]",
    r"local-cluster\[[1-9]\d*,\s*[1-9]\d*,\s*[1-9]\d*\]",
    r"spark://[^\s/:]+:\d+(,[^\s/:]+:\d+)*",
    r"yarn",
    r"k8s://\S+",
)
MASTER_FORMS = "local[*], local[N], local-cluster[W,C,MB], spark://HOST:PORT, yarn, k8s://URL"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SparkConfig(_Section):
    master: str = "local[*]"
    remote: str | None = Field(default=None, description="Spark Connect endpoint (sc://HOST:PORT) used instead of master")
    app_name: str = "topotrigger"
    driver_memory: str = "2g"
    executor_memory: str | None = None
    # UI off, C1-only JIT and serial GC: the JVM starts in about half the time; for tests and demos.
    fast_start: bool = False
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not any(re.fullmatch(p, value) for p in _MASTER_PATTERNS):
            raise ValueError(f"unknown Spark master {value!r}; use one of {MASTER_FORMS}")
        return value

    @field_validator("remote")
    @classmethod
    def _connect_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"sc://[^/\s]+(/.*)?|local(\[(\*|\d+)\])?", value):
            raise ValueError(f"{value!r} is not a Spark Connect endpoint such as sc://HOST:15002 (or local[N] for a "
                             "server started in this process)")
        return value

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[1-9]\d*[kmgt]?", value.lower()):
            raise ValueError(f"{value!r} is not a JVM memory size such as 512m or 2g")
        return value


class GenerateConfig(_Section):
    events: int = Field(default=4000, gt=0, description="events per class written after the generator filter")
    classes: list[Literal["qcd", "ttbar", "wjets"]] = Field(default_factory=lambda: ["qcd", "ttbar", "wjets"], min_length=1)  # type: ignore[arg-type]
    profile: Literal["cms", "quick"] = "cms"
    pileup: float | None = Field(default=None, ge=0.0, le=200.0, description="mean pile-up; default: the profile's (cms 30, quick 0)")
    pileup_library: int = Field(default=1000, gt=0, le=1_000_000, description="minimum-bias events generated once per worker and overlaid")
    seed: int = Field(default=1234, ge=0, lt=900_000_000)
    files_per_class: int = Field(default=2, gt=0)


class IngestConfig(_Section):
    tree: str = "Delphes"
    label_map: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_LABELS))
    partition_bytes: int = Field(default=128 * 1024 * 1024, gt=0)
    partition_entries: int | None = Field(default=None, gt=0)
    on_bad_file: Literal["stop", "skip"] = "stop"
    muon_collection: str = "MuonTight"


class FeaturesConfig(_Section):
    layout: Literal["compact", "anchor"] = "compact"
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    val_fraction: float = Field(default=0.1, ge=0.0, lt=1.0, description="share of the training events held out for validation")
    balance: Literal["undersample", "none"] = "undersample"
    seed: int = Field(default=42, ge=0)
    per_event_standardisation: bool = False
    # A split left without events of some class (tiny inputs): stop with one line, or write it empty.
    on_empty_split: Literal["stop", "write"] = "stop"
    # "2019": every behaviour of the 2019 feature code (all the switches below, the 801-row GRU input
    # standardised per event, the HLF scaler fitted before the split, the anchor layout); docs/physics.md.
    recipe: Literal["default", "2019"] = "default"
    # The 2019 code's quirks one by one, for studies; all off in the default recipe.
    mt_without_sqrt: bool = False
    lepton_choice_by_eta: bool = False
    legacy_isolation: bool = False
    legacy_selection: bool = False
    legacy_particle_id: bool = False

    def options(self) -> "FeatureOptions":
        from topotrigger.features.kernels.definitions import RECIPE_2019, FeatureOptions

        if self.recipe == "2019":
            return RECIPE_2019
        return FeatureOptions(self.mt_without_sqrt, self.lepton_choice_by_eta, self.legacy_isolation,
                              self.legacy_selection, self.legacy_particle_id)


TrainModel = Literal["hlf", "particle", "inclusive", "transformer", "mllib-rf", "mllib-gbt", "mllib-mlp", "xgboost"]


class TrainConfig(_Section):
    model: TrainModel = "hlf"
    epochs: int = Field(default=20, gt=0)
    batch_size: int = Field(default=64, gt=0)
    lr: float = Field(default=3e-3, gt=0.0)
    workers: int = Field(default=1, gt=0)
    seed: int = Field(default=7, ge=0)
    # Particle models: batches of events of similar length: less padded GRU work, but batches then mix
    # classes less evenly and train worse (docs/training.md); off by default.
    length_buckets: bool = False
    inputs: Literal["hlf", "hlf+summary"] = "hlf"   # of the Spark ML / XGBoost models
    gpu: bool = False                                # train on a GPU (an error where none is present)
    checkpoint_every_steps: int = Field(default=0, ge=0, description="also checkpoint every K optimizer steps (0: per epoch only)")


class TuneConfig(_Section):
    model: Literal["hlf", "particle", "inclusive", "transformer"] = "hlf"
    search: Literal["grid", "random", "optuna"] = "random"
    trials: int = Field(default=8, ge=0, description="trials for random/optuna; 0 with grid: the whole grid")
    sample_fraction: float = Field(default=0.02, gt=0.0, le=1.0)
    min_sample_events: int = Field(default=1000, ge=0)
    parallelism: int = Field(default=0, ge=0, description="trials per wave; 0: Spark's default parallelism")
    seed: int = Field(default=11, ge=0)


class EvaluateConfig(_Section):
    split: Literal["test", "val", "train"] = "test"
    luminosity: float = Field(default=2e34, gt=0.0, description="instantaneous luminosity (cm^-2 s^-1) for the trigger rates")
    cross_sections: dict[str, float] = Field(
        default_factory=dict, description="pb per class of the events ingested; override what generate recorded")

    @field_validator("cross_sections")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, pb in value.items() if not pb > 0]
        if bad:
            raise ValueError(f"cross-sections must be positive (pb): {', '.join(bad)}")
        return value


class RunConfig(_Section):
    models: list[TrainModel] = Field(
        default_factory=lambda: ["hlf", "particle", "inclusive"], min_length=1)  # type: ignore[arg-type]
    tune: bool = True
    mlflow: str | None = Field(default=None, description="log tune, train and evaluate to this MLflow tracking URI ('local': RUN_DIR/mlflow.db)")


class Config(_Section):
    run_dir: Path = Path("runs/demo")
    spark: SparkConfig = Field(default_factory=SparkConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Built-in defaults, then the TOML file at `path`, then `overrides` ({"generate.events": 10}; None ignored)."""
    data: dict[str, Any] = {}  # the defaults live in the models: the file and overrides are all there is to merge
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"config file not found: {path}")
        try:
            user = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        data = user
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return validate(data, source=str(path) if path else None)


def validate(data: dict[str, Any], source: str | None = None) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def _one_line(exc: ValidationError, source: str | None) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    where = f" in {source}" if source else ""
    if err["type"] == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else "?"
        msg = f"unknown configuration key '{key}'{where}; allowed here: {allowed}"
    else:
        text = err["msg"].removeprefix("Value error, ")
        msg = f"invalid configuration value for '{key}'{where}: {text} (got {err.get('input')!r})"
    more = len(exc.errors()) - 1
    return msg + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
