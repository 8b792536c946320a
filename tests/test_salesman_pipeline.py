"""SalesMan end to end: the real CLI against the emulator into a real DuckDB file, marts vs the ground truth."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

from crm_invoices.sandbox.salesman import expected_invoices

from tests.conftest import assert_ok

FCT_COLUMNS = ["invoice_key", "source_system", "account", "invoice_number", "deal_id", "client_id", "issue_date",
               "due_date", "paid_date", "status", "currency", "amount_gross", "vat_amount", "amount_net",
               "vat_rate", "amount_paid", "amount_due", "is_deleted"]


def mart_invoices(workdir, source="salesman") -> dict[str, dict]:
    rows = workdir.query_dicts(f"select {', '.join(FCT_COLUMNS)} from marts.fct_invoices "
                               f"where source_system = '{source}'")
    return {r["invoice_key"]: r for r in rows}


def assert_marts_match_truth(workdir, world) -> dict[str, dict]:
    expected = {e["invoice_key"]: e for e in expected_invoices(world)}
    got = mart_invoices(workdir)
    assert sorted(got) == sorted(expected)
    diffs = [(k, c, got[k][c], e[c]) for k, e in expected.items() for c in FCT_COLUMNS if got[k][c] != e[c]]
    assert diffs == []
    return expected


def raw_duplicates(workdir) -> int:
    return workdir.query("select count(*) - count(distinct crid) from raw_salesman.invoice_rows")[0][0]


def test_full_load_matches_truth_and_a_rerun_changes_nothing(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 120}, salesman={"page_size": 7})
    provider, world = sandbox["salesman"], sandbox.world
    rows = len(provider.rows)
    # the generated account holds the cases this test is about
    assert any(r.do == "" for r in provider.rows.values())  # an undone payment
    groups = {}
    for r in provider.rows.values():
        groups.setdefault((r.did, r.invoice), []).append(r)
    assert any(len(g) > 1 for g in groups.values())  # partial payments split rows
    stamps = [r.datum for r in provider.rows.values()]
    assert len(set(stamps)) < len(stamps)  # ties in creation date

    proc = workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox)
    assert_ok(proc)
    expected = assert_marts_match_truth(workdir, world)
    statuses = {e["status"] for e in expected.values()}
    assert {"paid", "partially_paid", "issued"} <= statuses
    # one clean scan: every page once; details in bulk from deal/list (one page of 200 deals), next to the
    # deals resource's own page, instead of one invoice/info per row
    assert sandbox.count("salesman", "invoice/list") == math.ceil(rows / 7)
    assert sandbox.count("salesman", "invoice/info") == 0
    assert sandbox.count("salesman", "deal/list") == 2
    vias = workdir.query("select details_via, count(*) from raw_salesman.invoice_details group by 1")
    assert vias == [("deal/list", rows)]
    gross = workdir.query("select sum(amount_gross) from marts.fct_invoices")[0][0]
    assert gross == sum((e["amount_gross"] for e in expected.values()), Decimal(0))
    assert "fct_invoices (live)" in proc.stdout and "salesman" in proc.stdout

    sandbox.reset_counts()
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    assert sandbox.count("salesman", "invoice/info") == 0  # nothing changed: no detail calls
    assert sandbox.count("salesman", "invoice/list") == math.ceil(rows / 7)
    assert raw_duplicates(workdir) == 0
    assert workdir.query("select count(*) from raw_salesman.invoice_rows")[0][0] == rows
    assert_marts_match_truth(workdir, world)


def test_api_writes_deletes_and_undone_payments_between_runs(make_sandbox, workdir):
    import json

    import requests

    sandbox = make_sandbox(invoices={"salesman": 40}, salesman={"page_size": 9})
    provider, world = sandbox["salesman"], sandbox.world
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))

    def api(method, body):
        headers = {"Content-Type": "application/json", "apikey": provider.account.api_key,
                   "login": next(iter(provider.account.logins))}
        resp = requests.post(f"{sandbox.base_url}/developer/v3/{method}", data=json.dumps(body), headers=headers)
        return resp.json()

    # a user records an invoice as paid with do="yes": declared paid, never booked
    added = api("invoice/add", {"did": 1, "invoice": "Y-1", "summa": 12000, "do": "yes", "date": "2026-10-01"})
    # a new invoice, then a partial payment through the API (splits the row, date lost)
    part = api("invoice/add", {"did": 2, "invoice": "P-1", "summa": 99999.99, "date": "2026-10-02", "rs": 3})
    api("invoice/do", {"id": part["data"]["id"], "summa": 40000})
    api("invoice/express", {"did": 3, "invoice": "E-1", "summa": 500.5, "date": "2026-10-03", "date.do": "2026-10-04"})
    victim = next(inv for inv in world.invoices["salesman"] if not inv.deleted and not inv.payments)
    provider.delete_invoice(victim.id)
    paid_row = next(r for r in provider.rows.values() if r.do == "on" and r.nds > 0 and
                    sum(1 for x in provider.rows.values() if (x.did, x.invoice) == (r.did, r.invoice)) == 1)
    provider.undo_payment(paid_row.crid)

    sandbox.reset_counts()
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    # details only for the rows that are new or changed: Y-1, P-1 (both rows), E-1, the undone row; few
    # enough for one invoice/info each
    assert sandbox.count("salesman", "invoice/info") == 5
    assert sandbox.count("salesman", "deal/list") == 1  # the deals resource only
    expected = assert_marts_match_truth(workdir, world)

    assert added["data"]["invoice"] == "Y-1"
    key = "salesman:sandbox:1:Y-1"
    assert (expected[key]["status"], expected[key]["amount_paid"]) == ("issued", Decimal("0.00"))
    flagged = workdir.query("select is_declared_paid from intermediate.int_invoices where invoice_key = ?", [key])
    assert flagged == [(True,)]
    p1 = mart_invoices(workdir)["salesman:sandbox:2:P-1"]
    assert (p1["status"], p1["amount_paid"], p1["amount_due"], p1["paid_date"]) == (
        "partially_paid", Decimal("40000.00"), Decimal("59999.99"), None)
    assert p1["vat_amount"] == Decimal("18032.79") and p1["vat_rate"] == Decimal("22")
    deleted_key = f"salesman:sandbox:{victim.deal_id}:{victim.number}"
    assert mart_invoices(workdir)[deleted_key]["is_deleted"] is True
    assert workdir.query("select count(*) from marts.fct_payments where invoice_key = ?",
                         ["salesman:sandbox:2:P-1"]) == [(1,)]
    assert raw_duplicates(workdir) == 0


def test_ties_reordered_on_every_request_still_load_every_row(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 60}, salesman={"page_size": 5, "tie_order": "shuffle"}, seed=11)
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    assert_marts_match_truth(workdir, sandbox.world)
    rows = len(sandbox["salesman"].rows)
    assert workdir.query("select count(distinct crid) from raw_salesman.invoice_rows") == [(rows,)]
    assert raw_duplicates(workdir) == 0


def test_rows_inserted_and_deleted_while_paging(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 50}, salesman={"page_size": 6}, seed=5)
    provider, world = sandbox["salesman"], sandbox.world
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", "--skip-models", sandbox=sandbox))
    fired = []

    def change_mid_scan(prov, request, n):
        # on the 3rd list page of the second run: a payment splits a row (a remainder row appears in the
        # middle of the creation-date order) and an invoice is deleted
        if prov.method_key(request) == "invoice/list" and not fired and n >= 3:
            fired.append(n)
            row = next(r for r in prov.rows.values() if r.do == "no" and r.summa > 100)
            prov._do({"id": row.crid, "summa": str(row.summa / 2)})
            victim = next(i for i in world.invoices["salesman"] if not i.deleted and not i.payments)
            prov.delete_invoice(victim.id)

    provider.faults.on_request = change_mid_scan
    sandbox.reset_counts()
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    assert fired
    assert_marts_match_truth(workdir, world)
    live = {c for c in provider.rows}
    loaded = {c for (c,) in workdir.query(
        "select crid from staging.stg_salesman__invoice_rows where not is_deleted")}
    assert loaded == live


def test_a_row_created_and_deleted_during_the_run_is_not_left_live(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 20}, salesman={"page_size": 4}, seed=9)
    provider, world = sandbox["salesman"], sandbox.world
    events = []

    def create_then_delete(prov, request, n):
        if prov.method_key(request) != "invoice/list":
            return
        if not events and n == 2:  # during the first scan: a new invoice (lands on the last page)
            prov._add({"did": 5, "invoice": "TMP-1", "summa": "10.00", "date": "2026-11-19"}, express=False)
            events.append("created")
        elif events == ["created"] and b'"offset": 1,' in request.body and n > 2:  # next scan: gone again
            tmp = next(i for i in world.invoices["salesman"] if i.number == "TMP-1")
            prov.delete_invoice(tmp.id)
            events.append("deleted")

    provider.faults.on_request = create_then_delete
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    assert events == ["created", "deleted"]
    got = mart_invoices(workdir)
    tmp = got.pop("salesman:sandbox:5:TMP-1")
    # it was listed but gone before its details could be read: kept as deleted, with what the list said
    assert (tmp["is_deleted"], tmp["amount_gross"], tmp["vat_rate"]) == (True, Decimal("10.00"), None)
    expected = {e["invoice_key"]: e for e in expected_invoices(world) if e["invoice_number"] != "TMP-1"}
    assert {k: [g[c] for c in FCT_COLUMNS] for k, g in got.items()} == {
        k: [e[c] for c in FCT_COLUMNS] for k, e in expected.items()}


def test_list_times_in_the_database_servers_zone(make_sandbox, workdir):
    # invoice/list renders date_create in the MySQL server's zone (here UTC), not the account's (+05:00):
    # with SOURCES__SALESMAN__DB_TIMEZONE set, created_at and the business dates stay right
    sandbox = make_sandbox(invoices={"salesman": 30}, salesman={"db_timezone": "UTC"}, seed=3)
    provider, world = sandbox["salesman"], sandbox.world
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox,
                          env={"SOURCES__SALESMAN__DB_TIMEZONE": "UTC"}))
    assert_marts_match_truth(workdir, world)
    got = dict(workdir.query("select crid, created_at from staging.stg_salesman__invoice_rows"))
    assert all(got[c] == r.datum for c, r in provider.rows.items())


def test_list_times_in_the_database_servers_zone_are_wrong_without_the_setting(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 30}, salesman={"db_timezone": "UTC"}, seed=3)
    provider = sandbox["salesman"]
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", "--skip-models", sandbox=sandbox))
    got = dict(workdir.query("select crid, created_at from raw_salesman.invoice_rows"))
    # read as account wall time, every timestamp is off by the 5 hours between the zones
    assert {r.datum - got[c] for c, r in provider.rows.items()} == {timedelta(hours=5)}
