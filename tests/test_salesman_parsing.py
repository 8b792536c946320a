"""Unit tests of SalesMan parsing: amounts, dates, the paid flag, fingerprints, the list scan."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from crm_invoices.sources.common import SourceError, loads_exact, money, redact
from crm_invoices.sources.salesman.helpers import (
    fingerprint,
    info_record,
    list_row_record,
    parse_local_datetime,
    parse_paid_flag,
    scan_invoice_list,
)


def test_amounts_are_exact_decimals_from_php_numbers():
    body = loads_exact(b'{"a": 200000, "b": 59999.99, "c": 50000.5, "d": 0.1, "e": 1234567.89}')
    assert [money(body[k]) for k in "abcde"] == [
        Decimal("200000"), Decimal("59999.99"), Decimal("50000.5"), Decimal("0.1"), Decimal("1234567.89")]
    assert all(type(money(body[k])) is Decimal for k in "abcde")
    # 0.1 + 0.2 is the classic float trap; parsed exactly it is 0.3 to the last digit
    assert money(loads_exact(b"0.1")) + money(loads_exact(b"0.2")) == Decimal("0.3")


def test_formatted_amounts_parse_with_ascii_and_nbsp_separators():
    assert money("150 000,00") == Decimal("150000.00")
    assert money("1\u00a0234\u00a0567,89") == Decimal("1234567.89")
    assert money(None) is None and money("") is None


def test_money_refuses_floats_and_garbage():
    with pytest.raises(TypeError):
        money(1.5)
    with pytest.raises(ValueError, match="not an amount"):
        money("12 руб")


@pytest.mark.parametrize("raw,paid", [("on", True), ("no", False), ("", False), ("yes", False), (None, False)])
def test_paid_flag_follows_the_crm_rule(raw, paid):
    # 'yes' comes from invoice/add do:"yes": the CRM shows it unpaid and books no money
    assert parse_paid_flag(raw) is paid


def test_local_wall_time_becomes_utc_with_the_account_zone():
    got = parse_local_datetime("2026-08-12 11:57:00", "Asia/Yekaterinburg")
    assert got == datetime(2026, 8, 12, 6, 57, tzinfo=UTC)
    assert parse_local_datetime("2026-01-01 01:30:00", "Europe/Moscow") == datetime(2025, 12, 31, 22, 30, tzinfo=UTC)
    assert parse_local_datetime(None, "Europe/Moscow") is None


LIST_ROW = {"id": 5, "crid": 5, "date_create": "2026-08-12 11:57:00", "date_plan": "2026-08-25", "date_fact": None,
            "contract": None, "invoice": "7", "summaf": "40 000,00", "summa": 40000, "color": None, "do": True,
            "clid": 3, "client": "Ромашка, ООО", "pid": 0, "person": None, "did": 4, "deal": "СД5", "mc": 1,
            "company": "ООО"}


def test_list_row_record_types():
    rec = list_row_record(LIST_ROW, "Europe/Moscow", scan=1)
    assert rec["crid"] == 5 and rec["summa"] == Decimal("40000") and isinstance(rec["summa"], Decimal)
    assert rec["date_plan"] == date(2026, 8, 25) and rec["date_fact"] is None
    assert rec["created_at"] == datetime(2026, 8, 12, 8, 57, tzinfo=UTC)
    assert rec["is_paid_list"] is True and rec["invoice"] == "7" and rec["pid"] is None


def test_fingerprint_changes_with_business_fields_only():
    base = fingerprint(LIST_ROW)
    assert fingerprint(dict(LIST_ROW, summaf="x", delta=3)) == base  # display-only fields
    assert fingerprint(dict(LIST_ROW, summa=40000.01)) != base
    assert fingerprint(dict(LIST_ROW, color="redbg-sublite")) != base  # paid flag changed
    assert fingerprint(dict(LIST_ROW, date_fact="2026-09-01")) != base


def test_info_record_handles_currency_course_and_template_shapes():
    data = {"crid": 23, "invoice": "22", "datum": "2026-10-14 11:59:00", "datum_credit": "2026-10-28",
            "invoice_date": None, "summa": 400000, "nds": loads_exact(b"66666.67"), "do": "no",
            "template": [{"id": 155}], "idcurrency": 1, "idcourse": 1,
            "currency": {"id": 1, "code": "USD", "course": loads_exact(b"92.25")},
            "course": {"id": 7, "course": loads_exact(b"90.5"), "datum": "2026-10-01 10:00:00"}}
    rec = info_record(data, "Europe/Moscow", "fp")
    assert rec["nds"] == Decimal("66666.67") and rec["is_paid"] is False and rec["template_id"] == 155
    assert (rec["currency_code"], rec["course_id"], rec["course"]) == ("USD", 7, Decimal("90.5"))
    rec = info_record(dict(data, currency=[], course=[], template={"id": 2}), "Europe/Moscow", "fp")
    assert rec["currency_code"] is None and rec["course"] is None and rec["template_id"] == 2


class FakeClient:
    """Serves pre-built scans: each scan is a list of pages (row ids, count); the last scan repeats."""

    def __init__(self, scans):
        self.scans, self.scan_no = scans, 0

    def call(self, method, params):
        if params["offset"] == 1:
            self.scan_no += 1
        scan = self.scans[min(self.scan_no, len(self.scans)) - 1]
        rows, count = scan[params["offset"] - 1]
        return {"data": [{"crid": i, "summa": 1} for i in rows], "count": count,
                "params": {"pageall": len(scan), "count": count}}


def test_scan_rereads_until_distinct_ids_match_count():
    # scan 1 sees a duplicate across the page boundary (a tie re-ordered): 5 distinct of 6
    # scan 2 is clean
    scans = [[([1, 2, 3], 6), ([3, 4, 5], 6)], [([1, 2, 3], 6), ([4, 5, 6], 6)]]
    client = FakeClient(scans)
    result: dict = {}
    yielded = list(scan_invoice_list(client, 3, result))
    assert result["ids"] == {1, 2, 3, 4, 5, 6} and result["scans"] == 2 and result["count"] == 6
    assert [scan for scan, _ in yielded] == [1, 1, 2, 2]


def test_scan_gives_up_with_a_clear_error():
    scans = [[([1, 2, 3], 7), ([3, 4, 5], 7)]]  # never consistent
    with pytest.raises(SourceError) as err:
        list(scan_invoice_list(FakeClient(scans), 2, {}))
    assert str(err.value).startswith("SalesMan: invoice/list changed while it was being read: 5 distinct invoice "
                                     "rows against a count of 7 after 2 scans.")
    assert "SOURCES__SALESMAN__MAX_SCAN_ATTEMPTS" in str(err.value)


def test_redact_hides_plain_and_url_encoded_secrets():
    assert redact("key=s3cr/et&x s3cr/et", ["s3cr/et"]) == "key=***&x ***"
    assert redact("key=s3cr%2Fet", ["s3cr/et"]) == "key=***"


def test_a_row_without_its_amount_is_a_clear_error():
    class Broken:
        def call(self, method, params):
            return {"data": [{"crid": 1}], "count": 1, "params": {"pageall": 1, "count": 1}}

    with pytest.raises(SourceError) as err:
        list(scan_invoice_list(Broken(), 2, {}))
    assert str(err.value) == ("SalesMan: invoice/list page 1 has a row without crid/summa: {'crid': 1}. "
                              "Fix: the server returned a malformed page; retry later.")
