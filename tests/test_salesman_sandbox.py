"""The SalesMan emulator behaves like the captured real server (shared/api/salesman_real/FINDINGS.md)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests
from crm_invoices.sandbox.salesman import num_format, php_number
from crm_invoices.sources.common import loads_exact


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


def _scan_ids(sm, pages: int, **params) -> list[int]:
    ids: list[int] = []
    for page in range(1, pages + 1):
        ids += [r["crid"] for r in sm("invoice/list", {"offset": page, "order": "date_create", "first": "old",
                                                       **params})["data"]]
    return ids


@pytest.fixture
def ties(make_sandbox):
    """An emulator whose rows come in tie groups of 9 (nine invoices created in one minute), 10 a page."""
    def make(mode):
        sandbox = make_sandbox(invoices={"salesman": 60}, salesman={"page_size": 10, "tie_order": mode,
                                                                     "tie_group_size": 9})
        provider = sandbox["salesman"]
        key, login = provider.account.api_key, next(iter(provider.account.logins))

        def call(method, body=None):
            resp = requests.post(f"{sandbox.base_url}/developer/v3/{method}", data=json.dumps(body or {}),
                                 headers={"Content-Type": "application/json", "apikey": key, "login": login})
            return loads_exact(resp.content)

        call.provider = provider
        call.pages = -(-len(provider.rows) // 10)
        return call
    return make


def test_stable_ties_give_every_row_once_and_the_same_order_every_time(ties):
    sm = ties("stable")
    first = _scan_ids(sm, sm.pages)
    assert sorted(first) == sorted(sm.provider.rows)  # every row exactly once
    assert _scan_ids(sm, sm.pages) == first


def test_shuffled_ties_change_order_between_requests(ties):
    sm = ties("shuffle")
    orders = {tuple(_scan_ids(sm, sm.pages)) for _ in range(4)}
    assert len(orders) > 1
    for order in orders:  # each page is still sorted by creation time
        stamps = [sm.provider.rows[c].datum for c in order]
        assert stamps == sorted(stamps)


def test_limit_dependent_ties_lose_and_repeat_the_same_rows_on_every_request(ties):
    sm = ties("limit_dependent")
    rows = len(sm.provider.rows)
    first = _scan_ids(sm, sm.pages)
    assert len(first) == rows == sm("invoice/list", {"offset": 1})["count"]  # every position filled
    lost = set(sm.provider.rows) - set(first)
    repeated = {c for c in first if first.count(c) > 1}
    assert lost and len(repeated) == len(lost)  # some rows on two pages, as many on none
    assert _scan_ids(sm, sm.pages) == first  # reading again changes nothing
    # the rows lost and repeated belong to tie groups cut by a page boundary
    stamps = [sm.provider.rows[c].datum for c in first]
    cut = {stamps[i] for i in range(10, len(stamps), 10) if stamps[i] == stamps[i - 1]}
    assert {sm.provider.rows[c].datum for c in lost | repeated} <= cut
    # a narrow query that fits one page has no boundary: a tie group read alone comes back whole
    victim = sm.provider.rows[next(iter(lost))]
    stamp = next(r["date_create"] for r in sm("invoice/list", {"did": victim.did})["data"] if r["crid"] == victim.crid)
    group = sm("invoice/list", {"dateCreateStart": stamp, "dateCreateEnd": stamp, "order": "summa"})
    assert victim.crid in {r["crid"] for r in group["data"]}
    assert group["count"] == sum(1 for r in sm.provider.rows.values() if r.datum == victim.datum)


def test_date_created_filters_follow_the_servers_quirks(sm):
    rows = sm.provider.rows.values()
    day = sorted({r.datum.astimezone(sm.provider._zone(True)).date() for r in rows})[len(rows) // 4]
    walls = {r.crid: r.datum.astimezone(sm.provider._zone(True)).replace(tzinfo=None) for r in rows}

    def crids(**params):
        return {r["crid"] for page in range(1, 10)
                for r in sm("invoice/list", {"offset": page, **params})["data"]}

    # Start = End = a day: BETWEEN 'day' AND 'day' means 00:00:00 to 00:00:00, so that day's rows are not found
    assert any(w.date() == day for w in walls.values())
    assert crids(dateCreateStart=day.isoformat(), dateCreateEnd=day.isoformat()) == {
        c for c, w in walls.items() if w == datetime(day.year, day.month, day.day)}
    stamp = next(w for w in walls.values() if w.date() == day).strftime("%Y-%m-%d %H:%M:%S")
    assert crids(dateCreateStart=stamp, dateCreateEnd=stamp) == {  # to the second, both ends included
        c for c, w in walls.items() if w.strftime("%Y-%m-%d %H:%M:%S") == stamp}
    assert crids(dateCreateEnd=day.isoformat()) == {c for c, w in walls.items() if w.date() < day}
    assert crids(dateCreateStart=day.isoformat()) == set(sm.provider.rows)  # Start alone filters nothing


def test_rows_of_a_deal_owned_by_user_0_are_listed_only_by_deal_list(sm):
    did = next(iter(sm.provider.rows.values())).did
    mine = {c for c, r in sm.provider.rows.items() if r.did == did}
    sm.provider.hide_deal(did)
    listed = sm("invoice/list", {"offset": 1})
    assert listed["count"] == len(sm.provider.rows) - len(mine)
    assert sm("invoice/list", {"did": did})["data"] == []
    deal = next(d for d in sm("deal/list", {"active": False, "invoice": True})["data"] if d["did"] == did)
    assert deal["iduser"] == 0 and {i["id"] for i in deal["invoice"]} == mine
    assert sm("invoice/info", {"id": min(mine)})["data"]["iduser"] == 0
    added = sm("invoice/add", {"did": did, "summa": 10, "date": "2026-11-02"})["data"]["id"]
    assert sm("invoice/info", {"id": added})["data"]["iduser"] == 0  # rows added later are hidden too


def test_an_undone_payment_reads_unpaid_on_every_path(sm):
    row = next(r for r in sm.provider.rows.values() if r.do == "on")
    sm.provider.undo_payment(row.crid)
    assert sm("invoice/info", {"id": row.crid})["data"]["do"] == ""
    listed = next(r for r in sm("invoice/list", {"did": row.did})["data"] if r["crid"] == row.crid)
    assert (listed["color"], listed["date_fact"]) == ("redbg-sublite", None)
    deal = next(d for d in sm("deal/list", {"active": False, "invoice": True})["data"] if d["did"] == row.did)
    assert next(i for i in deal["invoice"] if i["id"] == row.crid)["do"] == ""


def test_estimate_ties_break_only_before_the_last_page_and_only_with_two_users(ties):
    call = ties("estimate")
    provider, pages = call.provider, call.pages
    assert sorted(_scan_ids(call, pages)) == sorted(provider.rows)  # one user: complete
    provider.give_deal(next(iter(provider.rows.values())).did, 2)
    ids = _scan_ids(call, pages)
    assert ids == _scan_ids(call, pages)  # the same on every request
    lost = set(provider.rows) - set(ids)
    stamps = {c: provider.rows[c].datum for c in provider.rows}
    last_cut = stamps[ids[(pages - 1) * 10]]
    assert lost and {stamps[c] for c in lost} == {last_cut}  # only the group cut before the last page
