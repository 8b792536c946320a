"""The fault matrix, Bitrix24 column: the real CLI against the sandbox portal, each fault with its outcome.

Either the run recovers and the marts equal the truth to the kopeck, or it exits 1 with a message naming
Bitrix24, the cause and the fix, no traceback, and the warehouse file and the dlt state byte-identical to
before the run (then, the fault gone, the next run loads everything exactly: nothing was lost).
"""

from __future__ import annotations

import pytest

from tests.bitrix24_support import (
    arm,
    assert_failed_cleanly,
    assert_marts_match_truth,
    run,
    sandbox_for,
    untouched,
)
from tests.conftest import assert_ok

QUERY_LIMIT = b'{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}'
BATCH = {"batch"}  # the portal's data requests (not the OAuth server's)


def oauth(sandbox) -> dict:
    return {"SOURCES__BITRIX24__WEBHOOK_URL": "", **sandbox["bitrix24"].oauth_env(sandbox.base_url)}


def loaded_then_changed(make_sandbox, workdir, seed: int, oauth_app: bool = False):
    """A warehouse after a first load, upstream changes waiting (a new invoice, a payment, a deletion), the
    request count reset; returns the sandbox and the warehouse's bytes."""
    sandbox = sandbox_for(make_sandbox, 150, seed=seed)
    assert_ok(run(workdir, sandbox, "--skip-models", env=oauth(sandbox) if oauth_app else None))
    changed_upstream(sandbox["bitrix24"])
    sandbox.reset_counts()
    return sandbox, untouched(workdir)


def at_request(provider, number: int, action) -> None:
    provider.faults.on_request = lambda prov, request, n: action(prov) if n == number else None


def changed_upstream(provider) -> None:
    provider.add_invoice("smart")
    inv = next(i for i in provider.world.invoices["bitrix24"]
               if i.kind == "smart" and i.status == "issued" and not i.payments and not i.deleted)
    provider.pay(inv.id, inv.totals()[2])
    provider.delete_invoice(next(i for i in provider.world.invoices["bitrix24"]
                                 if i.kind == "legacy" and not i.deleted).id)


# ---- recovered: transient faults in the middle of a first load --------------------------------------------
TRANSIENT = {
    "http_500": dict(fail_next=2, fail_status=500),
    "http_502": dict(fail_next=2, fail_status=502, fail_body=b"<html><body>502 Bad Gateway</body></html>"),
    "http_504": dict(fail_next=2, fail_status=504, fail_body=b"<html><body>504 Gateway Time-out</body></html>"),
    "reset_mid_body": dict(reset_next=2),
    "read_timeout": dict(stall_next=1, stall_seconds=3.0),
    "truncated_json": dict(truncate_next=2),
    "html_page_with_200": dict(nonjson_next=2),
    "query_limit_storm": dict(fail_next=25, fail_status=503, fail_body=QUERY_LIMIT),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_fault_mid_run_is_recovered_with_exact_data(make_sandbox, workdir, fault):
    sandbox = sandbox_for(make_sandbox, 150, seed=21)
    provider = sandbox["bitrix24"]
    arm(provider, 2, only_methods=BATCH, **TRANSIENT[fault])  # the opening batch passes, the next ones fail
    assert_ok(run(workdir, sandbox, env={"SOURCES__BITRIX24__REQUEST_TIMEOUT": "1"}))
    counters = ("fail_next", "reset_next", "stall_next", "truncate_next", "nonjson_next")
    assert all(getattr(provider.faults, c) == 0 for c in counters)  # every injected fault was met
    assert_marts_match_truth(workdir, sandbox.world)


def test_access_token_expiring_mid_run_and_inside_a_batch_is_refreshed_with_exact_data(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 150, seed=22)
    provider = sandbox["bitrix24"]

    def expire(prov, request, n):
        if n == 3:  # between two requests: the next one answers 401 expired_token
            prov.expire_access_tokens()
        if n == 5:  # while the portal works through this batch: its later commands answer expired_token
            prov.expire_in_batch_after = 7

    provider.faults.on_request = expire
    assert_ok(run(workdir, sandbox, env=oauth(sandbox)))
    assert provider.expire_in_batch_after is None
    assert provider.refreshes == 3  # the run's first token, then one refresh per expiry
    assert_marts_match_truth(workdir, sandbox.world)


# ---- failed cleanly: faults that outlast the retries, on a rerun over a loaded warehouse --------------------
PERSISTENT = {
    "http_500": (dict(fail_next=99, fail_status=500), "batch answered HTTP 500 after retries."),
    "http_502": (dict(fail_next=99, fail_status=502), "batch answered HTTP 502 after retries."),
    "http_504": (dict(fail_next=99, fail_status=504), "batch answered HTTP 504 after retries."),
    "reset_mid_body": (dict(reset_next=99), "broke off its answers mid-body after 3 attempts"),
    "read_timeout": (dict(stall_next=99, stall_seconds=2.0),
                     "did not answer within 1 s after 3 attempts (ReadTimeout). Fix: retry later; if the portal "
                     "is just slow, raise SOURCES__BITRIX24__REQUEST_TIMEOUT."),
    "truncated_json": (dict(truncate_next=99), "batch returned a malformed page (HTTP 200, not a complete JSON"),
    "html_page_with_200": (dict(nonjson_next=99), "batch returned a malformed page (HTTP 200, not a complete JSON "
                                                  "object: '<br /> <b>Fatal error</b>"),
    "query_limit_storm": (dict(fail_next=99, fail_status=503, fail_body=QUERY_LIMIT),
                          "batch: the portal kept answering 503 QUERY_LIMIT_EXCEEDED (too many requests) after 3 "
                          "waits. Fix: another application shares this portal's request limit"),
}


@pytest.mark.parametrize("fault", sorted(PERSISTENT))
def test_lasting_fault_fails_cleanly_and_the_next_run_loses_nothing(make_sandbox, workdir, fault):
    sandbox, before = loaded_then_changed(make_sandbox, workdir, 23)
    provider = sandbox["bitrix24"]
    faults, message = PERSISTENT[fault]
    arm(provider, 2, only_methods=BATCH, **faults)
    env = {"SOURCES__BITRIX24__REQUEST_TIMEOUT": "1", "SOURCES__BITRIX24__RATE_LIMIT_RETRIES": "3"}
    proc = run(workdir, sandbox, env=env)
    assert_failed_cleanly(proc, workdir, before, message)

    provider.faults.on_request, provider.faults.only_methods = None, None
    for counter in ("fail_next", "reset_next", "stall_next", "truncate_next", "nonjson_next"):
        setattr(provider.faults, counter, 0)
    assert_ok(run(workdir, sandbox))
    assert_marts_match_truth(workdir, sandbox.world)


def test_webhook_revoked_mid_run_fails_cleanly(make_sandbox, workdir):
    sandbox, before = loaded_then_changed(make_sandbox, workdir, 24)
    provider = sandbox["bitrix24"]
    old = provider.webhook_url(sandbox.base_url)
    at_request(provider, 2, lambda prov: prov.rotate_webhook_secret())  # an admin edited the webhook
    proc = run(workdir, sandbox, env={"SOURCES__BITRIX24__WEBHOOK_URL": old})
    assert_failed_cleanly(proc, workdir, before, "Bitrix24: the portal rejected the credentials (NO_AUTH_FOUND: "
                          "Wrong authorization data). Fix: check SOURCES__BITRIX24__WEBHOOK_URL: the webhook may have "
                          "been deleted, its secret rotated")
    assert "sbx4hook9q2w7e1r" not in proc.stderr + proc.stdout


def test_oauth_app_revoked_mid_run_fails_cleanly(make_sandbox, workdir):
    sandbox, before = loaded_then_changed(make_sandbox, workdir, 25, oauth_app=True)
    provider = sandbox["bitrix24"]
    at_request(provider, 2, lambda prov: prov.revoke_app())  # an admin uninstalled the app
    proc = run(workdir, sandbox, env=oauth(sandbox))
    assert_failed_cleanly(proc, workdir, before, "Bitrix24: the portal rejected the credentials (invalid_token: "
                          "Unable to get application by token). Fix: check SOURCES__BITRIX24__CLIENT_ID")


# ---- rows inserted, changed and deleted between page requests ---------------------------------------------
def test_rows_inserted_changed_and_deleted_between_page_requests_are_exact_after_the_next_run(
        make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 400, seed=26)
    provider, world = sandbox["bitrix24"], sandbox.world
    smart = sorted((i for i in world.invoices["bitrix24"] if i.kind == "smart"), key=lambda i: i.id)
    early_open = next(i for i in smart[:40] if i.status == "issued" and not i.payments)
    early_deleted, late_deleted = smart[41], smart[-3]
    inserted = []

    def mutate(prov, request, n):
        if n == 3:  # pages 1-2 of the smart export are read, the rest is not
            inserted.append(prov.add_invoice("smart"))
            prov.pay(early_open.id, early_open.totals()[2])  # a row already read changes
            prov.delete_invoice(early_deleted.id)  # a row already listed is deleted ...
            prov.delete_invoice(late_deleted.id)  # ... and one not read yet

    provider.faults.on_request = mutate
    one_page = {"SOURCES__BITRIX24__BATCH_CHAIN": "1"}  # one list page per request: pages far apart in time
    assert_ok(run(workdir, sandbox, "--skip-models", env=one_page))
    ids = {i for (i,) in workdir.query("select id from raw_bitrix24.smart_invoices")}
    assert inserted[0].id in ids and late_deleted.id not in ids and early_deleted.id in ids
    # deleted before any request reached it: for the warehouse it never existed (the truth drops it too)
    world.invoices["bitrix24"].remove(late_deleted)
    assert workdir.query("select count(*) - count(distinct id) from raw_bitrix24.smart_invoices") == [(0,)]

    # a rerun whose sweep spans several requests, with more changes between them
    provider.faults.on_request = None
    sandbox.reset_counts()
    later = []

    def mutate_rerun(prov, request, n):
        if n == 2:  # after the opening batch (changed rows and the sweep's first page)
            later.append(prov.add_invoice("smart"))
            prov.delete_invoice(smart[5].id)  # behind the sweep: found on the next run

    provider.faults.on_request = mutate_rerun
    assert_ok(run(workdir, sandbox, "--skip-models", env=one_page))
    assert later and sandbox.count("bitrix24") > 2
    provider.faults.on_request = None
    assert_ok(run(workdir, sandbox, env=one_page))
    # the invoice deleted after its list page and before its rows and payments were asked for: the marts
    # hold what the list gave, marked deleted, and no lines or payments (there was nothing left to read)
    gone_early = f"bitrix24:sandbox:SI:{early_deleted.id}"
    assert_marts_match_truth(workdir, world, unknowable=frozenset({gone_early}))
    assert workdir.query("select count(*) from marts.fct_invoice_lines where invoice_key = ?", [gone_early]) == [(0,)]
    deleted = {k for (k,) in workdir.query("select invoice_key from marts.fct_invoices where is_deleted")}
    assert deleted == {f"bitrix24:sandbox:SI:{i.id}" for i in (early_deleted, smart[5])}
