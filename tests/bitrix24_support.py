"""Shared helpers of the Bitrix24 tests (no tests here): sandbox settings, CLI runs, marts vs the truth."""

from __future__ import annotations

from crm_invoices.sandbox.bitrix24 import expected_invoices, expected_lines, expected_payments

FCT_COLUMNS = ["invoice_key", "source_system", "account", "invoice_number", "deal_id", "client_id", "client_name",
               "issue_date",
               "due_date", "paid_date", "status", "currency", "amount_gross", "vat_amount", "amount_net",
               "vat_rate", "amount_paid", "amount_due", "is_deleted", "fx_rate_to_reporting"]
LINE_COLUMNS = ["invoice_key", "line_number", "product_name", "quantity", "unit_price", "vat_rate", "vat_amount",
                "amount_net", "amount_gross"]
PAYMENT_COLUMNS = ["payment_key", "invoice_key", "paid_date", "amount", "currency", "is_derived"]
# A fast portal for tests (the default bucket is 2 requests/s); the client is told the same.
FAST_PORTAL = {"requests_per_second": 200.0, "burst": 200}
FAST_CLIENT = {"SOURCES__BITRIX24__REQUESTS_PER_SECOND": "200", "SOURCES__BITRIX24__BURST": "200"}
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


def assert_marts_match_truth(workdir, world, unknowable: frozenset[str] = frozenset()) -> list[dict]:
    """``unknowable``: invoice keys whose lines and payments no run could read (deleted between the list and
    the detail calls); their invoices are compared on what the list gave."""
    expected = expected_invoices(world)
    got = workdir.query_dicts(f"select {', '.join(FCT_COLUMNS)} from marts.fct_invoices "
                              "where source_system = 'bitrix24'")
    detail = {"paid_date", "vat_rate", "amount_paid", "amount_due", "status"}
    assert diff_rows([r for r in got if r["invoice_key"] not in unknowable],
                     [e for e in expected if e["invoice_key"] not in unknowable], "invoice_key", FCT_COLUMNS) == []
    assert diff_rows([r for r in got if r["invoice_key"] in unknowable],
                     [e for e in expected if e["invoice_key"] in unknowable], "invoice_key",
                     [c for c in FCT_COLUMNS if c not in detail]) == []
    lines = workdir.query_dicts(f"select {', '.join(LINE_COLUMNS)} from marts.fct_invoice_lines "
                                "where source_system = 'bitrix24'")
    assert diff_rows(lines, [e for e in expected_lines(world) if e["invoice_key"] not in unknowable],
                     ("invoice_key", "line_number"), LINE_COLUMNS) == []
    payments = workdir.query_dicts(f"select {', '.join(PAYMENT_COLUMNS)} from marts.fct_payments "
                                   "where source_system = 'bitrix24'")
    assert diff_rows(payments, [e for e in expected_payments(world) if e["invoice_key"] not in unknowable],
                     "payment_key", PAYMENT_COLUMNS) == []
    return expected


def untouched(workdir) -> dict:
    """The warehouse file and Bitrix24's dlt state, byte for byte (from Workdir.files_bytes)."""
    keep = {workdir.db, workdir.data / "pipelines" / "crm_invoices_bitrix24" / "state.json"}
    return {p: data for p, data in workdir.files_bytes().items() if p in keep}


def assert_failed_cleanly(proc, workdir, before: dict, *messages: str) -> None:
    """Exit 1 with a message naming Bitrix24, the cause and the fix, no traceback, and nothing written: the
    warehouse and the state are byte-identical to ``before``."""
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "crm-invoices: Bitrix24: " in proc.stderr and " Fix: " in proc.stderr
    for message in messages:
        assert message in proc.stderr
    assert untouched(workdir) == before


def arm(provider, at: int, **faults) -> None:
    """From the provider's request number ``at`` on (counted since ``reset_counts``), the given faults fire."""
    fired = []

    def hook(prov, request, n):
        if n >= at and not fired:
            fired.append(n)
            for name, value in faults.items():
                setattr(prov.faults, name, value)

    provider.faults.on_request = hook
