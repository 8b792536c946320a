"""The two big tables (``invoices``, ``invoice_lines``), every column declared once: the dlt column hints and
the Arrow schema come from the same declaration, so they cannot disagree (dlt warns on every batch when they
do), and dlt infers nothing.

Both go to dlt as Arrow tables: its row-by-row JSON normalizer took ~20 % of a 20k first load's client CPU
(67k rows through ``_normalize_chunk``/``_coerce_row``), the Arrow path writes the batches as they are.
"""

from __future__ import annotations

import pyarrow as pa

from ..arrow import arrow_schema, arrow_table, hints  # noqa: F401 - the source reads hints here
from ..common import MONEY, PERCENT, QUANTITY, RATE

KEY = {"data_type": "bigint", "nullable": False}
BIGINT, TEXT = {"data_type": "bigint"}, {"data_type": "text"}
DATE, TS, BOOL = {"data_type": "date"}, {"data_type": "timestamp"}, {"data_type": "bool"}  # TS: aware, UTC

# the order of the tables as first loaded through the JSON normalizer (hinted columns first)
INVOICES = {
    "id": KEY, "number": TEXT, "cost": MONEY, "exchange_rate": RATE, "issue_date": DATE, "due_date": DATE,
    "issue_date_raw": TEXT, "due_date_raw": TEXT, "create_on_raw": TEXT, "created_at": TS, "consignee_id": BIGINT,
    "purchase_order_number": TEXT, "terms": TEXT, "description": TEXT,
    "_scan": {"data_type": "bigint", "dedup_sort": "desc"},  # a list read again after a shift wins
    "status_id": BIGINT, "status_title": TEXT, "template_type": BIGINT, "contact_id": BIGINT, "contact_name": TEXT,
    "entity_type": TEXT, "entity_id": BIGINT, "entity_title": TEXT, "language": TEXT, "currency": TEXT,
    "file_id": BIGINT, "created_by_id": TEXT, "created_by_name": TEXT, "_fingerprint": TEXT, "account": TEXT,
    "_extracted_at": TS,
}
LINES = {
    "id": KEY, "invoice_id": KEY, "invoice_item_id": BIGINT, "tax1_id": BIGINT, "tax2_id": BIGINT,
    "description": TEXT, "quantity": QUANTITY, "price": MONEY, "discount": PERCENT, "sort_order": BIGINT,
    "account": TEXT, "_extracted_at": TS,
}
DELETIONS = {"id": KEY, "is_deleted": BOOL, "deleted_at": TS, "account": TEXT,
             "invoice_id": {"data_type": "bigint", "nullable": True}}

# The hints the invoices resource itself carries: dlt copies a resource's hints into every table variant it
# writes (the deletion marks), so they stay the few they always were; the rest of the columns come from the
# Arrow schema, which is derived from the same declarations.
INVOICE_HINTS = ("id", "number", "cost", "exchange_rate", "issue_date", "due_date", "issue_date_raw", "due_date_raw",
                 "create_on_raw", "created_at", "consignee_id", "purchase_order_number", "terms", "description",
                 "_scan")


SCHEMAS = {"invoices": arrow_schema(INVOICES, dlt_columns=True), "invoice_lines": arrow_schema(LINES, dlt_columns=True)}


def batch(table: str, rows: list[dict], constants: dict) -> pa.Table:
    """``rows`` (dicts) as one Arrow table of ``table``'s schema; ``constants`` hold one value for all rows."""
    return arrow_table(rows, SCHEMAS[table], constants)
