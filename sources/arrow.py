"""Rows for dlt as Arrow tables: one schema per table, derived from the same dlt column hints the resource
declares, so dlt infers nothing and the Arrow schema and the hints never disagree.

Why Arrow: dlt's JSON path normalizes row by row (a third of a first load's CPU in every CRM's profile);
Arrow tables go to parquet as they are. Money stays exact: Decimals go into decimal128 unchanged, and a value
with more places than its column is refused, not rounded, as on the JSON path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dlt
import pyarrow as pa
from dlt.common.normalizers.utils import generate_dlt_ids

TYPES = {"bigint": pa.int64(), "text": pa.string(), "bool": pa.bool_(), "date": pa.date32(),
         "timestamp": pa.timestamp("us", tz="UTC")}
# dlt's two columns, NOT NULL as its JSON normalizer created them: tables first loaded that way (warehouses of
# earlier versions) refuse Arrow rows without them
DLT_FIELDS = [pa.field("_dlt_load_id", pa.string(), nullable=False), pa.field("_dlt_id", pa.string(), nullable=False)]
DLT_NAMES = frozenset(f.name for f in DLT_FIELDS)


def hints(columns: dict, names: Iterable[str] | None = None) -> dict:
    """dlt column hints of ``columns`` (only ``names`` when given) as fresh dicts: dlt mutates the column
    schemas it is given, and a shared dict would leak hints from one column (or table) into another."""
    return {name: dict(columns[name]) for name in (columns if names is None else names)}


def arrow_field(name: str, hint: dict) -> pa.Field:
    kind = hint["data_type"]
    typ = pa.decimal128(hint["precision"], hint["scale"]) if kind == "decimal" else TYPES[kind]
    return pa.field(name, typ, nullable=hint.get("nullable", True))


def arrow_schema(columns: dict, dlt_columns: bool = False) -> pa.Schema:
    """The Arrow schema of dlt column hints (name -> hint), with dlt's two columns last when asked."""
    return pa.schema([arrow_field(n, h) for n, h in columns.items()] + (DLT_FIELDS if dlt_columns else []))


def arrow_columns(columns: Mapping[str, list | pa.Array], n: int, schema: pa.Schema,
                  constants: dict | None = None) -> pa.Table:
    """``n`` rows given column by column (name -> values) as a table of ``schema``. A ``constants`` column is
    one value repeated (an Arrow constant array, not a list of ``n`` values); dlt's two columns, when the
    schema has them, are filled as dlt fills them (this package's load id, a random row id)."""
    fixed = dict(constants or {})
    if "_dlt_load_id" in schema.names:
        fixed["_dlt_load_id"] = dlt.current.load_package_state()["load_id"]
    arrays = []
    for field in schema:
        name = field.name
        if name == "_dlt_id":
            arrays.append(pa.array(generate_dlt_ids(n), type=field.type))
        elif name in fixed:
            arrays.append(pa.repeat(pa.scalar(fixed[name], type=field.type), n))
        else:
            values = columns[name]
            arrays.append(values if isinstance(values, pa.Array) else pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def arrow_table(rows: list[dict], schema: pa.Schema, constants: dict | None = None) -> pa.Table:
    """``rows`` (dicts) as a table of ``schema``; a column no row has is all null."""
    skip = DLT_NAMES | set(constants or {})
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema if f.name not in skip}
    return arrow_columns(columns, len(rows), schema, constants)
