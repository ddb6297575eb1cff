"""Training: PyTorch models (`models`, which know nothing of data), a streaming Parquet loader
(`data`), the training loop with checkpoints (`loop`), and Spark's TorchDistributor glue (`distributed`)."""
