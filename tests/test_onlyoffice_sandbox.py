"""The ONLYOFFICE emulator speaks the real dialect, and the source's parsing reads it exactly (no CLI here)."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import requests
from crm_invoices.sandbox.onlyoffice.ledger import OOLine, default_taxes, line_amounts
from crm_invoices.sandbox.world import Line
from crm_invoices.sources.common import MalformedBody, SourceError, loads_exact
from crm_invoices.sources.common import response_json as exact_json
from crm_invoices.sources.onlyoffice.helpers import retry_after, should_retry
from crm_invoices.sources.onlyoffice.paging import OverlapPaginator, ScanShifted, SortIgnored
from crm_invoices.sources.onlyoffice.records import business_date, invoice_record, parse_api_datetime


@pytest.fixture
def portal(make_sandbox):
    sandbox = make_sandbox(invoices={"onlyoffice": 25}, onlyoffice={"timezone": "Europe/Berlin"})
    provider = sandbox["onlyoffice"]
    api = f"{sandbox.base_url}/api/2.0/"
    token = requests.post(api + "authentication.json", json={"userName": provider.portal.username,
                                                               "password": provider.portal.password})
    assert token.status_code == 201
    headers = {"Authorization": token.json()["response"]["token"]}
    return sandbox, provider, api, headers


def test_envelope_quirks_off_by_one_next_index_and_omitted_defaults(portal):
    _sandbox, _provider, api, headers = portal
    first = requests.get(api + "crm/invoice/filter.json", params={"sortBy": "id", "count": 10}, headers=headers)
    body = loads_exact(first.content)
    assert list(body) == ["count", "nextIndex", "total", "status", "statusCode", "response"]  # no startIndex=0
    assert (body["count"], body["nextIndex"], body["total"]) == (10, 11, 25)  # 11, not 10: off by one
    assert "issueDate" in body["response"][0] and "IssueDate" not in body["response"][0]  # camelCase on the wire
    assert isinstance(body["response"][0]["cost"], Decimal)
    assert re.search(rb'"exchangeRate":[0-9]+[.][0-9]{2},', first.content)  # decimals keep their scale
    last = loads_exact(requests.get(api + "crm/invoice/filter", params={"sortBy": "id", "startIndex": 20,
                                                                        "count": 10}, headers=headers).content)
    assert (last["count"], last["startIndex"], last["total"]) == (5, 20, 25) and "nextIndex" not in last
    empty = loads_exact(requests.get(api + "crm/invoice/filter", params={"startIndex": 40}, headers=headers).content)
    assert "count" not in empty and empty["total"] == 40 and empty["response"] == []
    capped = loads_exact(requests.get(api + "crm/invoice/filter", params={"count": 5000}, headers=headers).content)
    assert capped["count"] == 25  # count is capped at 1000 silently; 25 rows exist


def test_total_is_cached_across_filters(portal):
    _sandbox, _provider, api, headers = portal
    requests.get(api + "crm/invoice/filter", params={"count": 2}, headers=headers)
    paid = loads_exact(requests.get(api + "crm/invoice/filter", params={"count": 2, "status": "paid"},
                                    headers=headers).content)
    assert paid["total"] == 25  # the unfiltered count, from the 30 s cache


def test_auth_errors_in_the_real_shapes(portal):
    _sandbox, provider, api, _headers = portal
    bad = requests.get(api + "crm/invoice/filter", headers={"Authorization": "nope"})
    assert (bad.status_code, bad.text, bad.headers["WWW-Authenticate"][:6]) == (401, "Unauthorized", "Bearer")
    wrong = requests.post(api + "authentication", json={"userName": provider.portal.username, "password": "x"})
    assert wrong.status_code == 500 and wrong.json()["error"]["message"] == "User authentication failed"
    basic = requests.get(api + "crm/invoice/tax", auth=(provider.portal.username, provider.portal.password))
    assert basic.status_code == 200 and len(basic.json()["response"]) == 5


def test_dates_are_portal_wall_time_with_the_offset_of_the_day(portal):
    _sandbox, _provider, api, headers = portal
    rows = loads_exact(requests.get(api + "crm/invoice/filter", params={"sortBy": "id"}, headers=headers).content)
    offsets = {r["issueDate"][-6:] for r in rows["response"]}
    assert offsets <= {"+01:00", "+02:00"} and len(offsets) == 2  # Berlin: winter and summer time
    issue = rows["response"][0]["issueDate"]
    assert issue.endswith(("T00:00:00.0000000+01:00", "T00:00:00.0000000+02:00"))
    assert business_date(issue) == date.fromisoformat(issue[:10])
    assert parse_api_datetime("2024-03-15T00:00:00.1234567+03:00") == datetime(2024, 3, 14, 21, 0, 0, 123456, tzinfo=UTC)
    assert parse_api_datetime("2024-03-15T10:21:07.0000000Z") == datetime(2024, 3, 15, 10, 21, 7, tzinfo=UTC)


def test_status_transitions_and_cost_with_banker_rounding(portal):
    sandbox, provider, api, headers = portal
    created = requests.post(api + "crm/invoice", headers=headers, json={
        "number": "R-1", "issueDate": "2026-11-02T00:00:00", "dueDate": "2026-11-20", "contactId": 3,
        "currency": "eur", "exchangeRate": 91.27, "terms": "x",
        "invoiceLines": [
            {"invoiceItemID": 7, "invoiceTax1ID": 3, "description": "полчаса", "quantity": 0.5, "price": 10.01},
            {"invoiceItemID": 8, "invoiceTax1ID": 2, "invoiceTax2ID": 5, "quantity": 3, "price": 4.15, "discount": 25},
        ]})
    assert created.status_code == 201
    inv = loads_exact(created.content)["response"]
    # 0.5 x 10.01 = 5.005 -> 5.00 (half-even), VAT 10 % = 0.50; 12.45 - 3.11 (25 % of 12.45 = 3.1125) = 9.34,
    # VAT 22 % = 2.0548 -> 2.05, levy 2 % = 0.1868 -> 0.19: 5.50 + 11.58 = 17.08
    assert (inv["cost"], inv["status"]["id"], inv["currency"]["abbreviation"]) == (Decimal("17.08"), 1, "EUR")
    ids = {"invoiceids": [inv["id"]]}
    def put(s):
        return loads_exact(requests.put(f"{api}crm/invoice/status/{s}.json", json=ids, headers=headers).content)
    assert put(4)["response"]["key"][0]["status"]["id"] == 1  # Draft -> Paid is silently ignored
    assert put(2)["response"]["key"][0]["status"]["id"] == 2
    assert put(4)["response"]["key"][0]["status"]["id"] == 4
    assert sandbox.count("onlyoffice", "PUT invoice/status/{id}") == 3


@pytest.mark.parametrize(("qty", "price", "discount", "rate", "expected"), [
    ("0.5", "10.01", "0", "10", ("5.00", "0.50")),  # 5.005 -> 5.00
    ("1", "12.25", "0", "10", ("12.25", "1.22")),  # 1.225 -> 1.22
    ("1", "12.35", "0", "10", ("12.35", "1.24")),  # 1.235 -> 1.24
    ("2.5", "4.01", "0", "20", ("10.02", "2.00")),  # 10.025 -> 10.02
])
def test_cost_formula_rounds_half_to_even(qty, price, discount, rate, expected):
    taxes = default_taxes()
    taxes[1].rate = Decimal(rate)
    net, t1, _ = line_amounts(Line("x", Decimal(qty), Decimal(price), None, False),
                              OOLine(1, 0, 1, 0, Decimal(discount), 0), taxes)
    assert (net, t1) == tuple(Decimal(x) for x in expected)


class _Resp:
    pass


def test_paginator_rereads_one_row_and_detects_shifts():
    pag = OverlapPaginator(3, ascending_ids=True)
    page = [{"id": 1}, {"id": 2}, {"id": 3}]
    pag.update_state(_Resp(), page)
    assert pag.has_next_page and pag.read == 3
    request = type("R", (), {"params": {"startIndex": 0}})()
    pag.update_request(request)
    assert request.params["startIndex"] == 2  # starts at the last row seen
    second = [{"id": 3}, {"id": 4}]
    pag.update_state(_Resp(), second)
    assert second == [{"id": 4}] and not pag.has_next_page
    shifted = OverlapPaginator(2, ascending_ids=True)
    shifted.update_state(_Resp(), [{"id": 1}, {"id": 2}])
    with pytest.raises(ScanShifted):
        shifted.update_state(_Resp(), [{"id": 3}, {"id": 4}])  # row 2 vanished: id 3 moved to its place
    unsorted = OverlapPaginator(3, ascending_ids=True)
    with pytest.raises(SortIgnored):
        unsorted.update_state(_Resp(), [{"id": 5}, {"id": 1}, {"id": 9}])


def test_records_keep_decimals_and_business_dates_and_reject_missing_fields():
    row = loads_exact(b'{"id": 7, "status": {"id": 4, "title": "Paid"}, "number": "A-7", "cost": 1210.10,'
                      b'"issueDate": "2024-03-15T00:00:00.0000000+03:00", "dueDate": "2024-04-14T00:00:00.0000000+03:00",'
                      b'"createOn": "2024-03-15T01:21:07.0000000+03:00", "exchangeRate": 0.92,'
                      b'"currency": {"abbreviation": "USD"}}')
    rec = invoice_record(row, 1)
    assert (rec["cost"], rec["exchange_rate"]) == (Decimal("1210.10"), Decimal("0.92"))
    assert (rec["issue_date"], rec["created_at"]) == (date(2024, 3, 15), datetime(2024, 3, 14, 22, 21, 7, tzinfo=UTC))
    del row["cost"]
    with pytest.raises(SourceError, match="ONLYOFFICE: invoice 7 in invoice/filter has no cost"):
        invoice_record(row, 1)


def _response(status: int, body: bytes = b"", **headers: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp.raw = status, io.BytesIO(body)
    resp.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return resp


def test_what_is_retried_waited_out_or_reported():
    # Retry-After: seconds or an HTTP date, capped at a minute per wait; only on 429/503
    assert retry_after(_response(503, Retry_After="7")) == 7
    assert retry_after(_response(503, Retry_After="Wed, 21 Oct 2015 07:28:00 GMT")) == 0  # already past
    assert retry_after(_response(429, Retry_After="Fri, 01 Jan 2100 00:00:00 GMT")) == 60
    assert retry_after(_response(503)) is None and retry_after(_response(500, Retry_After="5")) is None
    # a throttled answer is waited out by the gate, not retried as a failure; without Retry-After it is one
    assert not should_retry(_response(503, b"<html>503</html>", Retry_After="1"), None)
    assert should_retry(_response(503, b"<html>503</html>"), None)
    # a proxy's 500 is retried, the portal's own error envelope (a wrong password) is not
    assert should_retry(_response(500, b"<html>nginx</html>"), None)
    assert not should_retry(_response(500, b'{"status":1,"error":{"message":"User authentication failed"}}'), None)
    # HTTP 200: a body cut right after a "}" looks complete from both ends and is retried all the same
    cut = _response(200, b'{"status":0,"response":{"invoiceLines":[{"id":1}]}')
    assert should_retry(cut, None)
    with pytest.raises(MalformedBody, match="cut-off or invalid JSON"):
        exact_json(cut)
    whole = _response(200, b'{"status":0,"response":{"cost":7.70}}')
    assert not should_retry(whole, None)
    assert exact_json(whole)["response"]["cost"] == Decimal("7.70")
