"""The SalesMan emulator behaves like the captured real server (shared/api/salesman_real/FINDINGS.md)."""

from __future__ import annotations

import json

import pytest
import requests

from sandbox.salesman import num_format, php_number
from sources.common import loads_exact


@pytest.fixture
def sm(make_sandbox):
    sandbox = make_sandbox(invoices={"salesman": 40}, salesman={"page_size": 30})
    provider = sandbox["salesman"]
    key, login = provider.account.api_key, next(iter(provider.account.logins))

    def call(method, body=None, headers=None, raw=False, **kw):
        hdrs = {"Content-Type": "application/json", "apikey": key, "login": login}
        hdrs.update(headers or {})
        resp = requests.post(f"{sandbox.base_url}/developer/v3/{method}", data=json.dumps(body or {}),
                             headers=hdrs, **kw)
        return resp if raw else loads_exact(resp.content)

    call.sandbox, call.provider, call.key, call.login = sandbox, provider, key, login
    return call


def test_page_size_is_the_account_setting_and_offset_is_one_based(sm):
    rows = len(sm.provider.rows)
    first = sm("invoice/list", {"offset": 1})
    assert len(first["data"]) == 30 and first["count"] == rows and first["params"]["pageall"] == -(-rows // 30)
    assert sm("invoice/list", {"offset": 0})["data"] == first["data"]  # 0 and 1 are the same page
    assert sm("invoice/list", {})["data"] == first["data"]
    beyond = sm("invoice/list", {"offset": first["params"]["pageall"] + 1})
    assert beyond["data"] == [] and beyond["count"] == rows


def test_default_order_is_creation_date_descending(sm):
    data = sm("invoice/list", {"offset": 1})["data"]
    stamps = [r["date_create"] for r in data]
    assert stamps == sorted(stamps, reverse=True)
    asc = [r["date_create"] for r in sm("invoice/list", {"offset": 1, "order": "date_create", "first": "old"})["data"]]
    assert asc == sorted(asc)


def test_json_only_with_exact_content_type(sm):
    bad = sm("invoice/list", {}, headers={"Content-Type": "application/json; charset=utf-8"})
    assert bad == {"result": "Error", "error": {"code": 401, "text": "Неизвестный пользователь"}}
    form = requests.post(f"{sm.sandbox.base_url}/developer/v3/invoice/list",
                         data={"apikey": sm.key, "login": sm.login, "pay[on]": "1"}).json()
    assert form["data"] and all(r["color"] is None for r in form["data"])  # paid rows only


def test_wrong_key_and_login_answer_http_200_error_envelopes(sm):
    resp = sm("invoice/list", {}, headers={"apikey": "nope"}, raw=True)
    assert resp.status_code == 200
    assert resp.json() == {"result": "Error", "error": {"code": 401, "text": "Неизвестный пользователь"}}
    assert sm("invoice/list", {}, headers={"login": "x@y"})["error"]["code"] == 401
    assert sm("invoice/bogus")["error"]["code"] == 402
    assert sm("nomethod/list", raw=True).content == b""  # unknown method: empty body


def test_info_returns_raw_do_and_absolute_vat_on_first_row(sm):
    crid = next(iter(sm.provider.rows))
    info = sm("invoice/info", {"id": crid})["data"]
    assert info["crid"] == crid and info["do"] in ("on", "no", "", "yes")
    assert sm("invoice/info", {"id": 999999})["data"]["crid"] == 0  # not an error on the real server
    assert sm("invoice/info", {})["error"]["code"] == 405


def test_add_do_partial_payment_splits_the_row(sm):
    added = sm("invoice/add", {"did": 1, "invoice": "auto", "summa": 99999.99, "date": "2026-08-12",
                               "date.plan": "2026-08-25"})
    crid = added["data"]["id"]
    info = sm("invoice/info", {"id": crid})["data"]
    assert info["summa"] == loads_exact(b"99999.99") and info["do"] == "no" and info["datum"].endswith(":00")
    paid = sm("invoice/do", {"id": crid, "summa": 40000, "date.do": "2026-08-26"})
    new = paid["newdata"]
    first, rest = sm("invoice/info", {"id": crid})["data"], sm("invoice/info", {"id": new})["data"]
    assert (first["summa"], first["do"], first["invoice_date"]) == (40000, "on", None)  # date.do is ignored
    assert rest["summa"] == loads_exact(b"59999.99") and rest["do"] == "no" and rest["nds"] == 0
    assert (rest["invoice"], rest["did"], rest["datum"]) == (first["invoice"], first["did"], first["datum"])


def test_add_with_do_yes_is_stored_as_is_and_not_paid(sm):
    crid = sm("invoice/add", {"did": 2, "summa": 1000, "do": "yes", "date.do": "2026-09-19"})["data"]["id"]
    info = sm("invoice/info", {"id": crid})["data"]
    assert info["do"] == "yes" and info["invoice_date"] == "2026-09-19"
    row = next(r for r in sm("invoice/list", {"did": 2})["data"] if r["crid"] == crid)
    assert row["color"] == "redbg-sublite"  # unpaid in the CRM


def test_express_creates_a_paid_invoice_with_its_date(sm):
    crid = sm("invoice/express", {"did": 3, "summa": 5000, "date": "2026-09-01", "date.do": "2026-09-15"})["data"]["id"]
    info = sm("invoice/info", {"id": crid})["data"]
    assert (info["do"], info["invoice_date"], info["summa"]) == ("on", "2026-09-15", 5000)
    assert sm("invoice/add", {"did": 999999})["error"]["code"] == 403


def test_php_number_and_format_like_the_server():
    from decimal import Decimal

    assert json.dumps([php_number(Decimal("200000.00")), php_number(Decimal("59999.99"))]) == "[200000, 59999.99]"
    assert num_format(Decimal("150000")) == "150 000,00" and num_format(Decimal("-1234.5")) == "-1 234,50"


def test_faults_nonjson_and_truncated(sm):
    sm.provider.faults.nonjson_next = 1
    assert sm("invoice/list", {}, raw=True).content.startswith(b"<br />")
    sm.provider.faults.truncate_next = 1
    body = sm("invoice/list", {}, raw=True).content
    with pytest.raises(ValueError):
        json.loads(body)
    assert sm("invoice/list", {})["count"] == len(sm.provider.rows)
