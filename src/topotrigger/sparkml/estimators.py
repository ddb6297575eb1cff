"""The Spark-side models of `train --model`, with their hyperparameter defaults.

All take a fixed-size vector per event: the HLF (`inputs = "hlf"`), or for XGBoost optionally
the HLF plus a fixed-size summary of the particle list (`"hlf+summary"`, see `inputs.py`).
"""

from __future__ import annotations

from typing import Any

from topotrigger.errors import ConfigError
from topotrigger.features.kernels.definitions import N_CLASSES

DEFAULTS: dict[str, dict[str, Any]] = {
    "mllib-rf": {"num_trees": 100, "max_depth": 10},
    "mllib-gbt": {"max_iter": 50, "max_depth": 5, "step_size": 0.1},
    # The HLF DNN's layer sizes (docs/training.md), trained by Spark's own L-BFGS.
    "mllib-mlp": {"nh1": 50, "nh2": 20, "nh3": 10, "max_iter": 200, "block_size": 128},
    "xgboost": {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1},
}
SPARK_MODELS = tuple(DEFAULTS)
INPUTS = {"mllib-rf": ("hlf",), "mllib-gbt": ("hlf",), "mllib-mlp": ("hlf",), "xgboost": ("hlf", "hlf+summary")}


def model_params(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    params = dict(DEFAULTS[name])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ConfigError(f"model {name} has no hyperparameter {key!r}; available: {', '.join(params)}")
        params[key] = type(params[key])(value)
    return params


def check_inputs(name: str, inputs: str) -> None:
    if inputs not in INPUTS[name]:
        raise ConfigError(f"{name} takes fixed-size inputs ({', '.join(INPUTS[name])}), not {inputs!r}; "
                          "particle sequences need the particle, inclusive or transformer model")


def build(name: str, params: dict[str, Any], n_inputs: int, seed: int, parallelism: int) -> Any:
    from pyspark.ml.classification import GBTClassifier, MultilayerPerceptronClassifier, OneVsRest, RandomForestClassifier

    p = model_params(name, params)
    if name == "mllib-rf":
        return RandomForestClassifier(numTrees=p["num_trees"], maxDepth=p["max_depth"], seed=seed)
    if name == "mllib-gbt":  # GBTClassifier is binary: one-vs-rest, one GBT per class
        gbt = GBTClassifier(maxIter=p["max_iter"], maxDepth=p["max_depth"], stepSize=p["step_size"], seed=seed)
        return OneVsRest(classifier=gbt, parallelism=parallelism)
    if name == "mllib-mlp":
        return MultilayerPerceptronClassifier(layers=[n_inputs, p["nh1"], p["nh2"], p["nh3"], N_CLASSES],
                                              maxIter=p["max_iter"], blockSize=p["block_size"], seed=seed)
    from topotrigger._optional import require

    spark_xgb = require("xgboost.spark")
    import logging

    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)  # it narrates every fit at INFO
    return spark_xgb.SparkXGBClassifier(features_col="features", label_col="label", num_workers=parallelism,
                                        n_estimators=p["n_estimators"], max_depth=p["max_depth"],
                                        learning_rate=p["learning_rate"], random_state=seed)


def model_class(name: str) -> Any:
    """The fitted model's class, for loading it back."""
    if name == "mllib-rf":
        from pyspark.ml.classification import RandomForestClassificationModel

        return RandomForestClassificationModel
    if name == "mllib-gbt":
        from pyspark.ml.classification import OneVsRestModel

        return OneVsRestModel
    if name == "mllib-mlp":
        from pyspark.ml.classification import MultilayerPerceptronClassificationModel

        return MultilayerPerceptronClassificationModel
    from topotrigger._optional import require

    return require("xgboost.spark").SparkXGBClassifierModel
