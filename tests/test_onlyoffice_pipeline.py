"""ONLYOFFICE end to end: the real CLI against the emulator into a real DuckDB file, marts vs the ground truth.

Every run loads a small SalesMan account alongside: the spine's dbt tests on the SalesMan *sources* fail when
its raw tables do not exist, which would fail the model build of an ONLYOFFICE-only run (reported upstream).
"""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import requests
from crm_invoices.sandbox.onlyoffice import expected_invoices, expected_lines, expected_payments
from crm_invoices.sandbox.onlyoffice.ledger import NON_VAT_TAX, PAID, REJECTED, SENT, state

from tests.conftest import assert_ok

FCT_COLUMNS = ["invoice_key", "source_system", "account", "source_invoice_id", "invoice_number", "deal_id",
               "client_id", "issue_date", "due_date", "paid_date", "status", "currency", "amount_gross",
               "vat_amount", "amount_net", "vat_rate", "amount_paid", "amount_due", "is_deleted",
               "fx_rate_to_reporting", "amount_gross_reporting"]
LINE_COLUMNS = ["invoice_key", "line_number", "product_name", "quantity", "unit_price", "vat_rate", "vat_amount",
                "amount_net", "amount_gross"]
SOURCES = ("--sources", "salesman,onlyoffice", "--no-progress")


def sandbox_with(make_sandbox, n: int, seed: int = 7, **options):
    return make_sandbox(invoices={"onlyoffice": n, "salesman": 3}, seed=seed, onlyoffice=options)


def assert_marts_match_truth(workdir, sandbox) -> dict[str, dict]:
    provider, world = sandbox["onlyoffice"], sandbox.world
    expected = {e["invoice_key"]: e for e in expected_invoices(world, taxes=provider.taxes)}
    got = {r["invoice_key"]: r for r in workdir.query_dicts(
        f"select {', '.join(FCT_COLUMNS)} from marts.fct_invoices where source_system = 'onlyoffice'")}
    assert sorted(got) == sorted(expected)
    assert [(k, c, got[k][c], e[c]) for k, e in expected.items() for c in FCT_COLUMNS if got[k][c] != e[c]] == []
    lines = {(r["invoice_key"], r["line_number"]): r for r in workdir.query_dicts(
        f"select {', '.join(LINE_COLUMNS)} from marts.fct_invoice_lines where source_system = 'onlyoffice'")}
    want = {(e["invoice_key"], e["line_number"]): e for e in expected_lines(world, taxes=provider.taxes)}
    assert sorted(lines) == sorted(want)
    assert [(k, c, lines[k][c], e[c]) for k, e in want.items() for c in LINE_COLUMNS if lines[k][c] != e[c]] == []
    payments = workdir.query_dicts("select payment_key, invoice_key, paid_date, amount, currency from "
                                   "marts.fct_payments where source_system = 'onlyoffice' order by payment_key")
    assert payments == sorted(expected_payments(world, taxes=provider.taxes), key=lambda p: p["payment_key"])
    return expected


def test_full_load_matches_truth_to_the_kopeck_and_a_rerun_fetches_no_unchanged_details(make_sandbox, workdir):
    # more than one page at the maximum page size, a portal zone with summer time
    sandbox = sandbox_with(make_sandbox, 1010, timezone="Europe/Berlin")
    _provider, world = sandbox["onlyoffice"], sandbox.world
    invoices = world.invoices["onlyoffice"]
    statuses = Counter(state(i).status for i in invoices)
    assert set(statuses) == {1, 2, 3, 4, 5}
    assert {i.currency for i in invoices} == {"RUB", "USD", "EUR", "CNY"}
    assert any(ol.tax1 and ol.tax2 for i in invoices for ol in state(i).lines)  # two taxes on a line

    proc = workdir.cli("run", *SOURCES, sandbox=sandbox)
    assert_ok(proc)
    expected = assert_marts_match_truth(workdir, sandbox)
    assert {e["status"] for e in expected.values()} == {"draft", "issued", "paid", "cancelled"}
    assert {e["vat_rate"] for e in expected.values()} >= {Decimal("20.00"), Decimal("22.00"), None}
    # rounding edge cases: half-up would differ by a kopeck on these lines
    edge = workdir.query("select amount_gross, vat_amount from marts.fct_invoice_lines "
                         "where product_name = 'Консультация, полчаса'")
    assert (Decimal("5.50"), Decimal("0.50")) in edge  # 0.5 x 10.01 = 5.005 -> 5.00 (half-up: 5.01, VAT 0.50)
    # requests = the lower bound: one login, list pages until a short one, every invoice's details once, and
    # one call each for taxes, the catalog, the default currency and the rates
    pages = math.ceil(1010 / 999)
    assert sandbox.count("onlyoffice", "POST authentication") == 1
    assert sandbox.count("onlyoffice", "invoice/filter") == pages
    assert sandbox.count("onlyoffice", "invoice/{id}") == 1010
    assert sandbox.count("onlyoffice") == 1 + pages + 1010 + 4
    gross = workdir.query("select sum(amount_gross), sum(amount_gross_reporting) from marts.fct_invoices "
                          "where source_system = 'onlyoffice'")[0]
    assert gross == (sum((e["amount_gross"] for e in expected.values()), Decimal(0)),
                     sum((e["amount_gross_reporting"] for e in expected.values()), Decimal(0)))

    sandbox.reset_counts()
    assert_ok(workdir.cli("run", *SOURCES, sandbox=sandbox))
    # drafts are the only editable invoices, and an edit of their lines need not show in the list row
    assert sandbox.count("onlyoffice", "invoice/{id}") == statuses[1]
    assert workdir.query("select count(*) - count(distinct id) from raw_onlyoffice.invoices") == [(0,)]
    assert workdir.query("select count(*) - count(distinct id) from raw_onlyoffice.invoice_lines") == [(0,)]
    assert workdir.query("select count(distinct snapshot_date), count(*) from raw_onlyoffice.taxes") == [(1, 5)]
    assert_marts_match_truth(workdir, sandbox)


def test_api_writes_tax_edits_and_deletes_between_runs(make_sandbox, workdir):
    sandbox = sandbox_with(make_sandbox, 60, seed=3)
    provider, world = sandbox["onlyoffice"], sandbox.world
    small_pages = {"SOURCES__ONLYOFFICE__PAGE_SIZE": "25"}
    assert_ok(workdir.cli("run", *SOURCES, sandbox=sandbox, env=small_pages))
    assert_marts_match_truth(workdir, sandbox)

    api = f"{sandbox.base_url}/api/2.0/crm/"
    headers = {"Authorization": provider.portal.token}
    new = requests.post(api + "invoice.json", headers=headers, json={
        "number": "INV-NEW-1", "issueDate": "2026-11-03T00:00:00", "dueDate": "2026-11-30T00:00:00",
        "contactId": 5, "currency": "usd", "exchangeRate": 92.5, "terms": "Net 30", "invoiceLines": [
            {"invoiceItemID": 1, "invoiceTax1ID": 2, "invoiceTax2ID": NON_VAT_TAX, "quantity": 3, "price": 16.35,
             "discount": 12.5},
            {"invoiceItemID": 7, "invoiceTax1ID": 0, "quantity": 0.5, "price": 30.03}]}).json()["response"]
    live = [i for i in world.invoices["onlyoffice"] if not i.deleted]
    sent = [i for i in live if state(i).status == SENT]
    paid = next(i for i in live if state(i).status == PAID)
    rejected = next(i for i in live if state(i).status == REJECTED)
    put = lambda status, ids: requests.put(f"{api}invoice/status/{status}", headers=headers,  # noqa: E731
                                           json={"invoiceids": ids}).raise_for_status()
    put(2, [new["id"]])
    put(4, [new["id"], sent[0].id + 4000])  # pay the new invoice and an old one
    put(4, [rejected.id + 4000])  # Rejected -> Paid is not allowed: silently ignored
    put(2, [paid.id + 4000])  # Paid -> Sent ("Bug 23450")
    requests.delete(f"{api}invoice/{sent[1].id + 4000}", headers=headers).raise_for_status()
    provider.delete_invoice(sent[2].id)
    # a tax rate edit changes the cost of every invoice using it, paid ones included, retroactively
    requests.put(f"{api}invoice/tax/3", headers=headers, json={"rate": 12}).raise_for_status()
    uses_tax3 = {i.id for i in live if any(3 in (ol.tax1, ol.tax2) for ol in state(i).lines)}
    assert uses_tax3

    lists = []

    def delete_during_scan(prov, request, n):  # before the 2nd list page, a row already read goes away
        if prov.method_key(request) == "invoice/filter":
            lists.append(n)
            if len(lists) == 2:
                prov.delete_invoice(sent[3].id)

    provider.faults.on_request = delete_during_scan
    sandbox.reset_counts()
    proc = workdir.cli("run", *SOURCES, sandbox=sandbox, env=small_pages)
    assert_ok(proc)
    # the offsets shifted under the reader: the overlap row did not match, and the list was read again
    assert "ONLYOFFICE: invoice/filter changed while it was read (attempt 1); reading it again" in proc.stderr
    assert len(lists) == 2 + math.ceil(61 / 24)
    expected = assert_marts_match_truth(workdir, sandbox)
    changed = {new["id"] - 4000, sent[0].id, paid.id} | uses_tax3
    drafts = {i.id for i in live if state(i).status == 1}
    assert sandbox.count("onlyoffice", "invoice/{id}") == len((changed | drafts) - {i.id for i in sent[1:4]})
    got = expected[f"onlyoffice:sandbox:{new['id']}"]
    # 3 x 16.35 = 49.05 - 12.5 % (6.13125 -> 6.13) = 42.92; VAT 22 % 9.4424 -> 9.44; levy 2 % 0.8584 -> 0.86;
    # 0.5 x 30.03 = 15.015 -> 15.02 without VAT: 42.92 + 9.44 + 0.86 + 15.02 = 68.24
    assert (got["amount_gross"], got["vat_amount"], got["status"], got["vat_rate"]) == (
        Decimal("68.24"), Decimal("9.44"), "paid", None)
    assert got["amount_gross_reporting"] == Decimal("6312.20")  # 68.24 x 92.50
    assert expected[f"onlyoffice:sandbox:{rejected.id + 4000}"]["status"] == "cancelled"
    assert expected[f"onlyoffice:sandbox:{paid.id + 4000}"]["status"] == "issued"
    deleted = [f"onlyoffice:sandbox:{i.id + 4000}" for i in sent[1:4]]
    assert workdir.query("select count(*) from marts.fct_invoices where is_deleted and invoice_key in (?, ?, ?)",
                         deleted) == [(3,)]


def test_token_auth_an_old_server_small_pages_and_throttling(make_sandbox, workdir):
    sandbox = sandbox_with(make_sandbox, 130, seed=11, version="12.5.2")
    provider, world = sandbox["onlyoffice"], sandbox.world
    seen = []

    # a number that sorts first as a string but has the highest id: number order is not id order
    requests.post(f"{sandbox.base_url}/api/2.0/crm/invoice", headers={"Authorization": provider.portal.token}, json={
        "number": "0001-A", "issueDate": "2026-11-03", "dueDate": "2026-11-13", "contactId": 2, "currency": "RUB",
        "invoiceLines": [{"invoiceTax1ID": 2, "quantity": 1, "price": 100}]}).raise_for_status()
    provider.faults.on_request = lambda prov, request, n: prov.method_key(request) == "invoice/filter" and \
        seen.append(request.query.get("sortBy", [""])[0])
    provider.portal.throttle_next = 1  # the cloud's rate limit: 503 with Retry-After on the first request
    env = {"SOURCES__ONLYOFFICE__TOKEN": provider.portal.token, "SOURCES__ONLYOFFICE__USERNAME": "",
           "SOURCES__ONLYOFFICE__PASSWORD": "", "SOURCES__ONLYOFFICE__PAGE_SIZE": "40"}
    proc = workdir.cli("run", *SOURCES, sandbox=sandbox, env=env)
    assert_ok(proc)
    assert provider.portal.throttle_next == 0  # the 503 with Retry-After was retried
    assert sandbox.count("onlyoffice", "POST authentication") == 0  # the configured token was used as is
    # 12.5 ignores sortBy=id; the source noticed and read the stable number order instead
    switch = seen.index("number")
    assert set(seen[:switch]) == {"id"} and set(seen[switch:]) == {"number"}
    assert len(seen[switch:]) == math.ceil(131 / 39)
    assert "ONLYOFFICE: the portal ignores sortBy=id (a version before 12.7); using sortBy=number" in proc.stderr
    live = {str(i.id + 4000) for i in world.invoices["onlyoffice"] if not i.deleted}
    loaded = {k for (k,) in workdir.query("select source_invoice_id from marts.fct_invoices "
                                          "where source_system = 'onlyoffice' and not is_deleted")}
    assert loaded == live
    assert_marts_match_truth(workdir, sandbox)


def test_a_revoked_token_is_renewed_once_with_username_and_password(make_sandbox, workdir):
    sandbox = sandbox_with(make_sandbox, 30, seed=5)
    provider = sandbox["onlyoffice"]

    def revoke_once(prov, request, n):
        if prov.method_key(request) == "invoice/{id}" and prov.faults.on_request is not None:
            prov.faults.on_request = None
            prov.revoke_tokens()  # "log out of all sessions" in the middle of the run

    provider.faults.on_request = revoke_once
    assert_ok(workdir.cli("run", *SOURCES, "--skip-models", sandbox=sandbox))
    assert sandbox.count("onlyoffice", "POST authentication") == 2
    assert workdir.query("select count(distinct invoice_id) from raw_onlyoffice.invoice_lines") == [(30,)]
