"""The `predict` stage: batch inference of a saved model on Spark."""
