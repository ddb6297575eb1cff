"""topotrigger: the LHC topology classifier as an end-to-end Apache Spark pipeline.

Stages (each a sub-package and a CLI command) talk only through files:
generate (ROOT) -> ingest (Parquet) -> features (Parquet + metadata.json) -> train -> evaluate.
"""

__version__ = "0.1.0"
