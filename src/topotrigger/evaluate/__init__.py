"""The `evaluate` stage: metrics, trigger view, plots and an HTML report for one or more models."""
