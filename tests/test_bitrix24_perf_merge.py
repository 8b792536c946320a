"""Bitrix24's child tables (product rows, payments) merge on their invoice alone, with no primary key (dlt's
delete on both keys was a nested loop in DuckDB: minutes on a 200k rerun). What that must keep: a re-read
invoice's rows replace its old ones, other invoices keep theirs, no row id is ever loaded twice (not even when
offset paging repeats a row), and warehouses loaded while the id was a primary key go on the same way."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import unquote

import dlt
import duckdb
from crm_invoices.sandbox.bitrix24 import render as R
from crm_invoices.sources.arrow import arrow_table
from crm_invoices.sources.bitrix24 import tables

from tests.bitrix24_support import assert_marts_match_truth, run, sandbox_for
from tests.conftest import assert_ok

CHILD_TABLES = ("smart_invoice_product_rows", "legacy_invoice_product_rows", "smart_invoice_payments")


def _doubled(workdir) -> dict[str, int]:
    return {t: workdir.query(f"select count(*) - count(distinct id) from raw_bitrix24.{t}")[0][0]
            for t in CHILD_TABLES}


def _smart_rows(workdir) -> set[tuple[int, int, Decimal]]:
    return set(workdir.query("select id, invoice_id, quantity from raw_bitrix24.smart_invoice_product_rows"))


def _expected_smart_rows(world) -> set[tuple[int, int, Decimal]]:
    return {(r["id"], r["ownerId"], Decimal(str(r["quantity"]))) for i in world.invoices["bitrix24"]
            if i.kind == "smart" and not i.deleted for r in R.smart_product_rows(i)}


def test_a_rerun_replaces_the_rows_of_re_read_invoices_keeps_the_others_and_doubles_none(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 300, seed=11)
    provider, world = sandbox["bitrix24"], sandbox.world
    assert_ok(run(workdir, sandbox, "--skip-models"))
    assert _smart_rows(workdir) == _expected_smart_rows(world)

    live = [i for i in world.invoices["bitrix24"] if not i.deleted and i.kind == "smart"]
    shrunk = next(i for i in live if len(i.lines) >= 2 and R.stage_of(i).split(":")[1] in ("N", "S"))
    shrunk.lines.pop()  # a line removed in the UI, the invoice still open: re-read, its row must go
    grown = next(i for i in live if i is not shrunk and R.stage_of(i).split(":")[1] in ("N", "S"))
    line = grown.lines[0]
    grown.lines.append(R.Line("added in the UI", Decimal("3"), line.unit_price, line.vat_rate, line.vat_included))
    provider.touch(grown)
    assert_ok(run(workdir, sandbox, "--skip-models"))
    assert _smart_rows(workdir) == _expected_smart_rows(world)
    assert _doubled(workdir) == dict.fromkeys(CHILD_TABLES, 0)
    schema = json.loads((workdir.data / "pipelines" / "crm_invoices_bitrix24" / "schemas" / "bitrix24.schema.json")
                        .read_text())
    assert {t: [c for c, col in schema["tables"][t]["columns"].items() if col.get("primary_key")]
            for t in CHILD_TABLES if t in schema["tables"]} == dict.fromkeys(CHILD_TABLES, [])

    # the shrunk invoice's header (its total) moves too, as the CRM would have moved it; then the marts agree
    provider.touch(shrunk)
    assert_ok(run(workdir, sandbox))
    assert _smart_rows(workdir) == _expected_smart_rows(world)
    assert _doubled(workdir) == dict.fromkeys(CHILD_TABLES, 0)
    assert_marts_match_truth(workdir, world)


def test_a_row_that_offset_paging_gives_twice_is_loaded_once(make_sandbox, workdir):
    """A line added to an invoice while its group of 20 is paged shifts the offsets: the second page starts
    with the last row of the first. The row is loaded once, and the next run reads the invoice whole."""
    sandbox = sandbox_for(make_sandbox, 400, seed=5)
    provider, world = sandbox["bitrix24"], sandbox.world
    assert_ok(run(workdir, sandbox, "--skip-models"))
    fired: list[int] = []

    def add_a_line_before_the_second_page(prov, request, n):
        body = unquote(request.body.decode("utf-8", "replace"))
        found = re.search(r"crm\.item\.productrow\.list\?[^&]*?filter\[=ownerType\]=SI&filter\[=ownerId\]\[0\]="
                          r"(\d+)[^\"]*?&start=50\b", body)
        if found and not fired:
            inv = prov.invoice(int(found.group(1)))
            line = inv.lines[0]
            inv.lines.insert(0, R.Line("added while paged", Decimal("2"), line.unit_price, line.vat_rate,
                                       line.vat_included))
            prov.touch(inv)
            fired.append(inv.id)

    provider.faults.on_request = add_a_line_before_the_second_page
    assert_ok(run(workdir, sandbox, "--skip-models"))
    provider.faults.on_request = None
    assert fired, "no product-row group had a second page"
    assert _doubled(workdir) == dict.fromkeys(CHILD_TABLES, 0)
    # the invoice changed: the next run reads its rows again, whole
    assert_ok(run(workdir, sandbox))
    assert _smart_rows(workdir) == _expected_smart_rows(world)
    assert _doubled(workdir) == dict.fromkeys(CHILD_TABLES, 0)
    assert_marts_match_truth(workdir, world)


def test_a_warehouse_loaded_while_the_row_id_was_a_primary_key_merges_by_invoice_from_then_on(tmp_path):
    """The hints of earlier versions (primary key id and merge key invoice_id), then today's: the id stops
    being a primary key, and an invoice read again has exactly its new rows."""
    at = datetime(2026, 12, 1, tzinfo=UTC)
    context = {"account": "portal", "_extracted_at": at}

    def row(row_id: int, invoice_id: int, quantity: str) -> dict:
        return {"id": row_id, "invoice_id": invoice_id, "price": Decimal("10.00"), "quantity": Decimal(quantity)}

    def old_hints(rows):
        table = "smart_invoice_product_rows"
        made = dlt.mark.make_hints(table_name=table, write_disposition="merge", primary_key="id",
                                   merge_key="invoice_id", columns={n: dict(h) for n, h in
                                                                    tables.ARROW_TABLES[table][0].items()})
        return dlt.mark.with_hints(arrow_table(rows, tables.SCHEMAS[table], context), made,
                                   create_table_variant=True)

    def load(make, **resource_hints):
        @dlt.resource(name="smart_invoices", write_disposition="merge", **resource_hints)
        def resource():
            yield make()
        pipeline.run(resource())

    db = tmp_path / "w.duckdb"
    pipeline = dlt.pipeline("b24_hints", destination=dlt.destinations.duckdb(str(db)), dataset_name="raw",
                            pipelines_dir=str(tmp_path / "pipelines"))
    # earlier versions also named the id on the resource, which its table variants inherited
    load(lambda: old_hints([row(101, 1, "1"), row(102, 1, "2"), row(201, 2, "5")]), primary_key="id")
    # invoice 1 read again with one row less, by today's hints
    load(lambda: tables.to_table("smart_invoice_product_rows", [row(101, 1, "7")], context))
    columns = pipeline.default_schema.tables["smart_invoice_product_rows"]["columns"]
    assert not columns["id"].get("primary_key") and columns["invoice_id"].get("merge_key")
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute("select id, invoice_id, quantity from raw.smart_invoice_product_rows order by id").fetchall()
    assert got == [(101, 1, Decimal("7.0000")), (201, 2, Decimal("5.0000"))]
    # invoice 2 read again with a row more: its rows replaced, invoice 1's kept
    load(lambda: tables.to_table("smart_invoice_product_rows", [row(201, 2, "6"), row(202, 2, "1")], context))
    with duckdb.connect(str(db), read_only=True) as con:
        got = con.execute("select id, invoice_id, quantity from raw.smart_invoice_product_rows order by id").fetchall()
    assert got == [(101, 1, Decimal("7.0000")), (201, 2, Decimal("6.0000")), (202, 2, Decimal("1.0000"))]
