"""SalesMan's tables and settings: the Arrow schemas agree with the column hints (no dlt warning on every page),
wall times turn into UTC as pendulum would (without a zone object per row), credentials come from the flat
``sources.salesman`` settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pendulum
import pytest
from crm_invoices.sources.salesman import tables
from crm_invoices.sources.salesman.client import SalesmanCredentials
from crm_invoices.sources.salesman.helpers import deal_record, parse_local_datetime
from dlt.common.configuration import resolve_configuration
from dlt.common.libs.pyarrow import py_arrow_to_table_schema_columns

TABLES = {"invoice_rows": tables.INVOICE_ROWS, "invoice_details": tables.INVOICE_DETAILS,
          "invoice_row_deletions": tables.INVOICE_ROW_DELETIONS, "deals": tables.DEALS}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_arrow_schema_and_column_hints_agree(name):
    columns = TABLES[name]
    from_arrow = py_arrow_to_table_schema_columns(tables.arrow_schema(columns))
    # what dlt compares before it warns "several column hints were different"
    differ = [(col, hint, value, from_arrow[col].get(hint)) for col, hints in tables.hints(columns).items()
              for hint, value in hints.items() if hint in from_arrow[col] and from_arrow[col][hint] != value]
    assert differ == []
    assert set(from_arrow) == set(columns)


def test_money_and_rates_keep_their_decimals_in_arrow():
    schema = tables.arrow_schema(tables.INVOICE_DETAILS)
    assert schema.field("summa").type.scale == 2 and schema.field("nds").type.scale == 2
    assert schema.field("course").type.scale == tables.RATE["scale"]
    assert schema.field("crid").nullable is False
    assert str(schema.field("_extracted_at").type) == "timestamp[us, tz=UTC]"


def test_deal_rows_become_an_exact_arrow_table():
    deal = {"did": 2, "title": "СД3", "clid": "1", "clientTitle": "Ромашка, ООО", "payer": 1, "mcid": 1, "iduser": 1,
            "datum": "2026-11-23", "kol": Decimal("150000.5"), "close": "yes", "datum_close": "2026-11-23"}
    table = tables.arrow_table([deal_record(deal)], tables.arrow_schema(tables.DEALS),
                               {"account": "a", "currency": "RUB", "timezone": "UTC"})
    row = table.to_pylist()[0]
    assert row["kol"] == Decimal("150000.50") and row["clid"] == 1 and row["client"] == "Ромашка, ООО"
    assert row["account"] == "a" and str(row["datum_close"]) == "2026-11-23"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
                                  "Europe/Moscow", "Asia/Yekaterinburg"])
def test_wall_times_become_utc_as_pendulum_reads_them(zone):
    # every quarter hour of two years, the clock changes included (times that occur twice or never)
    mismatches = []
    for year in (2010, 2026):
        start = datetime(year, 1, 1)
        for step in range(0, 366 * 24 * 4, 3):
            text = (start + timedelta(minutes=15 * step)).strftime("%Y-%m-%d %H:%M:%S")
            expected = pendulum.parse(text, tz=zone, strict=False).in_timezone("UTC")
            got = parse_local_datetime(text, zone)
            if got != expected or got.utcoffset() != timedelta(0):
                mismatches.append((text, got, expected))
    assert mismatches == []


def test_other_shapes_of_a_time_still_parse():
    assert parse_local_datetime("2026-08-12T11:57:00+03:00", "Asia/Yekaterinburg") == datetime(2026, 8, 12, 8, 57,
                                                                                             tzinfo=UTC)
    assert parse_local_datetime("2026-08-12", "UTC") == datetime(2026, 8, 12, tzinfo=UTC)


def test_credentials_come_from_the_flat_source_settings(monkeypatch):
    monkeypatch.setenv("SOURCES__SALESMAN__BASE_URL", "https://crm.example.ru")
    monkeypatch.setenv("SOURCES__SALESMAN__LOGIN", "api@example.ru")
    monkeypatch.setenv("SOURCES__SALESMAN__API_KEY", "k-123")
    creds = resolve_configuration(SalesmanCredentials(), sections=("sources", "salesman"))
    assert (creds.base_url, creds.login, creds.api_key) == ("https://crm.example.ru", "api@example.ru", "k-123")


def test_a_missing_key_names_the_setting(monkeypatch):
    monkeypatch.setenv("SOURCES__SALESMAN__BASE_URL", "https://crm.example.ru")
    monkeypatch.setenv("SOURCES__SALESMAN__LOGIN", "api@example.ru")
    monkeypatch.delenv("SOURCES__SALESMAN__API_KEY", raising=False)
    with pytest.raises(Exception) as err:
        resolve_configuration(SalesmanCredentials(), sections=("sources", "salesman"))
    assert "SOURCES__SALESMAN__API_KEY" in str(err.value)  # dlt names each place it looked
