"""Bitrix24 end to end: the real CLI against the emulated portal into a real DuckDB file, marts vs the truth."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

from crm_invoices.sandbox.bitrix24 import render as R

from tests.bitrix24_support import assert_marts_match_truth, run, sandbox_for
from tests.conftest import assert_ok


def test_full_export_of_both_kinds_matches_truth_at_the_request_lower_bound(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 800)
    provider, world = sandbox["bitrix24"], sandbox.world
    kinds = [i.kind for i in world.invoices["bitrix24"]]
    smart, legacy = kinds.count("smart"), kinds.count("legacy") + kinds.count("template")
    assert smart > 10 * 50 and kinds.count("template") >= 3  # more than 10 pages; templates exist
    stages = {R.stage_of(i) for i in world.invoices["bitrix24"]}
    assert "DT31_5:UC_PAID1" in stages  # a custom success stage that is not ":P"

    assert_ok(run(workdir, sandbox))
    expected = assert_marts_match_truth(workdir, world)
    assert {"paid", "partially_paid", "issued", "draft", "cancelled"} <= {e["status"] for e in expected}
    assert {e["invoice_key"].split(":")[2] for e in expected} == {"SI", "I"}
    assert workdir.query("select count(*) from marts.fct_invoices where source_system = 'bitrix24'") == [
        (len(world.invoices["bitrix24"]) - kinds.count("template"),)]
    # the export by id chains 50 pages per batch: one HTTP request per 2,500 invoices of each kind
    assert provider.subcalls["crm.item.list"] >= math.ceil(smart / 50)
    exports = sandbox.count("bitrix24", "batch")
    per_invoice = math.ceil(smart / 50) + math.ceil(legacy / 50)  # payments, crm.invoice.get (50 per batch)
    rows = math.ceil(math.ceil(smart / 20) / 50)  # product rows of 20 invoices per command
    assert exports <= math.ceil(smart / 2500) + math.ceil(legacy / 2500) + per_invoice + rows + 1 + 2
    assert provider.rate_limited == 0
    gross = workdir.query("select sum(amount_gross) from marts.fct_invoices where source_system = 'bitrix24'")
    assert gross[0][0] == sum((e["amount_gross"] for e in expected), Decimal(0))

    # nothing changed: the incremental read returns only the overlap window, no duplicates anywhere
    sandbox.reset_counts()
    assert_ok(run(workdir, sandbox, "--skip-models"))
    assert workdir.query("select count(*) - count(distinct id) from raw_bitrix24.smart_invoices") == [(0,)]
    assert workdir.query("select count(*) - count(distinct id) from raw_bitrix24.smart_invoice_product_rows") == [(0,)]
    # stages, currency, templates, two id-window reads, product rows and payments of the open invoices,
    # crm.invoice.get of the open legacy ones, two id sweeps: a handful of requests, not one per invoice
    open_smart = sum(1 for i in world.invoices["bitrix24"] if i.kind == "smart" and R.stage_of(i).split(":")[1]
                     in ("N", "S"))
    assert sandbox.count("bitrix24") <= 9 + 2 * math.ceil(open_smart / 50) + math.ceil(legacy / 50)
    # payments are re-read for the open invoices and for those inside the 5-minute overlap window
    smart_invoices = [i for i in world.invoices["bitrix24"] if i.kind == "smart"]
    latest = max(i.updated_at for i in smart_invoices)
    recent = {i.id for i in smart_invoices if i.updated_at >= latest - timedelta(seconds=300)}
    opened = {i.id for i in smart_invoices if R.stage_of(i).split(":")[1] in ("N", "S")}
    assert provider.subcalls["crm.item.payment.list"] == smart + len(recent | opened)


def test_changes_payments_exposes_and_deletes_between_runs(make_sandbox, workdir):
    # a portal west of Greenwich: date-only fields arrive as the previous evening
    sandbox = sandbox_for(make_sandbox, 120, seed=11, timezone="America/Sao_Paulo")
    provider, world = sandbox["bitrix24"], sandbox.world
    assert_ok(run(workdir, sandbox, "--skip-models"))

    live = [i for i in world.invoices["bitrix24"] if not i.deleted]
    open_smart = next(i for i in live if i.kind == "smart" and i.status == "issued" and not i.payments)
    # a partial payment in the UI: the invoice stays in its stage, so its updatedTime does not move
    before = open_smart.updated_at
    provider.pay(open_smart.id, Decimal("10.01"))
    assert open_smart.updated_at == before
    # a payment that completes another invoice moves it to the success stage (updatedTime moves)
    to_pay = next(i for i in live if i.kind == "smart" and i.status == "issued" and not i.payments
                  and i is not open_smart)
    provider.pay(to_pay.id, to_pay.totals()[2])
    # a legacy invoice and a smart one are deleted; a template is exposed into a new invoice
    victims = [next(i for i in live if i.kind == kind and i is not open_smart and i is not to_pay)
               for kind in ("smart", "legacy")]
    for v in victims:
        provider.delete_invoice(v.id)
    setting = next(iter(provider.recurring))
    import requests

    url = provider.webhook_url(sandbox.base_url)
    exposed = requests.post(url + "crm.invoice.recurring.expose", json={"id": setting}).json()["result"]["ID"]

    assert_ok(run(workdir, sandbox))
    expected = {e["invoice_key"]: e for e in assert_marts_match_truth(workdir, world)}
    assert expected[f"bitrix24:sandbox:SI:{open_smart.id}"]["status"] == "partially_paid"
    assert expected[f"bitrix24:sandbox:SI:{to_pay.id}"]["status"] == "paid"
    deleted = workdir.query("select invoice_key from marts.fct_invoices where is_deleted order by 1")
    assert deleted == sorted((f"bitrix24:sandbox:{'SI' if v.kind == 'smart' else 'I'}:{v.id}",) for v in victims)
    assert f"bitrix24:sandbox:I:{exposed}" in expected
    link = workdir.query("select recurring_template_id from staging.stg_bitrix24__invoices where id = ?", [exposed])
    assert link == [(provider.recurring[setting],)]
    templates = workdir.query("select count(*) from marts.fct_invoices where invoice_key in "
                              "(select invoice_key from staging.stg_bitrix24__invoices where is_template)")
    assert templates == [(0,)]
