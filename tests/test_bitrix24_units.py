"""Bitrix24 building blocks without the CLI: wire parsing, the emulator's dialect, the client's strategies."""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import requests
from crm_invoices.sandbox.bitrix24 import php_params
from crm_invoices.sources.bitrix24 import records as rec
from crm_invoices.sources.bitrix24.auth import WebhookAuth, redact_webhooks
from crm_invoices.sources.bitrix24.client import Bitrix24Client, LeakyBucket, php_query
from crm_invoices.sources.common import SourceError


def client_for(sandbox, **kw) -> Bitrix24Client:
    opts = dict(requests_per_second=500, burst=500, timeout=10, max_attempts=2, backoff_factor=0)
    opts.update(kw)
    return Bitrix24Client(WebhookAuth(sandbox["bitrix24"].webhook_url(sandbox.base_url)), **opts)


def test_date_only_fields_take_the_utc_date_even_west_of_greenwich():
    assert rec.business_date("2024-06-18T02:00:00+02:00") == date(2024, 6, 18)
    assert rec.business_date("2024-06-17T21:00:00-03:00") == date(2024, 6, 18)  # slicing would say the 17th
    assert rec.instant("2024-07-18T14:00:14+02:00") == datetime(2024, 7, 18, 12, 0, 14, tzinfo=UTC)
    assert rec.local_date("2026-05-27T01:30:00+03:00") == date(2026, 5, 27)
    with pytest.raises(SourceError, match="no UTC offset"):
        rec.instant("2024-07-18T14:00:14")


def test_line_amounts_use_the_price_the_tax_flag_names_and_round_half_up():
    # A5 of the examples: price 90000 incl. 10 % -> net 81818.18 per unit
    assert rec.line_amounts(Decimal("90000"), Decimal("81818.18"), Decimal(3), Decimal(10), True) == (
        Decimal("90000"), Decimal("245454.55"), Decimal("24545.45"), Decimal("270000.00"))
    assert rec.line_amounts(Decimal("1.20"), Decimal("1.00"), Decimal("0.125"), Decimal(20), False) == (
        Decimal("1.00"), Decimal("0.13"), Decimal("0.03"), Decimal("0.16"))
    assert rec.line_amounts(Decimal("5550"), Decimal("5550"), Decimal(1), None, True)[2] == Decimal("0.00")
    row = rec.legacy_product_row({"ID": "7", "PRICE": "100.00", "VAT_RATE": "0.22", "VAT_INCLUDED": "N",
                                  "QUANTITY": "2"}, 3, 1, {})
    assert (row["tax_rate"], row["vat_amount"], row["amount_gross"]) == (Decimal("22.00"), Decimal("44.00"),
                                                                        Decimal("244.00"))


def test_php_brackets_round_trip_and_batch_references_stay_raw():
    params = {"filter": {">id": "$result[p0][items][49][id]", "=ownerId": [1, 2]}, "select": ["id"], "start": -1}
    query = "&".join(php_query(params))
    assert "filter[%3Eid]=$result[p0][items][49][id]" in query
    from urllib.parse import parse_qsl

    assert php_params(parse_qsl(query)) == {"filter": {">id": "$result[p0][items][49][id]", "=ownerId": ["1", "2"]},
                                            "select": ["id"], "start": "-1"}


def test_webhook_secrets_are_redacted_and_bad_urls_rejected():
    assert redact_webhooks("POST https://x.bitrix24.ru/rest/12/abcDEF123/crm.item.list") == \
        "POST https://x.bitrix24.ru/rest/12/***/crm.item.list"
    with pytest.raises(SourceError, match="SOURCES__BITRIX24__WEBHOOK_URL"):
        WebhookAuth("https://x.bitrix24.ru/rest/12/abcDEF123/crm.item.list")


class _Clock:
    """Time that passes only when the bucket sleeps: the pacing arithmetic, free of the machine's load."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_leaky_bucket_paces_after_the_burst():
    clock = _Clock()
    bucket = LeakyBucket(rate=50, burst=6, clock=clock, sleep=clock.sleep)  # 5 usable with the headroom
    started = clock()
    for _ in range(10):
        bucket.acquire()
    assert bucket.waited == pytest.approx(5 / 50, abs=0.03)
    assert clock() - started >= 0.08


def test_export_by_id_chains_pages_in_one_request_and_follows_legacy_strings(make_sandbox):
    sandbox = make_sandbox(invoices={"bitrix24": 900}, bitrix24={"requests_per_second": 500, "burst": 500})
    provider, client = sandbox["bitrix24"], client_for(sandbox)
    smart = sorted(i.id for i in sandbox.world.invoices["bitrix24"] if i.kind == "smart")
    pages = list(client.list_by_id("crm.item.list", {"entityTypeId": 31, "select": ["id"]}, "id", "items"))
    assert [int(r["id"]) for p in pages for r in p] == smart
    assert len(pages) == math.ceil(len(smart) / 50) > 10
    assert sandbox.count("bitrix24", "batch") == 1 == math.ceil(len(smart) / 2500)
    pages = list(client.list_by_id("crm.invoice.list", {"select": ["ID"]}, "ID", None, chain=2))
    legacy = sorted(i.id for i in sandbox.world.invoices["bitrix24"] if i.kind in ("legacy", "template"))
    assert [int(r["ID"]) for p in pages for r in p] == legacy
    assert provider.rate_limited == 0


def test_sandbox_speaks_the_legacy_dialect(make_sandbox):
    sandbox = make_sandbox(invoices={"bitrix24": 60}, bitrix24={"timezone": "America/Sao_Paulo"})
    url = sandbox["bitrix24"].webhook_url(sandbox.base_url)
    body = requests.post(url + "crm.invoice.list", data={"select[]": "ID"}).json()  # form params, no order
    ids = [int(r["ID"]) for r in body["result"]]
    assert ids == sorted(ids, reverse=True) and all(isinstance(r["ID"], str) for r in body["result"])
    item = requests.post(url + "crm.item.list", json={"entityTypeId": 31, "start": -1}).json()
    assert item["total"] == 0 and "next" not in item  # start=-1: no counting
    first = item["result"]["items"][0]
    assert first["begindate"].endswith("T21:00:00-03:00")  # midnight UTC shown in the portal's offset
    batch = requests.post(url + "batch", json={"cmd": {"a": "crm.currency.list"}}).json()["result"]
    assert batch["result_error"] == [] and batch["result_next"] == []  # empty maps as arrays
    assert requests.post(url + "crm.item.list", json={"entityTypeId": 5}).json()["error"] == "ENTITY_TYPE_NOT_SUPPORTED"


def test_operation_time_limit_is_waited_out(make_sandbox):
    sandbox = make_sandbox(invoices={"bitrix24": 10}, bitrix24={"requests_per_second": 500, "burst": 500})
    provider, client = sandbox["bitrix24"], client_for(sandbox)
    provider.block_method("crm.currency.list", 1.2)
    started = time.monotonic()
    body = client.call("crm.currency.list")
    assert len(body["result"]) == 4 and client.operation_waits == 1
    assert time.monotonic() - started >= 1.0
    provider.block_method("crm.currency.list", 30)
    with pytest.raises(SourceError, match="operation time limit.*MAX_OPERATION_WAIT"):
        client_for(sandbox, max_operation_wait=5).call("crm.currency.list")


def test_missing_fields_and_unmatchable_batch_errors_are_clear_errors(make_sandbox):
    with pytest.raises(SourceError, match="crm.item.list returned an invoice without 'opportunity'"):
        rec.smart_invoice({"id": 5, "currencyId": "RUB", "stageId": "DT31_3:N", "updatedTime": None}, {})
    with pytest.raises(SourceError, match="unreadable PRICE"):
        rec.legacy_invoice({"ID": "5", "PRICE": "12,3.4", "STATUS_ID": "N", "DATE_UPDATE": None}, {})
    sandbox = make_sandbox(invoices={"bitrix24": 5}, bitrix24={"requests_per_second": 500, "burst": 500})
    client = client_for(sandbox)

    def list_errors(prov, request, n):
        prov.failing["crm.currency.list"] = ("", "ID is not defined or invalid.", 400)

    sandbox["bitrix24"].faults.on_request = list_errors
    with pytest.raises(SourceError, match=r"batch command c \(crm.currency.list\) failed with '': ID is not"):
        client.batch({"c": ("crm.currency.list", {})})
    sandbox["bitrix24"].portal.batch_errors_as_list = True
    with pytest.raises(SourceError, match="batch returned errors that name no command: .*ID is not defined"):
        client.batch({"c": ("crm.currency.list", {}), "s": ("crm.status.list", {})})


def test_a_portal_without_legacy_invoices_loads_its_smart_invoices(make_sandbox, tmp_path):
    import dlt

    sandbox = make_sandbox(invoices={"bitrix24": 40}, bitrix24={"requests_per_second": 500, "burst": 500})
    provider = sandbox["bitrix24"]
    for method in ("crm.invoice.list", "crm.invoice.recurring.list"):
        provider.fail_method(method, "ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
    from crm_invoices.sources.bitrix24 import bitrix24_source

    source = bitrix24_source(webhook_url=provider.webhook_url(sandbox.base_url), account="t",
                             requests_per_second=500, burst=500)
    pipeline = dlt.pipeline("b24_no_legacy", destination=dlt.destinations.duckdb(str(tmp_path / "x.duckdb")),
                            pipelines_dir=str(tmp_path / "pipelines"))
    pipeline.extract(source)  # extraction alone is what is tested here
    tables = {t["name"] for t in pipeline.default_schema.data_tables()}
    assert "smart_invoices" in tables and "legacy_invoices" not in tables
