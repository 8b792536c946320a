"""Every CRM in one run, every mart compared with the sandbox's ground truth, to the kopeck.

The world carries one planted case of each reconciliation rule that plain data can carry (and nothing else
that breaks a rule), so the exceptions report must list exactly those.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
from crm_invoices.pipelines.registry import NAMES, SOURCES
from crm_invoices.sandbox import expected as truth
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

from tests.conftest import assert_ok

SYSTEMS = tuple(SOURCES)
AS_OF = date(2026, 11, 20)
FCT_COLUMNS = ["invoice_key", "source_system", "account", "invoice_number", "deal_id", "client_id", "issue_date",
               "due_date", "paid_date", "status", "currency", "amount_gross", "vat_amount", "amount_net",
               "vat_rate", "amount_paid", "amount_due", "is_deleted"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from tests.conftest import Workdir

    world = World.generate(seed=2026, invoices=dict.fromkeys(NAMES, 45),
                           anomalies=True)
    sandbox = Sandbox(world, salesman={"page_size": 10}).start()
    workdir = Workdir(tmp_path_factory.mktemp("marts"))
    try:
        assert_ok(workdir.cli("run", "--no-progress", sandbox=sandbox))
        assert_ok(workdir.cli("models", "--vars", f'{{"as_of": "{AS_OF.isoformat()}"}}'))
        yield world, workdir
    finally:
        sandbox.stop()


def test_every_source_was_loaded(loaded):
    world, workdir = loaded
    got = dict(workdir.query("select source_system, count(*) from marts.fct_invoices group by 1"))
    assert set(got) == set(SYSTEMS)


def test_fct_invoices_equal_the_truth(loaded):
    world, workdir = loaded
    expected = {e["invoice_key"]: e for e in truth.expected(world, "invoices", SYSTEMS)}
    got = {r["invoice_key"]: r for r in workdir.query_dicts(f"select {', '.join(FCT_COLUMNS)} from marts.fct_invoices")}
    assert sorted(got) == sorted(expected)
    diffs = [(k, c, got[k][c], e[c]) for k, e in expected.items() for c in FCT_COLUMNS if c in e and got[k][c] != e[c]]
    assert diffs == []


def test_fct_payments_equal_the_truth(loaded):
    world, workdir = loaded
    expected = Counter((p["invoice_key"], p["paid_date"], p["amount"]) for p in truth.expected(world, "payments", SYSTEMS))
    got = Counter(workdir.query("select invoice_key, paid_date, amount from marts.fct_payments"))
    assert got == expected
    assert workdir.query("select count(*) from marts.fct_payments where amount <= 0") == [(0,)]


def test_fct_invoice_lines_equal_the_truth(loaded):
    world, workdir = loaded
    cols = ["invoice_key", "line_number", "quantity", "unit_price", "vat_rate", "vat_amount", "amount_net",
            "amount_gross"]
    expected = sorted(tuple(line[c] for c in cols) for line in truth.expected(world, "lines", SYSTEMS))
    got = sorted(workdir.query(f"select {', '.join(cols)} from marts.fct_invoice_lines"))
    assert got == expected


def test_vat_by_month_equals_the_truth(loaded):
    world, workdir = loaded
    expected = truth.vat_by_month(world, SYSTEMS)
    got = {(m, s, c, r): (n, net, vat, gross) for m, s, c, r, n, net, vat, gross in workdir.query(
        "select month, source_system, currency, vat_rate, invoice_count, amount_net, vat_amount, amount_gross "
        "from marts.rpt_vat_by_month")}
    assert got == expected
    # both standard rates appear: 20 % in 2025, 22 % from 2026
    rates = {(m.year, r) for (m, _s, _c, r) in got if r in (Decimal(20), Decimal(22))}
    assert (2025, Decimal(20)) in rates and (2026, Decimal(22)) in rates


def test_ar_aging_equals_the_truth_as_of_a_fixed_date(loaded):
    world, workdir = loaded
    rows = workdir.query("select as_of, source_system, currency, bucket, invoice_count, amount_due "
                         "from marts.rpt_ar_aging")
    assert {r[0] for r in rows} == {AS_OF}
    assert {(s, c, b): (n, d) for _a, s, c, b, n, d in rows} == truth.ar_aging(world, AS_OF, SYSTEMS)


def test_reconciliation_exceptions_are_exactly_the_planted_ones(loaded):
    world, workdir = loaded
    got = set(workdir.query("select rule, invoice_key from marts.rpt_reconciliation_exceptions"))
    assert got == truth.exceptions(world, SYSTEMS)
    # every rule has its planted case
    assert {rule for rule, _ in got} == {
        "missing_fx_rate", "lines_total_mismatch", "vat_lines_mismatch", "vat_rate_mismatch", "paid_without_payments",
        "payments_without_paid_status", "payments_exceed_invoice", "declared_paid_not_booked",
        "cross_system_amount_mismatch", "due_before_issue", "non_positive_total"}
    msg = workdir.query("select severity, message, expected, actual from marts.rpt_reconciliation_exceptions "
                        "where rule = 'non_positive_total'")
    assert msg == [("error", "the invoice total is zero or negative", "> 0", "0.00")]


def test_money_identities_hold(loaded):
    _world, workdir = loaded
    assert workdir.query("select count(*) from marts.fct_invoices where amount_gross <> amount_net + vat_amount "
                         "or amount_due <> amount_gross - amount_paid") == [(0,)]
    types = dict(workdir.query("select column_name, data_type from information_schema.columns "
                               "where table_schema = 'marts' and table_name = 'fct_invoices'"))
    assert {types[c] for c in ("amount_gross", "vat_amount", "amount_net", "amount_paid", "amount_due")} == {
        "DECIMAL(18,2)"}


def test_another_reporting_currency_goes_through_each_sources_own_rates(loaded):
    # runs last: it rebuilds the marts with reporting_currency USD
    from decimal import ROUND_HALF_UP

    world, workdir = loaded
    assert_ok(workdir.cli("models", "--vars", '{"reporting_currency": "USD", "as_of": "2026-11-20"}'))
    # only the planted invoice in a currency without any rate stays unconverted
    missing = truth.exceptions(world, SYSTEMS)
    assert workdir.query("select 'missing_fx_rate', invoice_key from marts.fct_invoices "
                         "where fx_rate_to_reporting is null") == [r for r in missing if r[0] == "missing_fx_rate"]
    usd = world.rate("USD", world.today)  # what SalesMan's currency/list says today: RUB per USD
    rate = (Decimal(1) / usd).quantize(Decimal("0.00000001"), ROUND_HALF_UP)
    rows = workdir.query("select amount_gross, fx_rate_to_reporting, amount_gross_reporting, fx_rate_source "
                         "from marts.fct_invoices where source_system = 'salesman'")
    assert rows and all(fx == rate for _g, fx, _r, _s in rows)
    assert all(r == (g * rate).quantize(Decimal("0.01"), ROUND_HALF_UP) for g, _fx, r, _s in rows)
    assert all("divided by the salesman rate of USD to RUB" in s for *_x, s in rows)
    same = workdir.query("select distinct fx_rate_to_reporting, fx_rate_source from marts.fct_invoices "
                         "where currency = 'USD'")
    assert same == [(Decimal("1.00000000"), "same currency")]
