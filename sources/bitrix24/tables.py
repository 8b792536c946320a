"""The tables with many rows (invoices, their product rows and payments), each column declared once: the dlt
column hints and the Arrow schema both come from that declaration, so they cannot disagree (dlt warns on every
page when they do). Those tables go to dlt as Arrow tables: dlt writes them as they are, where its row-by-row
JSON normalizer was a third of a first load's CPU (profile of a 5k load). The columns and their order are the
ones the JSON path gave these tables (hinted columns, then the inferred ones, then dlt's two), so warehouses
loaded before keep their tables.

The small tables (dictionaries, companies, deletion marks) stay rows: Arrow would save nothing there.
"""

from __future__ import annotations

import dlt

from ..arrow import arrow_schema, arrow_table
from ..arrow import hints as column_hints
from ..common import MONEY, PERCENT, QUANTITY

KEY = {"data_type": "bigint", "nullable": False}
PARENT = {"data_type": "bigint", "nullable": False}  # a merge key: dlt keeps it NOT NULL
BIGINT = {"data_type": "bigint"}
TEXT = {"data_type": "text"}
BOOL = {"data_type": "bool"}
DATE = {"data_type": "date"}
TIMESTAMP = {"data_type": "timestamp"}  # aware, UTC
CONTEXT = {"account": TEXT, "_extracted_at": TIMESTAMP}
COEFFICIENT = {"data_type": "decimal", "precision": 9, "scale": 6}

INVOICE_COMMON = {"id": KEY, "account_number": TEXT, "created_at": TIMESTAMP, "updated_at": TIMESTAMP}
SMART_INVOICES = {
    **INVOICE_COMMON, "opportunity": MONEY, "tax_value": MONEY, "begindate": DATE, "closedate": DATE,
    "moved_at": TIMESTAMP, "stage_id": TEXT, "previous_stage_id": TEXT, "title": TEXT, "category_id": BIGINT,
    "currency_id": TEXT, "company_id": BIGINT, "mycompany_id": BIGINT, "deal_id": BIGINT,
    "is_manual_opportunity": BOOL, **CONTEXT,
}
LEGACY_INVOICES = {
    **INVOICE_COMMON, "price": MONEY, "tax_value": MONEY, "date_bill": DATE, "date_pay_before": DATE,
    "pay_voucher_date": DATE, "pay_voucher_num": TEXT, "paid_date": DATE, "status_changed_at": TIMESTAMP,
    "paid_at": TIMESTAMP, "recurring_template_id": BIGINT, "order_topic": TEXT, "status_id": TEXT, "payed": BOOL,
    "currency": TEXT, "is_recurring": BOOL, "company_id": BIGINT, "deal_id": BIGINT, "pay_system_id": BIGINT,
    **CONTEXT,
}
# both product-row tables carry every amount column (legacy rows leave the smart-only ones empty, and back)
ROW_AMOUNTS = {
    "id": KEY, "invoice_id": PARENT, "price": MONEY, "price_exclusive": MONEY, "price_netto": MONEY,
    "price_brutto": MONEY, "discount_sum": MONEY, "discount_rate": PERCENT, "discount_price": MONEY,
    "quantity": QUANTITY, "tax_rate": PERCENT, "vat_rate_coefficient": COEFFICIENT, "unit_price": MONEY,
    "amount_net": MONEY, "vat_amount": MONEY, "amount_gross": MONEY, "product_name": TEXT,
}
SMART_PRODUCT_ROWS = {**ROW_AMOUNTS, "owner_type": TEXT, "sort": BIGINT, "product_id": BIGINT,
                      "discount_type_id": BIGINT, "tax_included": BOOL, "measure_name": TEXT, **CONTEXT}
LEGACY_PRODUCT_ROWS = {**ROW_AMOUNTS, "sort": BIGINT, "product_id": BIGINT, "tax_included": BOOL,
                       "measure_name": TEXT, **CONTEXT}
SMART_PAYMENTS = {"id": KEY, "invoice_id": PARENT, "amount": MONEY, "paid_at": TIMESTAMP, "paid_date": DATE,
                  "account_number": TEXT, "paid": BOOL, "currency": TEXT, "pay_system_id": BIGINT,
                  "pay_system_name": TEXT, **CONTEXT}

# table -> (columns, merge key). Child rows merge on their parent: re-reading an invoice's rows replaces
# them all, so a row removed in the CRM disappears here too. They merge on the parent alone, with no primary
# key: dlt deletes the rows it replaces with ``EXISTS (... d.id = s.id OR d.invoice_id = s.invoice_id)`` when
# a table has both, a join DuckDB can only run as a nested loop (rows kept x rows read: 30x the CPU for 10x
# the invoices on an unchanged rerun, minutes at 200k); on the parent alone it is a hash join. A row's id is
# still unique: the source reads each invoice's rows once per run and drops the repeats offset paging can
# give (smart product rows), so nothing needs dlt's dedupe on the id.
ARROW_TABLES = {
    "smart_invoices": (SMART_INVOICES, None),
    "legacy_invoices": (LEGACY_INVOICES, None),
    "smart_invoice_product_rows": (SMART_PRODUCT_ROWS, "invoice_id"),
    "legacy_invoice_product_rows": (LEGACY_PRODUCT_ROWS, "invoice_id"),
    "smart_invoice_payments": (SMART_PAYMENTS, "invoice_id"),
}
SCHEMAS = {table: arrow_schema(columns, dlt_columns=True) for table, (columns, _) in ARROW_TABLES.items()}


def hints(table: str) -> dict:
    """dlt column hints of one table, as fresh dicts. A child table's id says outright that it is no primary
    key: warehouses loaded before kept it as one, and a hint left out would not take it away."""
    columns, merge_key = ARROW_TABLES[table]
    out = column_hints(columns)
    if merge_key:
        out["id"]["primary_key"] = False
    return out


def to_table(table: str, rows: list[dict], constants: dict) -> object:
    """Rows for one table as an Arrow table with that table's own hints (a table variant: hints given to the
    resource itself would be copied into every table it writes). ``constants``: one value for every row."""
    _columns, merge_key = ARROW_TABLES[table]
    made = dlt.mark.make_hints(table_name=table, write_disposition="merge",
                               primary_key=None if merge_key else "id", merge_key=merge_key, columns=hints(table))
    return dlt.mark.with_hints(arrow_table(rows, SCHEMAS[table], constants), made, create_table_variant=True)
