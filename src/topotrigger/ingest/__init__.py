"""Ingestion: ROOT files -> Spark DataFrame (the `root` data source) -> Parquet (the `ingest` stage).

Layers: `paths` (inputs -> file list), `schema` (branches -> columns), `reader` (entry range ->
Arrow batches; no Spark), `plan` (files -> partitions), `source` (Spark Python Data Source glue),
`stage` (labels, Parquet, manifest).
"""
