"""The `topotrigger` command: one sub-command per stage, each a thin shell over a Python function.

Typer, because the stages' many options become typed, documented CLI options straight from
function signatures, and rich help/progress come with it. User errors (`UserError`) print one line
and exit 2; anything else is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from topotrigger import __version__
from topotrigger.config import Config, load_config
from topotrigger.errors import ConfigError, MissingInputError, UserError
from topotrigger.tracking import tracking_uri

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from topotrigger.train.loop import TrainSettings

app = typer.Typer(
    help="LHC topology classifier pipeline on Apache Spark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
cluster_app = typer.Typer(help="A Spark standalone cluster on this machine (127.0.0.1), from the installed pyspark.",
                          no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
StateDir = Annotated[Path | None, typer.Option(help="Where logs, pids and cluster.json live [default: ~/.local/state/topotrigger/cluster].")]

err_console = Console(stderr=True)
# Piped output (CI logs, `make demo > log`) has no width to fit: rich's default of 80 columns would wrap
# tables and paths mid-word, so a pipe gets wide lines unless COLUMNS says otherwise.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)


@dataclass
class State:
    config_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False

    def config(self, **stage_overrides: Any) -> Config:
        return load_config(self.config_path, {**self.overrides, **stage_overrides})


def _state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


def _version(value: bool) -> None:
    if value:
        console.print(f"topotrigger {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration file.")] = None,
    master: Annotated[str | None, typer.Option(help="Spark master URL (spark.master).")] = None,
    remote: Annotated[str | None, typer.Option(help="Spark Connect endpoint sc://HOST:PORT, instead of --master (spark.remote).")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory for outputs and Spark scratch (run_dir).")] = None,
    fast_start: Annotated[bool | None, typer.Option("--fast-start/--no-fast-start", help="JVM fast-start profile (spark.fast_start).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Spark/JVM logs.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    if master and remote:
        raise ConfigError("give --master (a classic Spark session) or --remote (Spark Connect), not both")
    ctx.obj = State(
        config_path=config,
        overrides={"spark.master": master, "spark.remote": remote, "run_dir": str(run_dir) if run_dir else None, "spark.fast_start": fast_start},
        verbose=verbose,
    )
    # Validate global options now, so a bad --master fails before any stage starts.
    ctx.obj.config()


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective configuration (defaults, file, CLI options) as TOML."""
    console.print(_state(ctx).config().to_toml(), markup=False, highlight=False, end="")


def _print_cluster(status: Any) -> None:
    if not status.running:
        console.print(f"no cluster running (state directory {status.state_dir})")
        return
    console.print(f"master {status.master_url} (web UI {status.webui_url}): {status.alive_workers} worker(s) alive, "
                  f"{status.cores} cores, {status.memory_mb} MB; state in {status.state_dir}")


@cluster_app.command("start")
def cluster_start(
    workers: Annotated[int, typer.Option(help="Worker daemons.", min=1)] = 2,
    cores_per_worker: Annotated[int, typer.Option(help="Cores each worker offers.", min=1)] = 1,
    memory: Annotated[str, typer.Option(help="Memory each worker offers (e.g. 1g).")] = "1g",
    port: Annotated[int, typer.Option(help="Master port.")] = 7077,
    state_dir: StateDir = None,
) -> None:
    """Start a master and workers bound to 127.0.0.1 (nothing happens if this state's cluster runs)."""
    from topotrigger.runtime import cluster

    _print_cluster(cluster.start(cluster.ClusterSpec(workers, cores_per_worker, memory, port),
                                 state_dir or cluster.DEFAULT_STATE_DIR))


@cluster_app.command("stop")
def cluster_stop(state_dir: StateDir = None) -> None:
    """Stop the daemons that `cluster start` started with this state directory."""
    from topotrigger.runtime import cluster

    stopped = cluster.stop(state_dir or cluster.DEFAULT_STATE_DIR)
    console.print("cluster stopped" if stopped else "no cluster was running")


@cluster_app.command("status")
def cluster_status(state_dir: StateDir = None) -> None:
    """Master URL, alive workers, cores and memory."""
    from topotrigger.runtime import cluster

    _print_cluster(cluster.status(state_dir or cluster.DEFAULT_STATE_DIR))


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _spark(state: State, cfg: Config, out: object = None) -> SparkSession:
    from topotrigger.runtime import get_spark

    return get_spark(cfg.spark, scratch_dir(cfg, out), verbose=state.verbose)


def _check_paths(out: str, overwrite: bool, marker: str, inputs: list[str], root_files: bool = False) -> None:
    """A missing input or an existing output (`marker`: the stage's manifest), before the JVM starts
    (tens of seconds on a small machine)."""
    from topotrigger.io import storage

    if root_files:
        from topotrigger.ingest.paths import expand

        expand(inputs)  # every input path must exist and hold ROOT files
    else:
        for path in inputs:
            if not storage.exists(storage.absolute(path)):
                raise MissingInputError(f"input not found: {storage.redact(path)}")
    storage.check_output(storage.absolute(out), overwrite, marker)


def scratch_dir(cfg: Config, out: object = None) -> Path:
    """Where Spark keeps its scratch: the run directory, unless a stage writes to an explicit `--out`
    and no run directory was chosen: then a temporary directory removed at exit, so that
    `generate --out X` does not leave `runs/demo/spark` wherever it was started."""
    if out is None or cfg.run_dir != Config.model_fields["run_dir"].default:
        return Path(cfg.run_dir)
    tmp = Path(tempfile.mkdtemp(prefix="topotrigger-spark-"))
    atexit.register(shutil.rmtree, tmp, True)
    return tmp


@app.command()
def generate(
    ctx: typer.Context,
    events: Annotated[int | None, typer.Option(help="Events per class after the generator filter (generate.events).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory [default: RUN_DIR/generate].")] = None,
    classes: Annotated[str | None, typer.Option(help="Comma-separated classes: qcd,ttbar,wjets (generate.classes).")] = None,
    profile: Annotated[str | None, typer.Option(help="cms (MPI and pile-up, the default) or quick (no MPI, no pile-up) (generate.profile).")] = None,
    pileup: Annotated[float | None, typer.Option(help="Mean pile-up events overlaid per event (generate.pileup) [default: the profile's, cms 30, quick 0].")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (generate.seed).")] = None,
    files_per_class: Annotated[int | None, typer.Option(help="Files (Spark tasks) per class (generate.files_per_class).")] = None,
    reference: Annotated[Path | None, typer.Option(help="A real Delphes ROOT file whose EFlow spectra the validation plots overlay.")] = None,
) -> None:
    """Generate events with Pythia 8 + a Delphes-CMS-like detector with pile-up into Delphes-like ROOT files."""
    from topotrigger.generate.stage import generate as run_generate
    from topotrigger.reporting import print_generate

    state = _state(ctx)
    cfg = state.config(**{"generate.events": events, "generate.classes": _split(classes), "generate.profile": profile,
                          "generate.pileup": pileup, "generate.seed": seed, "generate.files_per_class": files_per_class})
    if reference is not None and not reference.is_file():  # before Spark starts
        raise MissingInputError(f"reference file not found: {reference}")
    result = run_generate(cfg.generate, out or cfg.run_dir / "generate", _spark(state, cfg, out),
                          reference=str(reference) if reference else None)
    print_generate(console, result)


def _label_map(value: str | None) -> dict[str, int] | None:
    if not value:
        return None
    try:
        return {k.strip(): int(v) for k, v in (item.split("=", 1) for item in value.split(",") if item.strip())}
    except ValueError:
        raise UserError(f"--label-map must look like qcd=0,ttbar=1,wjets=2 (got {value!r})") from None


@app.command()
def ingest(
    ctx: typer.Context,
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="ROOT file, directory or glob; local, root://, s3://, https:// (repeatable) [default: RUN_DIR/generate].")] = None,
    out: Annotated[str | None, typer.Option(help="Output Parquet directory [default: RUN_DIR/ingest].")] = None,
    tree: Annotated[str | None, typer.Option(help="Tree name (ingest.tree).")] = None,
    label_map: Annotated[str | None, typer.Option(help="Class directory name to label, e.g. qcd=0,ttbar=1,wjets=2 (ingest.label_map).")] = None,
    label: Annotated[int | None, typer.Option(help="Label for files whose directory is not in the label map.")] = None,
    on_bad_file: Annotated[str | None, typer.Option(help="stop or skip (ingest.on_bad_file).")] = None,
    partition_bytes: Annotated[int | None, typer.Option(help="Target uncompressed bytes per partition (ingest.partition_bytes).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Read ROOT files with uproot in Spark tasks and write Parquet partitioned by label, with each event's file and entry."""
    from topotrigger.ingest.stage import MANIFEST as INGEST_MANIFEST
    from topotrigger.ingest.stage import ingest as run_ingest
    from topotrigger.reporting import print_ingest

    state = _state(ctx)
    cfg = state.config(**{"ingest.tree": tree, "ingest.label_map": _label_map(label_map), "ingest.on_bad_file": on_bad_file,
                          "ingest.partition_bytes": partition_bytes})
    inputs = input or [str(cfg.run_dir / "generate" / c) for c in cfg.generate.classes]
    target = out or str(cfg.run_dir / "ingest")
    _check_paths(target, overwrite, INGEST_MANIFEST, inputs, root_files=True)
    result = run_ingest(cfg.ingest, inputs, target, _spark(state, cfg, out), overwrite, label)
    print_ingest(console, result)


@app.command()
def features(
    ctx: typer.Context,
    input: Annotated[str | None, typer.Option("--input", "-i", help="Ingested Parquet directory [default: RUN_DIR/ingest].")] = None,
    out: Annotated[str | None, typer.Option(help="Output directory [default: RUN_DIR/features].")] = None,
    layout: Annotated[str | None, typer.Option(help="compact or anchor (features.layout).")] = None,
    test_fraction: Annotated[float | None, typer.Option(help="Test share of each class (features.test_fraction).")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Validation share of each class's training events (features.val_fraction).")] = None,
    balance: Annotated[str | None, typer.Option(help="undersample or none (features.balance).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of balancing, split and shuffle (features.seed).")] = None,
    per_event_standardisation: Annotated[bool | None, typer.Option("--per-event-standardisation/--no-per-event-standardisation", help="2019 per-event particle scaling (features.per_event_standardisation).")] = None,
    mt_without_sqrt: Annotated[bool | None, typer.Option("--mt-without-sqrt/--no-mt-without-sqrt", help="2019 quirk: MT without the square root (features.mt_without_sqrt).")] = None,
    lepton_choice_by_eta: Annotated[bool | None, typer.Option("--lepton-choice-by-eta/--no-lepton-choice-by-eta", help="2019 quirk: choose electron vs muon by eta (features.lepton_choice_by_eta).")] = None,
    legacy_isolation: Annotated[bool | None, typer.Option("--legacy-isolation/--no-legacy-isolation", help="2019 quirk: isolation as the 2019 code computed it (features.legacy_isolation).")] = None,
    legacy_selection: Annotated[bool | None, typer.Option("--legacy-selection/--no-legacy-selection", help="2019 quirk: its event and lepton selection (features.legacy_selection).")] = None,
    legacy_particle_id: Annotated[bool | None, typer.Option("--legacy-particle-id/--no-legacy-particle-id", help="2019 quirk: every track a charged hadron (features.legacy_particle_id).")] = None,
    recipe: Annotated[str | None, typer.Option(help="default, or 2019: every behaviour of the 2019 feature code, in the public 2020 layout (features.recipe).")] = None,
    scaling_from: Annotated[str | None, typer.Option(help="A model directory or features output: build the features with its options and scaler (no refit, no balancing unless --balance), every event in test/, for `evaluate --model` on new data.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Select events and build scaled HLF + particle features; balanced, seeded train/val/test Parquet."""
    from topotrigger.features.stage import MANIFEST as FEATURES_MANIFEST
    from topotrigger.features.stage import features as run_features
    from topotrigger.modeldir import saved_scaling
    from topotrigger.reporting import print_features

    state = _state(ctx)
    scaling = None
    if scaling_from is not None:
        if mt_without_sqrt or lepton_choice_by_eta or legacy_isolation or legacy_selection or legacy_particle_id or recipe:
            raise ConfigError("--scaling-from takes the feature options of the model or dataset; drop --recipe and the 2019 quirk flags")
        scaling = saved_scaling(scaling_from)  # before Spark starts: a wrong path fails at once
        balance = balance or "none"
    cfg = state.config(**{"features.layout": layout, "features.test_fraction": test_fraction,
                          "features.val_fraction": val_fraction, "features.balance": balance,
                          "features.seed": seed, "features.per_event_standardisation": per_event_standardisation,
                          "features.mt_without_sqrt": mt_without_sqrt, "features.lepton_choice_by_eta": lepton_choice_by_eta,
                          "features.legacy_isolation": legacy_isolation, "features.legacy_selection": legacy_selection,
                          "features.legacy_particle_id": legacy_particle_id, "features.recipe": recipe})
    options = cfg.features.options()
    source, target = input or str(cfg.run_dir / "ingest"), out or str(cfg.run_dir / "features")
    _check_paths(target, overwrite, FEATURES_MANIFEST, [source])
    result = run_features(cfg.features, source, target, _spark(state, cfg, out), overwrite, options, scaling)
    print_features(console, result)


def _read_params(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import json

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"--params file not found: {path}") from None
    except ValueError as exc:
        raise UserError(f"--params {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("params", {}), dict):
        raise UserError(f"--params {path} must be a JSON object like tune's best.json: {{\"params\": {{...}}}}")
    return data


@app.command()
def tune(
    ctx: typer.Context,
    data: Annotated[str | None, typer.Option(help="Features output [default: RUN_DIR/features].")] = None,
    model: Annotated[str | None, typer.Option(help="Model to tune (tune.model).")] = None,
    search: Annotated[str | None, typer.Option(help="grid, random or optuna (tune.search).")] = None,
    trials: Annotated[int | None, typer.Option(help="Trials for random/optuna; 0 with grid: all (tune.trials).")] = None,
    space: Annotated[str | None, typer.Option(help="Search space: JSON object or JSON/TOML file, name -> list of values [default: the model's, the 2019 grid for hlf].")] = None,
    sample_fraction: Annotated[float | None, typer.Option(help="Share of the training split used by each trial (tune.sample_fraction).")] = None,
    parallelism: Annotated[int | None, typer.Option(help="Trials per wave of Spark tasks; 0: default parallelism (tune.parallelism).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of sampling and search (tune.seed).")] = None,
    out: Annotated[str | None, typer.Option(help="Output directory [default: RUN_DIR/tune/MODEL].")] = None,
    mlflow: Annotated[str | None, typer.Option(help="Log to MLflow at this tracking URI ('local': RUN_DIR/mlflow.db); needs the mlflow extra.")] = None,
) -> None:
    """Hyperparameter search, one Spark task per trial; resumable; writes best.json for train --params."""
    from topotrigger.reporting import print_tune
    from topotrigger.tune.stage import tune as run_tune

    state = _state(ctx)
    cfg = state.config(**{"tune.model": model, "tune.search": search, "tune.trials": trials,
                          "tune.sample_fraction": sample_fraction, "tune.parallelism": parallelism, "tune.seed": seed})
    result = run_tune(cfg.tune, data or str(cfg.run_dir / "features"), out or str(cfg.run_dir / "tune" / cfg.tune.model),
                      _spark(state, cfg), space, _train_defaults(cfg))
    print_tune(console, result)
    if (uri := tracking_uri(mlflow or cfg.run.mlflow)) is not None:
        from topotrigger.tracking import log_tune

        log_tune(uri, cfg.run_dir, cfg.tune.model_dump(mode="json"), result)


def _train_defaults(cfg: Config) -> TrainSettings:
    from topotrigger.train.loop import TrainSettings

    t = cfg.train
    return TrainSettings(model=cfg.tune.model, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, seed=t.seed,
                         length_buckets=t.length_buckets)


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[str | None, typer.Option(help="Features output (train/, val/ and test/; without val/, a seeded 10 % of train/ validates) [default: RUN_DIR/features].")] = None,
    model: Annotated[str | None, typer.Option(help="hlf, particle, inclusive, transformer (PyTorch) or mllib-rf, mllib-gbt, mllib-mlp, xgboost (Spark) (train.model).")] = None,
    inputs: Annotated[str | None, typer.Option(help="Inputs of the Spark models: hlf, or hlf+summary (xgboost: HLF and particle-list summaries) (train.inputs).")] = None,
    out: Annotated[str | None, typer.Option(help="Model directory [default: RUN_DIR/models/MODEL].")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (train.epochs).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size per worker (train.batch_size).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate for one worker (train.lr).")] = None,
    workers: Annotated[int | None, typer.Option(help="Data-parallel workers; > 1 uses TorchDistributor (train.workers).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (train.seed).")] = None,
    length_buckets: Annotated[bool | None, typer.Option("--length-buckets/--no-length-buckets", help="Batch particle models' events by similar length: faster, but trains worse (train.length_buckets).")] = None,
    params: Annotated[Path | None, typer.Option(help="JSON of hyperparameters, e.g. tune's best.json; explicit options win.")] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="Train on the GPU; an error where none is present (train.gpu).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    checkpoint_every: Annotated[int | None, typer.Option(help="Also checkpoint every K optimizer steps, 0: per epoch only (train.checkpoint_every_steps).")] = None,
    mlflow: Annotated[str | None, typer.Option(help="Log to MLflow at this tracking URI ('local': RUN_DIR/mlflow.db); needs the mlflow extra.")] = None,
) -> None:
    """Train a classifier on a features dataset, in-process or distributed on Spark."""
    from topotrigger.sparkml.estimators import SPARK_MODELS
    from topotrigger.train.loop import TrainSettings
    from topotrigger.train.models import MODELS
    from topotrigger.train.stage import train_model

    state = _state(ctx)
    if model is not None and model not in (*MODELS, *SPARK_MODELS):
        raise UserError(f"unknown model {model!r} (train.model); available: {', '.join((*MODELS, *SPARK_MODELS))}")
    tuned = _read_params(params)
    def given(option: Any, key: str) -> Any:  # an explicit 0 is a value (refused by the config), not "unset"
        return option if option is not None else tuned.get(key)

    cfg = state.config(**{"train.model": model or tuned.get("model"), "train.epochs": given(epochs, "epochs"),
                          "train.batch_size": given(batch_size, "batch_size"), "train.lr": given(lr, "lr"),
                          "train.workers": workers, "train.seed": seed, "train.length_buckets": length_buckets,
                          "train.inputs": inputs, "train.gpu": gpu, "train.checkpoint_every_steps": checkpoint_every})
    t = cfg.train
    if tuned.get("model") and tuned["model"] != t.model:
        raise UserError(f"{params} holds {tuned['model']} hyperparameters but the model is {t.model}")
    settings = TrainSettings(model=t.model, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, seed=t.seed,
                             params=tuned.get("params", {}), checkpoint_every_steps=t.checkpoint_every_steps,
                             length_buckets=t.length_buckets)
    model_dir = Path(out or cfg.run_dir / "models" / t.model)
    history = train_model(settings, data or str(cfg.run_dir / "features"), str(model_dir), t.workers,
                          lambda: _spark(state, cfg), resume, t.gpu, t.inputs)
    if (uri := tracking_uri(mlflow or cfg.run.mlflow)) is not None:
        from topotrigger.tracking import log_train

        log_train(uri, cfg.run_dir, model_dir, history, t.workers)
    last = history["epochs"][-1] if history["epochs"] else None
    if last:
        from topotrigger.modeldir import read_info

        names = read_info(model_dir).class_names()
        console.print(f"{t.model}: val accuracy {last['val_accuracy']:.3f}, val AUC "
                      + ", ".join(f"{c} {a:.3f}" for c, a in zip(names, last["val_auc"])))


def _model_dirs(models: list[str] | None, cfg: Config) -> list[str]:
    if models:
        return models
    found = sorted(str(p.parent) for p in (cfg.run_dir / "models").glob("*/model.json"))
    if not found:
        raise UserError(f"no --model given and no trained model under {cfg.run_dir / 'models'}")
    return found


@app.command()
def evaluate(
    ctx: typer.Context,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model directory, or published:inclusive-2020 (the 2020 model; data from features --recipe 2019) (repeatable) [default: every model under RUN_DIR/models].")] = None,
    data: Annotated[str | None, typer.Option(help="Features output [default: RUN_DIR/features].")] = None,
    out: Annotated[str | None, typer.Option(help="Report directory [default: RUN_DIR/evaluate].")] = None,
    split: Annotated[str | None, typer.Option(help="Dataset split to evaluate on: test, val or train (evaluate.split).")] = None,
    mlflow: Annotated[str | None, typer.Option(help="Log to MLflow at this tracking URI ('local': RUN_DIR/mlflow.db); needs the mlflow extra.")] = None,
    luminosity: Annotated[float | None, typer.Option(help="Instantaneous luminosity for the trigger rates, cm^-2 s^-1 (evaluate.luminosity).")] = None,
    cross_section: Annotated[str | None, typer.Option(help="Cross-sections in pb of the ingested events, CLASS=PB,... (override what generate recorded) (evaluate.cross_sections).")] = None,
) -> None:
    """Score models on the test split: metrics.json, trigger rates, plots and a self-contained report.html."""
    from topotrigger.evaluate.rates import parse_cross_sections
    from topotrigger.evaluate.stage import evaluate as run_evaluate
    from topotrigger.reporting import print_evaluate

    try:
        given = parse_cross_sections(cross_section) if cross_section is not None else None
    except ValueError as exc:
        raise ConfigError(f"--cross-section: {exc}") from None
    cfg = _state(ctx).config(**{"evaluate.luminosity": luminosity, "evaluate.cross_sections": given, "evaluate.split": split})
    settings = cfg.evaluate
    result = run_evaluate(_model_dirs(model, cfg), data or str(cfg.run_dir / "features"),
                          out or str(cfg.run_dir / "evaluate"), settings.split, spark=lambda: _spark(_state(ctx), cfg),
                          luminosity=settings.luminosity, cross_sections=settings.cross_sections)
    print_evaluate(console, result)
    if (uri := tracking_uri(mlflow or cfg.run.mlflow)) is not None:
        from topotrigger.tracking import log_evaluate

        log_evaluate(uri, cfg.run_dir, result)


@app.command()
def predict(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Model directory (output of train).")],
    input: Annotated[str, typer.Option("--input", "-i", help="Training-layout Parquet (compact or anchor) or ingested events.")],
    out: Annotated[str, typer.Option(help="Output Parquet directory: keys and per-class scores.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Batch inference on Spark; ingested events go through selection, features and the model's scaling."""
    from topotrigger.modeldir import refuse_published
    from topotrigger.predict.stage import MANIFEST as PREDICT_MANIFEST
    from topotrigger.predict.stage import predict as run_predict

    refuse_published(model, "predict")
    state = _state(ctx)
    cfg = state.config()
    _check_paths(out, overwrite, PREDICT_MANIFEST, [input, model])
    result = run_predict(model, input, out, _spark(state, cfg, out), overwrite)
    console.print(f"scored {result.events:,} events ({result.layout} input) in {result.seconds:.1f} s -> {result.out}")


@app.command()
def export(
    model: Annotated[str, typer.Option("--model", "-m", help="Model directory (output of train).")],
    format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    out: Annotated[str | None, typer.Option(help="Output file [default: MODEL/model.onnx].")] = None,
    data: Annotated[str | None, typer.Option(help="Training-layout Parquet to check the export on [default: the model's validation split].")] = None,
) -> None:
    """Export a model to ONNX (dynamic batch and sequence length), checked with onnxruntime."""
    from topotrigger.export.onnx import export_onnx

    if format != "onnx":
        raise UserError(f"unknown export format {format!r}; available: onnx")
    result = export_onnx(model, out, data)
    console.print(f"wrote {result.path}: scores match PyTorch on {result.events_checked:,} events "
                  f"(max |diff| {result.max_abs_diff:.1e})")


@app.command()
def bench(
    ctx: typer.Context,
    scale: Annotated[float, typer.Option(help="Dataset size: 1000 x SCALE generated events per class.", min=0.05)] = 1.0,
    out: Annotated[Path | None, typer.Option(help="Output directory [default: RUN_DIR/bench].")] = None,
    cores: Annotated[str, typer.Option(help="Comma-separated core counts N: one pass on local[N] each.")] = "1,2",
    cluster: Annotated[bool, typer.Option("--cluster/--no-cluster", help="Also a pass on a 2-worker standalone cluster.")] = True,
) -> None:
    """Scalability study: every stage on local[N] for each N of --cores, and on a 2-worker standalone cluster."""
    from topotrigger.bench.study import study
    from topotrigger.reporting import print_bench

    try:
        sweep = tuple(int(n) for n in cores.split(","))
    except ValueError:
        raise UserError(f"--cores takes comma-separated positive integers, not {cores!r}") from None
    if not sweep or min(sweep) < 1:
        raise UserError(f"--cores takes comma-separated positive integers, not {cores!r}")
    cfg = _state(ctx).config()
    target = out or cfg.run_dir / "bench"
    print_bench(console, study(scale, target, cores=sweep, cluster=cluster), target)


@app.command()
def run(
    ctx: typer.Context,
    force: Annotated[str | None, typer.Option(help="Redo this stage and every later one: generate, ingest, features, tune, train, evaluate.")] = None,
) -> None:
    """The whole pipeline in RUN_DIR: generate, ingest, features, tune, train, evaluate; current stages are skipped."""
    from topotrigger.pipeline import run_pipeline

    state = _state(ctx)
    cfg = state.config()
    run_pipeline(cfg, lambda: _spark(state, cfg), console, force)


# The global options (the callback's), with whether each takes a value. No command has one of these names.
_GLOBAL_OPTIONS = {"--config": True, "-c": True, "--master": True, "--remote": True, "--run-dir": True,
                   "--fast-start": False, "--no-fast-start": False, "--verbose": False, "-v": False}


def global_options_first(argv: list[str]) -> list[str]:
    """`topotrigger run --master local[2]` as `topotrigger --master local[2] run`: global options are
    accepted after the command too."""
    head: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # global options already in front
        takes = _GLOBAL_OPTIONS.get(argv[i].split("=", 1)[0], False) and "=" not in argv[i]
        head += argv[i:i + 1 + takes]
        i += 1 + takes
    moved: list[str] = []
    rest: list[str] = []
    while i < len(argv):
        token = argv[i]
        name = token.split("=", 1)[0]
        if token == "--":
            rest += argv[i:]
            break
        if name in _GLOBAL_OPTIONS:
            takes = _GLOBAL_OPTIONS[name] and "=" not in token
            moved += argv[i:i + 1 + takes]
            i += 1 + takes
            continue
        rest.append(token)
        i += 1
    return head + moved + rest


def main(argv: list[str] | None = None) -> None:
    # Typer handles usage errors (exit 2) and --help itself; our user errors become one line.
    try:
        app(args=global_options_first(list(sys.argv[1:] if argv is None else argv)), prog_name="topotrigger")
    except UserError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
