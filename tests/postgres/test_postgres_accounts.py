"""Two Bitrix24 portals side by side on PostgreSQL: the union views (raw_bitrix24_all) are built with explicit,
typed column lists, so the models read both accounts there as on DuckDB; a rerun rebuilds the views under the
staging views that depend on them."""

from __future__ import annotations

from tests.bitrix24_support import FAST_CLIENT, FCT_COLUMNS, PAYMENT_COLUMNS, diff_rows
from tests.conftest import assert_ok
from tests.test_accounts import ACCOUNTS, portals, truth, write_spb_secrets  # noqa: F401 (portals: fixture)

from .conftest import dsn_for, pg_query


def _dicts(database: str, columns: list[str], table: str) -> list[dict]:
    return [dict(zip(columns, row, strict=True))
            for row in pg_query(database, f"select {', '.join(columns)} from marts.{table}")]


def test_two_portals_on_postgres(portals, workdir, database):  # noqa: F811
    main, spb = portals
    write_spb_secrets(workdir, spb["bitrix24"].webhook_url(spb.base_url))
    env = {**FAST_CLIENT, **ACCOUNTS, "DESTINATION__POSTGRES__CREDENTIALS": dsn_for(database)}
    for _ in range(2):  # the second run drops and recreates raw_bitrix24_all beneath dbt's staging views
        assert_ok(workdir.cli("run", "--sources", "bitrix24", "--no-progress", "--destination", "postgres",
                              sandbox=main, env=env))
        want = truth(main, spb)
        assert diff_rows(_dicts(database, FCT_COLUMNS, "fct_invoices"), want["invoices"], "invoice_key",
                         FCT_COLUMNS) == []
        assert diff_rows(_dicts(database, PAYMENT_COLUMNS, "fct_payments"), want["payments"], "payment_key",
                         PAYMENT_COLUMNS) == []
    schemas = {r[0] for r in pg_query(database, "select schema_name from information_schema.schemata")}
    assert {"raw_bitrix24", "raw_bitrix24_spb", "raw_bitrix24_all"} <= schemas
