"""Money at its boundaries, through the real CLI over the sandbox: the largest amounts (999,999,999,999.99) at the
largest and smallest rates (1,000,000 and 0.000001) and in IRR, VND, KZT and JPY, credit notes, a zero total and
conversions that land exactly on half a kopeck, in every CRM (``World.generate(boundaries=True)``). The run and
the models in RUB, USD and EUR build without error and every mart equals the truth computed with Decimal, to the
kopeck, with the one rounding rule of the marts: half up (a tie goes away from zero).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest
from crm_invoices.sandbox import expected as truth
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import CENT, LARGEST, World

from tests import test_marts_end_to_end as e2e
from tests.conftest import Workdir, assert_ok

REPORTING = ["USD", "EUR", "RUB"]  # RUB last: the marts are left in the default reporting currency


def build(workdir: Workdir, reporting: str) -> None:
    assert_ok(workdir.cli("models", "--vars", json.dumps({"reporting_currency": reporting,
                                                           "as_of": e2e.AS_OF.isoformat()})))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    world = World.generate(seed=2026, invoices={s: 30 for s in e2e.SYSTEMS}, anomalies=True, boundaries=True)
    sandbox = Sandbox(world, salesman={"page_size": 10}).start()
    workdir = Workdir(tmp_path_factory.mktemp("money"))
    try:
        assert_ok(workdir.cli("run", "--no-progress", sandbox=sandbox))  # loads, then dbt build in RUB
        build(workdir, "RUB")  # with the fixed as_of of the truth
        yield world, workdir
    finally:
        sandbox.stop()


def keys_of(world: World) -> dict[tuple[str, int], str]:
    """(system, world id) -> invoice_key, for every invoice the marts hold."""
    numbers = {(s, i.number): i.id for s in e2e.SYSTEMS for i in world.invoices[s]}
    return {(row["source_system"], numbers[(row["source_system"], row["invoice_number"])]): row["invoice_key"]
            for row in truth.expected(world, "invoices", e2e.SYSTEMS)}


def test_every_boundary_invoice_reached_the_marts(loaded):
    world, workdir = loaded
    keys = keys_of(world)
    boundary = {keys[(b["system"], b["id"])] for b in world.boundaries}
    got = {k for (k,) in workdir.query("select invoice_key from marts.fct_invoices")}
    assert boundary <= got
    assert {b["system"] for b in world.boundaries} == set(e2e.SYSTEMS)


def test_rates_at_the_ends_of_the_range_survive_loading_exactly(loaded):
    _world, workdir = loaded
    got = dict(workdir.query("select currency, rate_to_base from intermediate.int_fx_rates "
                             "where source_system = 'bitrix24' and currency in ('VEF', 'XTS')"))
    assert got == {"VEF": Decimal("0.000001"), "XTS": Decimal("1000000")}


# the marts in the invoice's own currency: the same checks as over the everyday world
def test_fct_invoices_equal_the_truth(loaded):
    e2e.test_fct_invoices_equal_the_truth(loaded)


def test_fct_payments_equal_the_truth(loaded):
    e2e.test_fct_payments_equal_the_truth(loaded)


def test_fct_invoice_lines_equal_the_truth(loaded):
    e2e.test_fct_invoice_lines_equal_the_truth(loaded)


def test_vat_by_month_equals_the_truth(loaded):
    e2e.test_vat_by_month_equals_the_truth(loaded)


def test_ar_aging_equals_the_truth(loaded):
    e2e.test_ar_aging_equals_the_truth_as_of_a_fixed_date(loaded)


def test_money_identities_hold_and_stored_money_stays_decimal_18_2(loaded):
    e2e.test_money_identities_hold(loaded)


def test_credit_notes_zero_totals_and_unstorable_rates_are_exceptions_not_errors(loaded):
    world, workdir = loaded
    got = set(workdir.query("select rule, invoice_key from marts.rpt_reconciliation_exceptions"))
    assert got == truth.exceptions(world, e2e.SYSTEMS)
    keys = keys_of(world)
    credit = {keys[(b["system"], b["id"])] for b in world.boundaries if "credit note" in b["case"]}
    assert credit and credit <= {k for rule, k in got if rule == "non_positive_total"}
    assert not credit & {k for rule, k in got if rule == "payments_exceed_invoice"}


def test_the_largest_amounts_convert_without_overflow(loaded):
    _world, workdir = loaded
    rows = dict(workdir.query("select currency, amount_gross_reporting from marts.fct_invoices "
                              "where source_system = 'bitrix24' and amount_gross = ?", [LARGEST]))
    # 999,999,999,999.99 x 1,000,000 and x 0.000001 into RUB, exactly
    assert rows["XTS"] == Decimal("999999999999990000.00")
    assert rows["VEF"] == Decimal("1000000.00")
    assert workdir.query("select max(amount_gross), min(amount_gross) from marts.fct_invoices") == [(LARGEST, -LARGEST)]
    # the invoice that stopped the build: DECIMAL(18,2) x DECIMAL(18,8) overflowed 64 bits
    assert workdir.query("select fx_rate_to_reporting, amount_gross_reporting from marts.fct_invoices "
                         "where amount_gross = 37037036.70") == [(Decimal("93.23"), Decimal("3452962931.54"))]


@pytest.mark.parametrize("currency", REPORTING)
def test_every_conversion_equals_the_truth_to_the_kopeck(loaded, currency):
    # runs last: it rebuilds the marts in each reporting currency (RUB last)
    world, workdir = loaded
    build(workdir, currency)
    got = {k: (fx, amount) for k, fx, amount in workdir.query(
        "select invoice_key, fx_rate_to_reporting, amount_gross_reporting from marts.fct_invoices")}
    assert got == truth.reporting(world, currency, e2e.SYSTEMS)
    types = dict(workdir.query("select column_name, data_type from information_schema.columns where table_schema = "
                               "'marts' and table_name = 'fct_invoices'"))
    assert (types["fx_rate_to_reporting"], types["amount_gross_reporting"]) == ("DECIMAL(38,12)", "DECIMAL(38,2)")
    # a rate missing in one reporting currency is missing in every one: the exceptions do not move
    assert set(workdir.query("select rule, invoice_key from marts.rpt_reconciliation_exceptions")) == \
        truth.exceptions(world, e2e.SYSTEMS)

    # the half-kopeck cases of this reporting currency: half up, away from zero, where half even would differ
    keys = keys_of(world)
    ties = {keys[(b["system"], b["id"])] for b in world.boundaries if b["reporting"] == currency}
    rows = [(amount_gross, fx, converted) for k, amount_gross, fx, converted in workdir.query(
        "select invoice_key, amount_gross, fx_rate_to_reporting, amount_gross_reporting from marts.fct_invoices")
        if k in ties]
    assert len(rows) == len(ties) >= 4
    for gross, rate, converted in rows:
        exact = gross * rate
        assert abs(exact * 100) % 1 == Decimal("0.5")  # exactly half a kopeck
        assert converted == exact.quantize(CENT, ROUND_HALF_UP)
        assert converted != exact.quantize(CENT, ROUND_HALF_EVEN)  # the rule is visible
        assert abs(converted) > abs(exact)  # away from zero, credit notes too
