"""The fault matrix, SalesMan column: the real CLI against the emulator, each fault with its outcome.

Either the run recovers and the marts equal the truth to the kopeck, or it exits 1 with a message naming
SalesMan, the cause and the fix, no traceback, and the warehouse file and the dlt state byte-identical to
before the run (then, the fault gone, the next run loads everything exactly: nothing was lost).
"""

from __future__ import annotations

import pytest

from tests.bitrix24_support import arm
from tests.conftest import assert_ok
from tests.test_faults_bitrix24 import TRANSIENT as BITRIX24_TRANSIENT
from tests.test_salesman_bad_input import snapshot
from tests.test_salesman_pipeline import assert_marts_match_truth

RUN = ("run", "--sources", "salesman", "--no-progress")
TIMEOUT = {"SOURCES__SALESMAN__REQUEST_TIMEOUT": "1"}
COUNTERS = ("fail_next", "reset_next", "stall_next", "truncate_next", "nonjson_next")
FATAL_PAGE = "object: '<br /> <b>Fatal error</b>"

# the transport faults every CRM meets (Bitrix24's own 503 storm aside)
TRANSIENT = {name: faults for name, faults in BITRIX24_TRANSIENT.items() if name != "query_limit_storm"}
PERSISTENT = {
    "http_500": (dict(fail_next=99, fail_status=500), "SalesMan: invoice/list answered HTTP 500 after retries."),
    "http_502": (dict(fail_next=99, fail_status=502), "SalesMan: invoice/list answered HTTP 502 after retries."),
    "http_504": (dict(fail_next=99, fail_status=504), "SalesMan: invoice/list answered HTTP 504 after retries."),
    "reset_mid_body": (dict(reset_next=99), "SalesMan: invoice/list: the connection broke in the middle of an "
                                            "answer, 3 times in a row"),
    "read_timeout": (dict(stall_next=99, stall_seconds=2.0),
                     "SalesMan: invoice/list did not answer within 1 s, 3 times in a row"),
    "truncated_json": (dict(truncate_next=99), "SalesMan: invoice/list returned a malformed page (not a complete "
                                               "JSON object"),
    "html_page_with_200": (dict(nonjson_next=99), f"SalesMan: invoice/list returned a malformed page (not a "
                                                  f"complete JSON {FATAL_PAGE}"),
}


def loaded_then_changed(make_sandbox, workdir, seed: int):
    """A warehouse after a first load, upstream changes waiting (a new invoice, a partial payment, an undone
    payment, a deletion), the request count reset; returns the sandbox and the warehouse's bytes."""
    sandbox = make_sandbox(invoices={"salesman": 120}, salesman={"page_size": 10}, seed=seed)
    provider = sandbox["salesman"]
    assert_ok(workdir.cli(*RUN, "--skip-models", sandbox=sandbox))
    provider._add({"did": 3, "invoice": "F-1", "summa": "2500.50", "date": "2026-11-10"}, express=False)
    row = next(r for r in provider.rows.values() if r.do == "no" and r.summa > 100)
    provider._do({"id": row.crid, "summa": str(row.summa / 4)})
    provider.undo_payment(next(r for r in provider.rows.values() if r.do == "on").crid)
    provider.delete_invoice(next(i for i in sandbox.world.invoices["salesman"] if not i.deleted).id)
    sandbox.reset_counts()
    return sandbox, snapshot(workdir)


def assert_failed_cleanly(proc, workdir, before: dict, message: str) -> None:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    line = next(line for line in proc.stderr.splitlines() if f"crm-invoices: {message}" in line)
    assert " Fix: " in line  # the cause, then what to do
    assert snapshot(workdir) == before


def disarm(provider) -> None:
    provider.faults.on_request, provider.faults.only_methods = None, None
    for counter in COUNTERS:
        setattr(provider.faults, counter, 0)


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_fault_mid_run_is_recovered_with_exact_data(make_sandbox, workdir, fault):
    sandbox = make_sandbox(invoices={"salesman": 120}, salesman={"page_size": 10}, seed=31)
    provider = sandbox["salesman"]
    arm(provider, 2, **TRANSIENT[fault])  # the first page passes, the next requests fail
    assert_ok(workdir.cli(*RUN, sandbox=sandbox, env=TIMEOUT))
    assert all(getattr(provider.faults, c) == 0 for c in COUNTERS)  # every injected fault was met
    assert_marts_match_truth(workdir, sandbox.world)


@pytest.mark.parametrize("fault", sorted(PERSISTENT))
def test_lasting_fault_fails_cleanly_and_the_next_run_loses_nothing(make_sandbox, workdir, fault):
    sandbox, before = loaded_then_changed(make_sandbox, workdir, 32)
    provider = sandbox["salesman"]
    faults, message = PERSISTENT[fault]
    arm(provider, 2, only_methods={"invoice/list"}, **faults)
    assert_failed_cleanly(workdir.cli(*RUN, sandbox=sandbox, env=TIMEOUT), workdir, before, message)

    disarm(provider)
    assert_ok(workdir.cli(*RUN, sandbox=sandbox))
    assert_marts_match_truth(workdir, sandbox.world)


def test_credentials_revoked_mid_run_fail_cleanly(make_sandbox, workdir):
    sandbox, before = loaded_then_changed(make_sandbox, workdir, 33)
    provider = sandbox["salesman"]
    key = provider.account.api_key

    def revoke(prov, request, n):
        if n == 3:  # an admin issued a new API key while the run was reading the list
            prov.account.api_key = "rotated-by-the-admin"

    provider.faults.on_request = revoke
    proc = workdir.cli(*RUN, sandbox=sandbox)
    assert_failed_cleanly(proc, workdir, before, "SalesMan: the API rejected the credentials (error 401: "
                          "Неизвестный пользователь). Fix: check SOURCES__SALESMAN__API_KEY")
    assert key not in proc.stdout + proc.stderr

    disarm(provider)
    assert_ok(workdir.cli(*RUN, sandbox=sandbox, env={"SOURCES__SALESMAN__API_KEY": "rotated-by-the-admin"}))
    assert_marts_match_truth(workdir, sandbox.world)


# one page after another (changes land between two pages), or the first page and then four at once (changes
# land between the first page and all the others)
@pytest.mark.parametrize("tie_order,parallel,at", [("stable", "1", 4), ("limit_dependent", "1", 5),
                                                   ("stable", "4", 2), ("limit_dependent", "4", 2)])
def test_rows_inserted_changed_and_deleted_between_page_requests(make_sandbox, workdir, tie_order, parallel, at):
    sandbox = make_sandbox(invoices={"salesman": 150}, salesman={"page_size": 10, "tie_order": tie_order}, seed=34)
    provider, world = sandbox["salesman"], sandbox.world
    assert_ok(workdir.cli(*RUN, "--skip-models", sandbox=sandbox))
    fired = []

    def mutate(prov, request, n):
        # while the list is being read: a new invoice, a payment that splits a row, an undone payment, a
        # deletion of a row already read and of one not read yet
        if prov.method_key(request) == "invoice/list" and n == at and not fired:
            fired.append(n)
            prov._add({"did": 5, "invoice": "M-1", "summa": "999.99", "date": "2026-11-12"}, express=False)
            ordered = sorted(prov.rows.values(), key=lambda r: (r.datum, r.crid))
            split = next(r for r in ordered[len(ordered) // 2:] if r.do == "no" and r.summa > 100)
            prov._do({"id": split.crid, "summa": str(split.summa / 3)})
            prov.undo_payment(next(r for r in ordered[5:] if r.do == "on").crid)
            prov.delete_invoice(ordered[1].world_id)
            prov.delete_invoice(ordered[-5].world_id)

    provider.faults.on_request = mutate
    sandbox.reset_counts()
    assert_ok(workdir.cli(*RUN, sandbox=sandbox, env={"SOURCES__SALESMAN__PARALLEL_REQUESTS": parallel}))
    assert fired
    assert_marts_match_truth(workdir, world)
    loaded = {c for (c,) in workdir.query("select crid from staging.stg_salesman__invoice_rows where not is_deleted")}
    assert loaded == set(provider.rows)
