"""The tables this source writes, each column declared once: the dlt column hints and the Arrow schema of the
rows both come from that declaration, so they cannot disagree (dlt warns on every page when they do).

Every table with many rows goes to dlt as Arrow tables: dlt's Arrow path writes them as they are, where its
row-by-row JSON normalizer measured about a third of a first load's CPU.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..arrow import arrow_schema, arrow_table, hints  # noqa: F401 - the source and tests read them here
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

def records_columns(records: list[dict], names: Iterable[str]) -> dict[str, list]:
    """Records (dicts) as columns: name -> the records' values in order."""
    return {name: [rec.get(name) for rec in records] for name in names}
