"""The same world loaded into DuckDB and into PostgreSQL (``--destination postgres``): every mart equal row by
row, every column, with the same types; then upstream changes and deletions in all three CRMs, an incremental
rerun of both, and the marts equal again. dbt builds and tests the models on both (``run`` is ``dbt build``:
a failing data test fails the run). Then the promises of docs/RELIABILITY.md that concern the warehouse's own
state: a new database under an old working dir, and a wiped working dir against a full database."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime

import duckdb
import pytest
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

from tests.bitrix24_support import FAST_PORTAL
from tests.conftest import Workdir
from tests.reliability_support import FACTS, cli, upstream_changes

from .conftest import create_database, drop_database, dsn_for, pg_query

MARTS = ("fct_invoices", "fct_payments", "fct_invoice_lines", "rpt_ar_aging", "rpt_reconciliation_exceptions",
         "rpt_vat_by_month")
AS_OF = '{"as_of": "2026-11-20"}'
SCHEMAS_SQL = ("select table_schema, table_name from information_schema.tables where table_schema like 'raw\\_%' "
               "escape '\\' or table_schema in ('staging', 'intermediate', 'marts')")
TYPES_SQL = ("select table_name, column_name, data_type, numeric_precision, numeric_scale "
             "from information_schema.columns where table_schema = 'marts'")


def _value(v):
    return v.astimezone(UTC) if isinstance(v, datetime) and v.tzinfo is not None else v


def _rows(rows) -> list[tuple]:
    return sorted((tuple(_value(v) for v in r) for r in rows), key=repr)


class Warehouses:
    """The DuckDB and the PostgreSQL warehouse of one world, loaded from two working folders."""

    def __init__(self, tmp, sandbox: Sandbox, database: str):
        self.sandbox, self.database = sandbox, database
        self.duck = Workdir(tmp / "duck")
        self.pg = Workdir(tmp / "pg")
        for w in (self.duck, self.pg):
            w.path.mkdir(parents=True)
        self.pg_env = {"DESTINATION__POSTGRES__CREDENTIALS": dsn_for(database)}

    def run_duck(self, *args: str):
        return cli(self.duck, self.sandbox, *args)

    def run_pg(self, *args: str, check: bool = True):
        return cli(self.pg, self.sandbox, *args, "--destination", "postgres", env=self.pg_env, check=check)

    def duck_query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.duck.db), read_only=True) as con:
            return con.execute(sql).fetchall()

    def pg_query(self, sql: str) -> list[tuple]:
        return pg_query(self.database, sql)

    def marts(self) -> dict[str, tuple[list[str], list[str], list[tuple], list[tuple]]]:
        """Per mart: DuckDB's and PostgreSQL's column names and rows (every column, sorted)."""
        out = {}
        for mart in MARTS:
            with duckdb.connect(str(self.duck.db), read_only=True) as con:
                cur = con.execute(f"select * from marts.{mart}")
                duck_cols, duck_rows = [d[0] for d in cur.description], _rows(cur.fetchall())
            import psycopg2

            con = psycopg2.connect(dsn_for(self.database))
            try:
                with con.cursor() as cur:
                    cur.execute(f"select * from marts.{mart}")
                    pg_cols, pg_rows = [d[0] for d in cur.description], _rows(cur.fetchall())
            finally:
                con.close()
            out[mart] = (duck_cols, pg_cols, duck_rows, pg_rows)
        return out

    def facts_pg(self) -> dict[str, list[tuple]]:
        return {name: _rows(self.pg_query(sql)) for name, sql in FACTS.items()}

    def facts_duck(self) -> dict[str, list[tuple]]:
        return {name: _rows(self.duck_query(sql)) for name, sql in FACTS.items()}


def assert_marts_equal(marts) -> None:
    """Every mart: the same columns in the same order and the same rows (a multiset: duplicates count)."""
    diffs = []
    for mart, (duck_cols, pg_cols, duck_rows, pg_rows) in marts.items():
        assert pg_cols == duck_cols, mart
        assert len(duck_rows) > 0, mart  # the world has rows in every mart: an empty one proves nothing
        if Counter(pg_rows) != Counter(duck_rows):
            missing = [r for r in duck_rows if r not in set(pg_rows)][:3]
            extra = [r for r in pg_rows if r not in set(duck_rows)][:3]
            diffs.append((mart, len(duck_rows), len(pg_rows), "only in DuckDB:", missing, "only in PostgreSQL:",
                          extra))
    assert diffs == []


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    world = World.generate(seed=2026, invoices={s: 40 for s in ("salesman", "bitrix24", "onlyoffice")},
                           anomalies=True)
    sandbox = Sandbox(world, salesman={"page_size": 7}, bitrix24=dict(FAST_PORTAL)).start()
    database = create_database()
    wh = Warehouses(tmp_path_factory.mktemp("pg_marts"), sandbox, database)
    try:
        wh.first_run = (wh.run_duck("run"), wh.run_pg("run"))
        # `models` with a fixed as_of on both: the aging report no longer depends on the day the test runs
        wh.run_duck("models", "--vars", AS_OF)
        wh.models_run = wh.run_pg("models", "--vars", AS_OF)
        wh.first = wh.marts()
        wh.first_types = (wh.duck_query(TYPES_SQL), wh.pg_query(TYPES_SQL))
        wh.first_schemas = (set(wh.duck_query(SCHEMAS_SQL)), set(wh.pg_query(SCHEMAS_SQL)))
        wh.deleted_upstream = upstream_changes(sandbox)
        wh.rerun = (wh.run_duck("run"), wh.run_pg("run"))
        wh.run_duck("models", "--vars", AS_OF)
        wh.run_pg("models", "--vars", AS_OF)
        wh.second = wh.marts()
        yield wh
    finally:
        sandbox.stop()
        drop_database(database)


def test_the_run_names_the_postgres_warehouse_and_dbt_built_and_tested_everything(loaded):
    _duck, pg = loaded.first_run
    assert f"crm-invoices: PostgreSQL database '{loaded.database}' at 127.0.0.1:" in pg.stdout
    for name in ("salesman", "bitrix24", "onlyoffice"):
        assert any(line.split()[:2] == [name, "ok"] for line in pg.stdout.splitlines()), pg.stdout
    models_line = next(line for line in pg.stdout.splitlines() if line.strip().startswith("models "))
    assert "pass=" in models_line and "error" not in models_line and "fail" not in models_line, models_line
    assert "reconciliation exceptions:" in pg.stdout  # the summary reads the marts from PostgreSQL
    assert loaded.models_run.stdout.startswith("models: ") and "error" not in loaded.models_run.stdout


def test_raw_datasets_and_marts_have_the_same_schema_and_table_names(loaded):
    duck, pg = loaded.first_schemas
    assert {s for s, _t in pg} >= {"raw_salesman", "raw_bitrix24", "raw_onlyoffice", "staging", "intermediate",
                                   "marts"}
    assert pg == duck


def _type(data_type: str, precision, scale) -> str:
    t = data_type.lower()
    if t.startswith(("decimal", "numeric")):
        return f"numeric({precision},{scale})"
    return {"varchar": "text", "character varying": "text"}.get(t, t)


def test_every_mart_column_has_the_same_type(loaded):
    duck, pg = loaded.first_types
    duck_types = {(t, c): _type(d, p, s) for t, c, d, p, s in duck}
    pg_types = {(t, c): _type(d, p, s) for t, c, d, p, s in pg}
    assert pg_types == duck_types
    money = [k for k, v in pg_types.items() if k[1].startswith("amount") and not k[1].endswith("_reporting")]
    assert money and {pg_types[k] for k in money} == {"numeric(18,2)"}
    assert pg_types[("fct_invoices", "amount_gross_reporting")] == "numeric(38,2)"
    assert pg_types[("fct_invoices", "fx_rate_to_reporting")] == "numeric(38,12)"
    assert {pg_types[k] for k in pg_types if k[1].endswith("_date") or k[1] in ("as_of", "month")} == {"date"}
    assert {pg_types[k] for k in pg_types if k[1].startswith("is_")} == {"boolean"}


def test_first_load_every_mart_equal_row_by_row(loaded):
    assert_marts_equal(loaded.first)


def test_incremental_rerun_every_mart_equal_row_by_row(loaded):
    assert_marts_equal(loaded.second)
    assert loaded.second != loaded.first  # the changes upstream reached both


def test_rerun_marks_the_upstream_deletions_in_both(loaded):
    deleted = {k for keys in loaded.deleted_upstream.values() for k in keys}
    pg_deleted = {k for (k,) in loaded.pg_query("select invoice_key from marts.fct_invoices where is_deleted")}
    duck_deleted = {k for (k,) in loaded.duck_query("select invoice_key from marts.fct_invoices where is_deleted")}
    assert deleted <= pg_deleted and pg_deleted == duck_deleted


def test_a_new_database_under_an_old_working_dir_is_loaded_from_scratch(loaded):
    # the database is dropped and created again: the working dir's state describes a warehouse that is gone
    drop_database(loaded.database)
    create_database(loaded.database)
    proc = loaded.run_pg("run")
    for name in ("salesman", "bitrix24", "onlyoffice"):
        assert f"crm_invoices_{name}: local state dropped: the warehouse holds no state" in proc.stderr
    assert loaded.facts_pg() == loaded.facts_duck()


def test_a_wiped_working_dir_is_restored_from_the_database(loaded):
    shutil.rmtree(loaded.pg.data / "pipelines")
    before = loaded.sandbox.count("salesman", "invoice/info")
    proc = loaded.run_pg("run")
    assert "local state dropped" not in proc.stderr
    # dlt restored the SalesMan fingerprints from the database: no invoice is read in detail again
    assert loaded.sandbox.count("salesman", "invoice/info") == before
    assert loaded.facts_pg() == loaded.facts_duck()


def test_the_password_is_in_no_file_and_no_output(loaded):
    # given as DESTINATION__POSTGRES__CREDENTIALS: dlt's state, traces, schemas, dbt's manifest and logs
    password = loaded.pg_env["DESTINATION__POSTGRES__CREDENTIALS"].split("@")[0].rsplit(":", 1)[-1]
    assert len(password) >= 4
    leaks = [p for p, data in loaded.pg.files_bytes().items() if password.encode() in data]
    assert leaks == []
    for proc in (*loaded.first_run, *loaded.rerun, loaded.models_run):
        assert password not in proc.stdout + proc.stderr
