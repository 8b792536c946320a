"""Bitrix24's Arrow tables: the schemas agree with the column hints (dlt warns on every page when they do not),
money keeps its exact decimals, and the tables keep the columns and types the JSON path gave them."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from crm_invoices.sources.arrow import arrow_table
from crm_invoices.sources.bitrix24 import tables
from crm_invoices.sources.bitrix24.client import Bitrix24Client
from crm_invoices.sources.bitrix24.commands import BatchResult, Command
from dlt.common.libs.pyarrow import py_arrow_to_table_schema_columns


@pytest.mark.parametrize("name", sorted(tables.ARROW_TABLES))
def test_arrow_schema_and_column_hints_agree(name):
    from_arrow = py_arrow_to_table_schema_columns(tables.SCHEMAS[name])
    differ = [(col, hint, value, from_arrow[col].get(hint)) for col, hints in tables.hints(name).items()
              for hint, value in hints.items() if hint in from_arrow[col] and from_arrow[col][hint] != value]
    assert differ == []
    assert set(from_arrow) == set(tables.hints(name)) | {"_dlt_load_id", "_dlt_id"}


def test_money_keeps_its_decimals_and_is_never_rounded_in_arrow():
    schema = tables.SCHEMAS["smart_invoice_product_rows"]
    assert schema.field("price").type == pa.decimal128(18, 2)
    assert schema.field("quantity").type.scale == 4 and schema.field("vat_rate_coefficient").type.scale == 6
    assert schema.field("id").nullable is False and schema.field("invoice_id").nullable is False
    assert str(schema.field("_extracted_at").type) == "timestamp[us, tz=UTC]"
    exact = pa.array([Decimal("9999999999999999.99"), Decimal("0.01"), None], type=schema.field("price").type)
    assert exact.to_pylist() == [Decimal("9999999999999999.99"), Decimal("0.01"), None]
    with pytest.raises(pa.ArrowInvalid):  # more places than the column: refused, as on the JSON path
        pa.array([Decimal("0.005")], type=schema.field("price").type)


def test_rows_and_constants_become_columns(monkeypatch):
    monkeypatch.setattr(tables.dlt.current, "load_package_state", lambda: {"load_id": "123.4"})
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = [{"id": 1, "invoice_id": 7, "amount": Decimal("10.50"), "paid": True},
            {"id": 2, "invoice_id": 7, "amount": None, "currency": "RUB"}]
    table = arrow_table(rows, tables.SCHEMAS["smart_invoice_payments"], {"account": "spb", "_extracted_at": at})
    got = table.to_pylist()
    assert [r["amount"] for r in got] == [Decimal("10.50"), None]
    assert [r["currency"] for r in got] == [None, "RUB"] and [r["paid"] for r in got] == [True, None]
    assert {r["account"] for r in got} == {"spb"} and {r["_extracted_at"] for r in got} == {at}
    assert {r["_dlt_load_id"] for r in got} == {"123.4"} and len({r["_dlt_id"] for r in got}) == 2


class _Batches(Bitrix24Client):
    """A client whose batch answers every command with its own key: what pump packs, without a portal."""

    def __init__(self):
        self.sent: list[int] = []

    def batch(self, commands, **_kwargs):
        self.sent.append(len(commands))
        return BatchResult({k: c[1]["n"] for k, c in commands.items()}, {})


def test_pump_fills_every_batch_from_follow_ups_then_the_lazy_commands():
    client = _Batches()
    pending: deque[Command] = deque()
    made = []

    def lazy():
        for n in range(120):
            made.append(n)
            yield Command("m", {"n": n})

    seen = []
    for _command, result, _next in client.pump(pending, frozenset(), lazy()):
        seen.append(result)
        if result == 3:  # a follow-up (the next page) is queued while iterating
            pending.append(Command("m", {"n": 1000}))
        assert len(made) <= len(seen) + 50  # taken as batches go, never all at once
    assert client.sent == [50, 50, 21]
    assert sorted(seen) == sorted([*range(120), 1000])
