"""Task-side Parquet writing with a driver-side commit."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from topotrigger.io.arrow_writer import write_parquet

pytestmark = pytest.mark.spark


def test_partitioned_write_reads_back_in_order(spark, tmp_path: Path) -> None:
    df = spark.range(0, 1000, numPartitions=4).selectExpr("id", "CAST(id % 3 AS INT) AS label", "array(id, id) AS pair")
    out = tmp_path / "out"
    counts = write_parquet(df, str(out), partition_column="label")
    assert counts == {"0": 334, "1": 333, "2": 333}
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "label=0", "label=1", "label=2"]
    back = spark.read.parquet(str(out))
    assert sorted((r.id, r.label, tuple(r.pair)) for r in back.collect()) == [(i, i % 3, (i, i)) for i in range(1000)]
    files = sorted((out / "label=0").glob("*.parquet"))
    assert [f.name[:10] for f in files] == [f"part-{i:05d}" for i in range(4)]


def test_unpartitioned_write_keeps_dataframe_order(spark, tmp_path: Path) -> None:
    df = spark.range(0, 500, numPartitions=3).orderBy("id")
    write_parquet(df, str(tmp_path / "out"))
    table = pq.read_table(tmp_path / "out")
    assert table.column("id").to_pylist() == list(range(500))
    assert not (tmp_path / "out" / "_attempts").exists()


def test_failed_job_exposes_no_files(spark, tmp_path: Path) -> None:
    df = spark.range(0, 100, numPartitions=2).selectExpr("id", "assert_true(id < 90) AS ok")
    with pytest.raises(Exception, match="assert_true|id < 90"):
        write_parquet(df, str(tmp_path / "out"))
    assert all("_attempts" in str(p) for p in (tmp_path / "out").rglob("*.parquet"))
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_float_columns_are_the_parquet_paths_of_float_leaves(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from topotrigger.io.arrow_writer import float_columns

    schema = pa.schema([("x", pa.float32()), ("n", pa.int32()), ("s", pa.string()),
                        ("jets", pa.list_(pa.struct([("pt", pa.float32()), ("id", pa.int64()), ("m", pa.float64())]))),
                        ("hlf", pa.list_(pa.float32(), 3)), ("deep", pa.list_(pa.list_(pa.float64()))),
                        ("met", pa.struct([("phi", pa.float32())]))])
    pq.write_table(schema.empty_table(), tmp_path / "t.parquet")
    parquet = pq.ParquetFile(tmp_path / "t.parquet").schema
    expected = [parquet.column(i).path for i in range(len(parquet)) if parquet.column(i).physical_type in ("FLOAT", "DOUBLE")]
    assert float_columns(schema) == expected and len(expected) == 6
