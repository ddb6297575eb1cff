"""From ROOT branches to Spark columns: naming variants, grouping into collections, type mapping.

A *column plan* is a list of `Column`s: a scalar branch (`Event_weight` -> double), a collection
(`EFlowTrack.PT`, `EFlowTrack.Eta`, ... -> `EFlowTrack: array<struct<PT, Eta, ...>>`) or a branch of
any other type awkward can describe (`hits: array<float>`, strings, nested lists, records). It
travels to executors as JSON with the file's own branch name for every value, and is resolved
against each file's branch names there (other files may name a collection differently).

Types: numbers keep their width (unsigned ones widen to the next signed type: Spark has none);
anything else is carried as a Spark type in JSON, derived from the awkward form uproot gives the
branch. ROOT object references (`TRef`, `TRefArray`) are read only when named exactly: their values
are indices into ROOT's in-memory tables, meaningless outside ROOT. A branch whose type has no
Spark counterpart is an error naming it, never a silently missing column.
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
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    _parse_datatype_json_string,
)

from topotrigger.errors import InputError

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
# ROOT references: indices into ROOT's process tables, left out unless asked for by name.
_REFERENCES = {"TRef", "TRefArray"}


def is_number(dtype: str) -> bool:
    """A numpy dtype name (fast columnar path), as opposed to a Spark type in JSON."""
    return dtype in _SPARK_TYPES


def number_list_element(dtype: str) -> str:
    """The numbers' dtype when a column's type (Spark JSON) is an array of numbers, else ""."""
    if not dtype.startswith("{"):
        return ""
    t = _parse_datatype_json_string(dtype)
    if isinstance(t, ArrayType) and not isinstance(t.elementType, (ArrayType, StructType)):
        return _NUMPY_OF_SPARK.get(t.elementType.simpleString(), "")
    return ""


def _spark_of(dtype: str) -> DataType:
    return _SPARK_TYPES[dtype] if is_number(dtype) else _parse_datatype_json_string(dtype)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str | None = None                                   # scalar column: numpy dtype name or Spark JSON
    fields: tuple[tuple[str, str], ...] = field(default=())    # collection: (field, numpy dtype name or Spark JSON)
    source: str = ""                                           # scalar column: its branch name, if not `name`
    sources: tuple[str, ...] = ()                              # collection: each field's branch name in the file

    @property
    def is_collection(self) -> bool:
        return self.dtype is None

    def spark_type(self, never_null: bool = False) -> DataType:
        if self.is_collection:
            return ArrayType(StructType([StructField(f, _spark_of(t), not (never_null and is_number(t)))
                                         for f, t in self.fields]), not never_null)
        return _spark_of(self.dtype or "float64")

    def can_be_null(self) -> bool:
        """Whether a value of the column itself may be null: one of a type from an awkward form (whose
        items say for themselves whether they may be)."""
        return not (self.is_collection or is_number(self.dtype or ""))


def spark_schema(columns: list[Column], never_null: bool = False) -> StructType:
    """The Spark schema of a column plan. `never_null` declares the values that cannot be null in a ROOT
    file non-nullable (numbers, collections and their numbers): Spark then copies them into its rows
    without a null check per value, which makes reading through the data source ≈ 15 % faster. Types
    from awkward forms allow nulls where the form has an option type, and only there."""
    return StructType([StructField(c.name, c.spark_type(never_null), not never_null or c.can_be_null())
                       for c in columns])


def to_json(columns: list[Column]) -> str:
    return json.dumps([[c.name, c.dtype, [list(f) for f in c.fields], c.source, list(c.sources)] for c in columns])


def from_json(text: str) -> list[Column]:
    return [Column(name, dtype, tuple((f, t) for f, t in fields), source, tuple(sources))
            for name, dtype, fields, source, sources in json.loads(text)]


def from_spark_schema(schema: StructType) -> list[Column]:
    """A column plan from a Spark schema (a user-given one prunes the branches read); no branch names yet."""
    columns = []
    for f in schema.fields:
        t = f.dataType
        if isinstance(t, ArrayType) and isinstance(t.elementType, StructType):
            columns.append(Column(f.name, None, tuple((s.name, _dtype_of(s.dataType)) for s in t.elementType.fields)))
        else:
            columns.append(Column(f.name, _dtype_of(t)))
    return columns


def _dtype_of(t: DataType) -> str:
    return _NUMPY_OF_SPARK.get(t.simpleString()) or t.json()


def with_sources(columns: list[Column], known: list[Column]) -> list[Column]:
    """`columns` (from a Spark schema) with the branch names of the same-named columns in `known`."""
    by_name = {c.name: c for c in known}
    out = []
    for c in columns:
        k = by_name.get(c.name)
        if k is None or k.is_collection != c.is_collection:
            out.append(c)
        elif c.is_collection:
            source_of = dict(zip((f for f, _ in k.fields), k.sources))
            sources = tuple(source_of.get(f, "") for f, _ in c.fields)
            out.append(Column(c.name, None, c.fields, sources=sources if all(sources) else ()))
        else:
            out.append(Column(c.name, c.dtype, source=k.source or k.name))
    return out


@dataclass(frozen=True)
class Branch:
    """What the source knows of one branch (TTree) or field (RNTuple) before reading it."""
    name: str                # as the file names it: `Jet.PT`, `Muon_pt`, `xTrigDecisionAux.smk`, `hits`
    dtype: str               # numpy dtype name of the numbers, or a Spark type in JSON ("" if unmappable)
    jagged: bool             # one list of numbers per entry (dtype is the numbers')
    kind: str = ""           # the ROOT/awkward type, for messages
    reference: bool = False  # a TRef/TRefArray
    listed: bool = False     # a variable-length list per entry (of anything)


def _record_name(form: Any) -> str:
    return str(form.parameters.get("__record__", "")) if hasattr(form, "parameters") else ""


def _is_option(form: Any) -> bool:
    import awkward as ak

    f = ak.forms
    return isinstance(form, (f.IndexedOptionForm, f.ByteMaskedForm, f.BitMaskedForm, f.UnmaskedForm))


def spark_type_of_form(form: Any) -> DataType | None:
    """The Spark type of an awkward form, or None when it has none (unions, unknown objects). Items and
    record fields allow nulls exactly where the form has an option type."""
    import awkward as ak

    f = ak.forms
    if _is_option(form) or isinstance(form, f.IndexedForm):
        return spark_type_of_form(form.content)
    if isinstance(form, f.NumpyForm):
        name = np.dtype(form.primitive).name if form.primitive != "datetime64" else ""
        if name not in _SPARK_TYPES:
            return None
        out: DataType = _SPARK_TYPES[name]
        for _ in form.inner_shape:
            out = ArrayType(out, False)
        return out
    if isinstance(form, (f.ListOffsetForm, f.ListForm, f.RegularForm)):
        array = form.parameters.get("__array__")
        if array == "string":
            return StringType()
        if array == "bytestring":
            return BinaryType()
        inner = spark_type_of_form(form.content)
        return None if inner is None else ArrayType(inner, _is_option(form.content))
    if isinstance(form, f.RecordForm) and not form.is_tuple:
        fields = [(n, spark_type_of_form(c), _is_option(c)) for n, c in zip(form.fields, form.contents)]
        if any(t is None for _, t, _ in fields):
            return None
        return StructType([StructField(n, t, nullable) for n, t, nullable in fields if t is not None])
    return None


def _branch_of_form(name: str, form: Any, kind: str) -> Branch:
    """A Branch from the awkward form of one entry's value (a TTree branch or an RNTuple field)."""
    import awkward as ak

    f = ak.forms
    if isinstance(form, f.NumpyForm) and not form.inner_shape and np.dtype(form.primitive).name in _SPARK_TYPES:
        return Branch(name, np.dtype(form.primitive).name, False, kind)
    if (isinstance(form, f.ListOffsetForm) and isinstance(form.content, f.NumpyForm) and not form.content.inner_shape
            and not form.parameters.get("__array__") and np.dtype(form.content.primitive).name in _SPARK_TYPES):
        return Branch(name, np.dtype(form.content.primitive).name, True, kind)
    listed = isinstance(form, (f.ListOffsetForm, f.ListForm)) and not form.parameters.get("__array__")
    reference = _record_name(form.content if listed else form) in _REFERENCES
    t = spark_type_of_form(form)
    return Branch(name, "" if t is None else t.json(), False, kind, reference, listed)


def branches_of(tree: Any) -> list[Branch]:
    """Every branch (TTree) or field (RNTuple) with its type; containers of split branches are left out."""
    out: list[Branch] = []
    if hasattr(tree, "branches"):  # TTree
        for key, branch in tree.iteritems(recursive=True):  # not tree[key]: each lookup walks the whole tree
            if branch.branches:  # a split object's top branch: its value is the entry count of the sub-branches
                continue
            leaf = key.rsplit("/", 1)[-1]
            try:
                form = branch.interpretation.awkward_form(branch.file)
            except Exception:  # uproot has no interpretation for it
                out.append(Branch(leaf, "", False, branch.typename or "unknown"))
                continue
            out.append(_branch_of_form(leaf, form, branch.typename))
        return out
    # RNTuple: top-level fields; a list of records is a collection of `top.inner` fields, a record a group of scalars
    import awkward as ak

    form = tree.arrays(entry_start=0, entry_stop=min(1, tree.num_entries)).layout.form
    f = ak.forms
    for top, content in zip(form.fields, form.contents):
        if (isinstance(content, f.ListOffsetForm) and isinstance(content.content, f.RecordForm)
                and not content.content.is_tuple and not _record_name(content.content)):
            for inner, c in zip(content.content.fields, content.content.contents):
                branch = _branch_of_form(f"{top}.{inner}", f.ListOffsetForm("i64", c), str(c.type))
                out.append(branch)
        elif isinstance(content, f.RecordForm) and not content.is_tuple and not _record_name(content):
            out += [_branch_of_form(f"{top}.{inner}", c, str(c.type)) for inner, c in zip(content.fields, content.contents)]
        else:
            out.append(_branch_of_form(top, content, str(content.type)))
    return out


def split_name(leaf: str, collections: set[str]) -> tuple[str, str] | None:
    """(collection, field) of a jagged branch's name, or None when it belongs to no collection."""
    if "." in leaf:
        outer, inner = leaf.split(".", 1)
        return outer, re.sub(r"\[\d+\]$", "", inner)
    for name in sorted(collections, key=len, reverse=True):
        if leaf.startswith(name + "_") and leaf != f"{name}_size":
            return name, leaf[len(name) + 1:]
    return None


def infer_columns(tree: Any, patterns: list[str] | None = None, strict: bool = True,
                  nested: bool = True) -> list[Column]:
    """The column plan of a tree: collections from jagged `C.F`/`C_F` branches (with a counter `C_size`,
    `nC` or `C`), scalars from flat ones, other types as they are.

    `patterns` (names or globs) select branches, matched against the file's own name (`Muon_pt`,
    `Jet.PT`), against `C.F` and against the collection `C`. A type with no Spark counterpart raises
    InputError, or is left out when not `strict`. Not `nested`: no collections, one `array` column
    per jagged branch (`Jet.PT` -> `Jet_PT: array<float>`), as uproot's own arrays are.
    """
    branches = branches_of(tree)
    names = {b.name for b in branches}
    counters = {n[: -len("_size")] for n in names if n.endswith("_size")}
    counters |= {n[1:] for n in names if re.fullmatch(r"n[A-Za-z]\w*", n)}
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    others: list[Column] = []
    selected: list[tuple[str, str, str]] = []  # (own name, `C.F`, collection) of each branch taken
    split: set[str] = set()  # collections with fields taken
    for b in branches:
        element = _element_of(b)  # the type of one item when the branch holds a list per entry
        parts = split_name(b.name, counters) if element else None
        own = b.name
        if parts:
            collection, inner = parts
            if inner in _INTERNAL_FIELDS or not _wanted(patterns, own, f"{collection}.{inner}", collection):
                continue
        elif own.endswith("_size") or not _wanted(patterns, own, own, own):
            continue
        if not b.dtype and not strict:
            continue
        if not b.dtype:
            hint = "; leave it out with branches=" if not patterns else ""
            raise InputError(f"branch {own} has type {b.kind}, which has no Spark counterpart{hint}")
        if b.reference and not (patterns and {own, f"{parts[0]}.{parts[1]}" if parts else own} & set(patterns)):
            continue  # references only when named exactly
        if parts:
            split.add(parts[0])
        if parts and nested:
            grouped.setdefault(parts[0], []).append((parts[1], element or b.dtype, own))
            selected.append((own, f"{parts[0]}.{parts[1]}", parts[0]))
        else:
            dtype = ArrayType(_SPARK_TYPES[b.dtype], False).json() if b.jagged else b.dtype
            name = f"{parts[0]}_{parts[1]}" if parts else own.replace(".", "_")
            others.append(Column(name, dtype, source=own))
            selected.append((own, f"{parts[0]}.{parts[1]}", parts[0]) if parts else (own, own, own))
    # An integer branch named like a collection is its counter (Delphes writes one): the list length says it.
    others = [c for c in others if not (c.name in split and c.dtype and "int" in c.dtype)]
    columns = [Column(name, None, tuple((f, t) for f, t, _ in fields), sources=tuple(s for _, _, s in fields))
               for name, fields in grouped.items()] + others
    taken = [c.name for c in columns]
    if len(set(taken)) != len(taken):
        twice = sorted({n for n in taken if taken.count(n) > 1})
        raise InputError(f"branches {', '.join(twice)} would give two columns of the same name: select one with branches=")
    if patterns:
        missing = [p for p in patterns if not any(_wanted([p], *names) for names in selected)]
        if missing:
            raise KeyError(missing[0])
    return columns


def _element_of(b: Branch) -> str:
    """For a branch with a list per entry, the dtype (number) or Spark JSON of one item; else ""."""
    if b.jagged:
        return b.dtype
    if b.listed and b.dtype:
        t = _parse_datatype_json_string(b.dtype)
        if not isinstance(t, ArrayType):
            return ""
        # Items that may be null are never taken as plain numbers (those are read without a mask).
        return t.elementType.json() if t.containsNull else _dtype_of(t.elementType)
    return ""


def _wanted(patterns: list[str] | None, own: str, full: str, collection: str) -> bool:
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(own, p) or own == p or fnmatch.fnmatchcase(full, p) or full == p
               or fnmatch.fnmatchcase(collection, p) for p in patterns)
