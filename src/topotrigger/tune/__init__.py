"""The `tune` stage: hyperparameter search, one Spark task per trial."""
