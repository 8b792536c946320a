"""Shared helpers of the Bitrix24 tests (no tests here): sandbox settings, CLI runs, marts vs the truth."""

from __future__ import annotations

from sandbox.bitrix24 import expected_invoices, expected_lines, expected_payments

FCT_COLUMNS = ["invoice_key", "source_system", "account", "invoice_number", "deal_id", "client_id", "client_name",
               "issue_date",
               "due_date", "paid_date", "status", "currency", "amount_gross", "vat_amount", "amount_net",
               "vat_rate", "amount_paid", "amount_due", "is_deleted", "fx_rate_to_reporting"]
LINE_COLUMNS = ["invoice_key", "line_number", "product_name", "quantity", "unit_price", "vat_rate", "vat_amount",
                "amount_net", "amount_gross"]
PAYMENT_COLUMNS = ["payment_key", "invoice_key", "paid_date", "amount", "currency", "is_derived"]
# A fast portal for tests (the default bucket is 2 requests/s); the client is told the same.
FAST_PORTAL = {"requests_per_second": 200.0, "burst": 200}
FAST_CLIENT = {"SOURCES__BITRIX24__REQUESTS_PER_SECOND": "200", "SOURCES__BITRIX24__BURST": "200",
               "SOURCES__BITRIX24__DELETE_SWEEP_HOURS": "0"}
SOURCES = "bitrix24"


def sandbox_for(make_sandbox, n: int, seed: int = 7, **portal):
    return make_sandbox(invoices={"bitrix24": n}, seed=seed, bitrix24={**FAST_PORTAL, **portal})


def run(workdir, sandbox, *args, env=None):
    return workdir.cli("run", "--sources", SOURCES, "--no-progress", *args, sandbox=sandbox,
                       env={**FAST_CLIENT, **(env or {})})


def diff_rows(got: list[dict], expected: list[dict], key: str | tuple, columns: list[str]) -> list:
    def k(row):
        return tuple(row[c] for c in key) if isinstance(key, tuple) else row[key]
    got_by, exp_by = {k(r): r for r in got}, {k(r): r for r in expected}
    out: list = [("missing", x) for x in sorted(set(exp_by) - set(got_by))]
    out += [("unexpected", x) for x in sorted(set(got_by) - set(exp_by))]
    out += [(x, c, got_by[x][c], exp_by[x][c]) for x in sorted(set(exp_by) & set(got_by)) for c in columns
            if got_by[x][c] != exp_by[x][c]]
    return out


def assert_marts_match_truth(workdir, world) -> list[dict]:
    expected = expected_invoices(world)
    got = workdir.query_dicts(f"select {', '.join(FCT_COLUMNS)} from marts.fct_invoices "
                              "where source_system = 'bitrix24'")
    assert diff_rows(got, expected, "invoice_key", FCT_COLUMNS) == []
    lines = workdir.query_dicts(f"select {', '.join(LINE_COLUMNS)} from marts.fct_invoice_lines "
                                "where source_system = 'bitrix24'")
    assert diff_rows(lines, expected_lines(world), ("invoice_key", "line_number"), LINE_COLUMNS) == []
    payments = workdir.query_dicts(f"select {', '.join(PAYMENT_COLUMNS)} from marts.fct_payments "
                                   "where source_system = 'bitrix24'")
    assert diff_rows(payments, expected_payments(world), "payment_key", PAYMENT_COLUMNS) == []
    return expected
