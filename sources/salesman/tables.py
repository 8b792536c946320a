"""The tables this source writes, each column declared once: the dlt column hints and the Arrow schema of the
rows both come from that declaration, so they cannot disagree (dlt warns on every page when they do).

Every table with many rows goes to dlt as Arrow tables: dlt's Arrow path writes them as they are, where its
row-by-row JSON normalizer measured about a third of a first load's CPU.
"""

from __future__ import annotations

from collections.abc import Iterable

import dlt
import pyarrow as pa
from dlt.common.normalizers.utils import generate_dlt_ids

from ..common import MONEY, RATE

KEY = {"data_type": "bigint", "nullable": False}
BIGINT = {"data_type": "bigint"}
TEXT = {"data_type": "text"}
BOOL = {"data_type": "bool"}
DATE = {"data_type": "date"}
TIMESTAMP = {"data_type": "timestamp"}  # aware, UTC

# the columns every table gets from the source (the account's name, base currency and zone, the run's time)
CONTEXT = {"account": TEXT, "currency": TEXT, "timezone": TEXT}

INVOICE_ROWS = {
    "crid": KEY, "did": BIGINT, "clid": BIGINT, "client": TEXT, "pid": BIGINT, "person": TEXT, "deal": TEXT,
    "invoice": TEXT, "contract": TEXT, "summa": MONEY,
    # the wall-clock text as the server sent it (in the database server's zone)
    "date_create": TEXT, "created_at": TIMESTAMP, "issue_date": DATE, "date_plan": DATE, "date_fact": DATE,
    "is_paid_list": BOOL, "mc": BIGINT, "company": TEXT, "_fingerprint": TEXT,
    "_scan": {"data_type": "bigint", "dedup_sort": "desc"},
    **CONTEXT, "_extracted_at": TIMESTAMP,
}
# The hints the resource itself carries. dlt gives its table variants (the details, the deletion marks) the
# resource's column hints too, so these few stay what they always were: the tables keep their columns.
INVOICE_ROW_HINTS = ("crid", "summa", "created_at", "issue_date", "date_create", "date_plan", "date_fact", "invoice",
                     "contract", "person", "pid", "company", "_scan")

INVOICE_DETAILS = {
    "crid": KEY, "invoice": TEXT, "datum": TEXT, "created_at": TIMESTAMP, "datum_credit": DATE, "invoice_date": DATE,
    "contractnum": TEXT, "summa": MONEY, "nds": MONEY, "clid": BIGINT, "did": BIGINT, "tip": TEXT, "rs": BIGINT,
    "iduser": BIGINT, "do": TEXT, "is_paid": BOOL, "template_id": BIGINT, "currency_id": BIGINT,
    "currency_code": TEXT, "currency_course_current": RATE, "course_id": BIGINT, "course": RATE,
    "course_datum": TEXT, "_list_fingerprint": TEXT, "details_via": TEXT, **CONTEXT, "_extracted_at": TIMESTAMP,
}

INVOICE_ROW_DELETIONS = {"crid": KEY, "is_deleted": BOOL, "deleted_at": TIMESTAMP, **CONTEXT,
                         "_extracted_at": TIMESTAMP}

DEALS = {
    "did": KEY, "title": TEXT, "clid": BIGINT, "client": TEXT, "payer": BIGINT, "mcid": BIGINT, "iduser": BIGINT,
    "datum": DATE, "kol": MONEY, "close": TEXT, "datum_close": DATE, **CONTEXT,
}

_TYPES = {"bigint": pa.int64(), "text": pa.string(), "bool": pa.bool_(), "date": pa.date32(),
          "timestamp": pa.timestamp("us", tz="UTC")}
# Tables first loaded through dlt's JSON normalizer have its two columns, NOT NULL: rows that come as Arrow
# carry them too, or an upgraded warehouse would refuse them.
DLT_COLUMNS = [pa.field("_dlt_load_id", pa.string(), nullable=False), pa.field("_dlt_id", pa.string(), nullable=False)]


def hints(columns: dict, names: Iterable[str] | None = None) -> dict:
    """dlt column hints of ``columns`` (only ``names`` when given), as fresh dicts."""
    return {name: dict(columns[name]) for name in (columns if names is None else names)}


def arrow_schema(columns: dict, dlt_columns: bool = False) -> pa.Schema:
    fields = []
    for name, hint in columns.items():
        kind = hint["data_type"]
        typ = pa.decimal128(hint["precision"], hint["scale"]) if kind == "decimal" else _TYPES[kind]
        fields.append(pa.field(name, typ, nullable=hint.get("nullable", True)))
    return pa.schema(fields + (DLT_COLUMNS if dlt_columns else []))


def arrow_table(rows: list[dict], schema: pa.Schema, constants: dict | None = None) -> pa.Table:
    """``rows`` as an Arrow table of ``schema``: each column from the rows' values, or from ``constants``
    (one value for every row); dlt's two columns, when the schema has them, as dlt fills them (this
    package's load id, a random row id)."""
    names = [f.name for f in schema if f.name not in (constants or {}) and f.name not in DLT_NAMES]
    return arrow_columns({name: [row.get(name) for row in rows] for name in names}, len(rows), schema, constants)


DLT_NAMES = frozenset(f.name for f in DLT_COLUMNS)


def records_columns(records: list[dict], names: Iterable[str]) -> dict[str, list]:
    """Records (dicts) as columns: name -> the records' values in order."""
    return {name: [rec.get(name) for rec in records] for name in names}


def arrow_columns(columns: dict[str, list], n: int, schema: pa.Schema, constants: dict | None = None) -> pa.Table:
    """:func:`arrow_table` of rows given column by column (``columns``: name -> ``n`` values); a constant
    column is one value repeated (an Arrow constant array, not a list of ``n`` values)."""
    constants = dict(constants or {})
    if "_dlt_id" in schema.names:
        constants["_dlt_load_id"] = dlt.current.load_package_state()["load_id"]
    arrays = []
    for field in schema:
        name = field.name
        if name == "_dlt_id":
            arrays.append(pa.array(generate_dlt_ids(n), type=field.type))
        elif name in constants:
            arrays.append(pa.repeat(pa.scalar(constants[name], type=field.type), n))
        else:
            values = columns[name]
            arrays.append(values if isinstance(values, pa.Array) else pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
