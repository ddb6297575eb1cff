"""From ROOT branches to Spark columns: naming variants, grouping into collections, type mapping.

A *column plan* is a list of `Column`s: a scalar branch (`Event_weight` -> double) or a collection
(`EFlowTrack.PT`, `EFlowTrack.Eta`, ... -> `EFlowTrack: array<struct<PT, Eta, ...>>`). It travels
to executors as JSON and is resolved against each file's own branch names there.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    ByteType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StructField,
    StructType,
)

# Spark has no unsigned integers: each unsigned type widens to the next signed one (uint64 -> long wraps).
_SPARK_TYPES: dict[str, DataType] = {
    "bool": BooleanType(), "int8": ByteType(), "uint8": ShortType(), "int16": ShortType(), "uint16": IntegerType(),
    "int32": IntegerType(), "uint32": LongType(), "int64": LongType(), "uint64": LongType(),
    "float32": FloatType(), "float64": DoubleType(),
}
_NUMPY_OF_SPARK = {"boolean": "bool", "tinyint": "int8", "smallint": "int16", "int": "int32", "bigint": "int64",
                   "float": "float32", "double": "float64"}
# ROOT object internals of every Delphes collection, never physics.
_INTERNAL_FIELDS = {"fUniqueID", "fBits"}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str | None = None                                   # scalar column: numpy dtype name
    fields: tuple[tuple[str, str], ...] = field(default=())    # collection: (field, numpy dtype name)
    source: str = ""                                           # scalar column: its branch name, if not `name`

    @property
    def is_collection(self) -> bool:
        return self.dtype is None

    def spark_type(self) -> DataType:
        if self.is_collection:
            return ArrayType(StructType([StructField(f, _SPARK_TYPES[t]) for f, t in self.fields]))
        return _SPARK_TYPES[self.dtype or "float64"]


def spark_schema(columns: list[Column]) -> StructType:
    return StructType([StructField(c.name, c.spark_type()) for c in columns])


def to_json(columns: list[Column]) -> str:
    return json.dumps([[c.name, c.dtype, [list(f) for f in c.fields], c.source] for c in columns])


def from_json(text: str) -> list[Column]:
    return [Column(name, dtype, tuple((f, t) for f, t in fields), source) for name, dtype, fields, source in json.loads(text)]


def from_spark_schema(schema: StructType) -> list[Column]:
    """A column plan from a user-given schema (which thereby prunes the branches read)."""
    columns = []
    for f in schema.fields:
        t = f.dataType
        if isinstance(t, ArrayType) and isinstance(t.elementType, StructType):
            columns.append(Column(f.name, None, tuple((s.name, _numpy_of(s.dataType, f"{f.name}.{s.name}"))
                                                       for s in t.elementType.fields)))
        else:
            columns.append(Column(f.name, _numpy_of(t, f.name)))
    return columns


def _numpy_of(t: DataType, name: str) -> str:
    simple = t.simpleString()
    if simple not in _NUMPY_OF_SPARK:
        raise ValueError(f"column {name}: type {simple} cannot be read from ROOT (use numeric scalars or array<struct>)")
    return _NUMPY_OF_SPARK[simple]


def split_name(leaf: str, collections: set[str]) -> tuple[str, str] | None:
    """(collection, field) of a branch leaf name, or None for a plain scalar branch."""
    if "." in leaf:
        outer, inner = leaf.split(".", 1)
        return outer, inner
    for name in collections:
        if leaf.startswith(name + "_") and leaf != f"{name}_size":
            return name, leaf[len(name) + 1:]
    return None


def branch_dtypes(tree: Any) -> dict[str, tuple[str, bool]]:
    """Leaf name -> (numpy dtype, jagged?) for every branch Spark can hold; others are left out."""
    out: dict[str, tuple[str, bool]] = {}
    if hasattr(tree, "branches"):  # TTree
        import uproot

        for key in tree.keys(recursive=True):
            interp = tree[key].interpretation
            leaf = key.rsplit("/", 1)[-1]
            if isinstance(interp, uproot.interpretation.numerical.AsDtype) and interp.inner_shape == ():
                out[leaf] = (np.dtype(interp.to_dtype).name, False)
            elif (isinstance(interp, uproot.interpretation.jagged.AsJagged)
                  and isinstance(interp.content, uproot.interpretation.numerical.AsDtype)
                  and interp.content.inner_shape == ()):
                out[leaf] = (np.dtype(interp.content.to_dtype).name, True)
    else:  # RNTuple: read no entries, look at the types
        import awkward as ak

        sample = tree.arrays(entry_start=0, entry_stop=min(1, tree.num_entries))
        for top in ak.fields(sample):
            value = sample[top]
            layout = value.layout
            if isinstance(layout, ak.contents.NumpyArray):
                out[top] = (layout.dtype.name, False)
            elif layout.is_list and layout.content.is_record:
                for inner in layout.content.fields:
                    content = layout.content[inner]
                    if isinstance(content, ak.contents.NumpyArray):
                        out[f"{top}.{inner}"] = (content.dtype.name, True)
    # Structured dtypes (TRef, TLorentzVector members...) have no Spark counterpart.
    return {leaf: v for leaf, v in out.items() if v[0] in _SPARK_TYPES}


def infer_columns(tree: Any, patterns: list[str] | None = None) -> list[Column]:
    """The column plan of a tree: collections from `C.F`/`C_F` jagged branches, scalars from flat ones.

    `patterns` (names or globs, matched against `C.F` and against `C`) restrict the branches.
    """
    dtypes = branch_dtypes(tree)
    counters = {leaf[: -len("_size")] for leaf in dtypes if leaf.endswith("_size")}
    counters |= {leaf[1:] for leaf in dtypes if re.fullmatch(r"n[A-Z]\w*", leaf)}
    grouped: dict[str, list[tuple[str, str]]] = {}
    scalars: list[Column] = []
    for leaf, (dtype, jagged) in dtypes.items():
        parts = split_name(leaf, counters) if jagged else None
        if parts is None and jagged:
            parts = (leaf, "value")
        if parts:
            collection, inner = parts
            if inner in _INTERNAL_FIELDS or not _wanted(f"{collection}.{inner}", collection, patterns):
                continue
            grouped.setdefault(collection, []).append((inner, dtype))
        elif not leaf.endswith("_size") and _wanted(leaf, leaf, patterns):
            scalars.append(Column(leaf.replace(".", "_"), dtype, source=leaf))
    columns = [Column(name, None, tuple(fields)) for name, fields in grouped.items()] + scalars
    if patterns:
        matched = {p for p in patterns if any(_wanted_one(f"{c.name}.{f}", c.name, p) for c in columns
                                               for f, _ in (c.fields or (("", ""),)))}
        missing = [p for p in patterns if p not in matched]
        if missing:
            raise KeyError(missing[0])
    return columns


def _wanted_one(full: str, collection: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(full, pattern) or fnmatch.fnmatchcase(collection, pattern) or full.rstrip(".") == pattern


def _wanted(full: str, collection: str, patterns: list[str] | None) -> bool:
    return not patterns or any(_wanted_one(full, collection, p) for p in patterns)
