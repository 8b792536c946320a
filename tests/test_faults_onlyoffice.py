"""The ONLYOFFICE column of the fault matrix (issue 8 §4): the real CLI against the emulator, one fault each.

Every fault ends one of two ways, and the test says which: recovered within the run, with the raw tables
equal to what the portal holds (``assert_raw_matches_portal``), or exit 1 with a message naming ONLYOFFICE,
the cause and the fix, no traceback, and the warehouse file and the dlt state byte for byte as before the run
(``assert_failed_cleanly``). Failures run on a second load, after an upstream change that a partial commit
would reveal. The marts over these raw tables are checked against the ground truth in
test_onlyoffice_pipeline.py; here the data only has to arrive whole.
"""

from __future__ import annotations

import re

import pytest
from crm_invoices.sandbox.onlyoffice.ledger import SENT, invoice_cost, oo_id, state
from crm_invoices.sandbox.world import q2

from tests.conftest import assert_ok
from tests.test_onlyoffice_bad_input import RUN, snapshot

ENV = "SOURCES__ONLYOFFICE__"
FIX_RETRY = "Fix: retry later"  # every transient fault that outlasts the retries ends with this advice


# ---- helpers ------------------------------------------------------------------------------------------------
def portal(make_sandbox, n: int = 24, seed: int = 7, **options):
    sandbox = make_sandbox(invoices={"onlyoffice": n}, seed=seed, onlyoffice=options)
    return sandbox, sandbox["onlyoffice"]


def on(provider, method: str, nth: int, action) -> list[int]:
    """Call ``action(provider)`` just before the ``nth`` request of ``method`` is answered. Returns the list
    of that method's request numbers, for counting."""
    seen: list[int] = []

    def hook(prov, request, n):
        if prov.method_key(request) == method:
            seen.append(n)
            if len(seen) == nth:
                action(prov)

    provider.faults.on_request = hook
    return seen


def at(provider, method: str, nth: int, **faults) -> list[int]:
    """From the ``nth`` request of ``method`` on, the given Faults fields are set (and fire on that method
    only, that request included)."""
    provider.faults.only_methods = {method}
    return on(provider, method, nth, lambda prov: [setattr(prov.faults, k, v) for k, v in faults.items()])


def deleted_ids(workdir) -> set[int]:
    if not workdir.query("select 1 from information_schema.tables where table_schema = 'raw_onlyoffice' "
                         "and table_name = 'invoice_deletions'"):
        return set()
    return {i for (i,) in workdir.query("select id from raw_onlyoffice.invoice_deletions where is_deleted")}


def portal_rows(sandbox) -> tuple[dict, dict]:
    """What the portal holds now, in the raw tables' columns: live invoices by id, their lines by id."""
    provider = sandbox["onlyoffice"]
    invoices, lines = {}, {}
    for inv in sandbox.world.invoices["onlyoffice"]:
        if inv.deleted:
            continue
        st = state(inv)
        invoices[oo_id(inv)] = (oo_id(inv), inv.number, st.status, invoice_cost(inv, provider.taxes)[0],
                                inv.currency, st.exchange_rate, inv.issue_date, inv.due_date, inv.client_id)
        for line, ol in zip(inv.lines, st.lines, strict=True):
            lines[ol.id] = (ol.id, oo_id(inv), line.quantity, line.unit_price, q2(ol.discount), ol.tax1 or None,
                            ol.tax2 or None, ol.sort_order)
    return invoices, lines


def assert_raw_matches_portal(workdir, sandbox, stale: dict | None = None) -> None:
    """Every live invoice and line exactly as the portal serves it (``stale``: ids whose row is expected to
    hold these older values instead), every deleted invoice marked, nothing doubled."""
    invoices, lines = portal_rows(sandbox)
    invoices.update(stale or {})
    gone = {oo_id(i) for i in sandbox.world.invoices["onlyoffice"] if i.deleted}
    assert deleted_ids(workdir) == gone
    got = {r[0]: r for r in workdir.query(
        "select id, number, status_id, cost, currency, exchange_rate, issue_date, due_date, contact_id "
        "from raw_onlyoffice.invoices")}
    assert {i: r for i, r in got.items() if i not in gone} == invoices
    got_lines = {r[0]: r for r in workdir.query(
        "select id, invoice_id, quantity, price, discount, tax1_id, tax2_id, sort_order "
        "from raw_onlyoffice.invoice_lines")}
    assert {i: r for i, r in got_lines.items() if r[1] not in gone} == lines
    assert workdir.query("select count(*) - count(distinct id) from raw_onlyoffice.invoices") == [(0,)]
    assert workdir.query("select count(*) - count(distinct id) from raw_onlyoffice.invoice_lines") == [(0,)]


def upstream_change(sandbox) -> None:
    """A deletion and a payment: what a partially committed failed run would show in the warehouse."""
    provider = sandbox["onlyoffice"]
    live = [i for i in sandbox.world.invoices["onlyoffice"] if not i.deleted]
    provider.delete_invoice(live[2].id)
    sent = next(i for i in live[3:] if state(i).status == SENT)
    provider.call("PUT", "invoice/status/4", {"invoiceids": [oo_id(sent)]})


def assert_failed_cleanly(proc, workdir, before: dict, *expected: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert re.search(r"^crm-invoices: ONLYOFFICE: .+ Fix: .+", proc.stderr, re.M), proc.stderr
    assert snapshot(workdir) == before  # neither the warehouse nor the dlt state moved


def run(workdir, sandbox, **env):
    return workdir.cli(*RUN, sandbox=sandbox, env={f"{ENV}{k}": str(v) for k, v in env.items()})


def loaded(make_sandbox, workdir, n: int = 24, **options):
    """A portal loaded once, then changed upstream: the starting point of every failure."""
    sandbox, provider = portal(make_sandbox, n, **options)
    assert_ok(run(workdir, sandbox))
    upstream_change(sandbox)
    return sandbox, provider, snapshot(workdir)


# ---- recovered within the run ---------------------------------------------------------------------------------
HTML_500 = b"<html><head><title>500 Internal Server Error</title></head><body>nginx</body></html>"
# a body cut off right after a "}": it looks like a complete object from both ends
CUT_AFTER_BRACE = b'{"count":1,"status":0,"statusCode":200,"response":{"invoiceLines":[{"id":1}]}'

TRANSIENT = {
    # fault: (method, nth request of it, Faults fields)
    "http_500_on_a_list_page": ("invoice/filter", 2, {"fail_next": 1, "fail_status": 500, "fail_body": HTML_500}),
    "http_502_on_a_detail_call": ("invoice/{id}", 5, {"fail_next": 2, "fail_status": 502}),
    "http_504_on_the_login": ("POST authentication", 1, {"fail_next": 1, "fail_status": 504}),
    "connection_reset_mid_body_of_a_list_page": ("invoice/filter", 2, {"reset_next": 1}),
    "connection_reset_mid_body_of_a_detail": ("invoice/{id}", 3, {"reset_next": 2}),
    "read_timeout_on_a_detail": ("invoice/{id}", 4, {"stall_next": 1, "stall_seconds": 8}),
    "truncated_json_list_page": ("invoice/filter", 3, {"truncate_next": 1}),
    "truncated_json_cut_after_a_brace": ("invoice/{id}", 6, {"fail_next": 1, "fail_status": 200,
                                                              "fail_body": CUT_AFTER_BRACE}),
    "html_error_page_with_http_200": ("invoice/filter", 2, {"nonjson_next": 2}),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_fault_is_recovered_within_the_run_with_exact_data(make_sandbox, workdir, fault):
    method, nth, faults = TRANSIENT[fault]
    sandbox, provider = portal(make_sandbox, 24)
    at(provider, method, nth, **faults)
    proc = run(workdir, sandbox, PAGE_SIZE=10, REQUEST_TIMEOUT=3)
    assert_ok(proc)
    armed = [k for k in ("fail_next", "reset_next", "stall_next", "truncate_next", "nonjson_next") if k in faults]
    assert [getattr(provider.faults, k) for k in armed] == [0] * len(armed)  # the fault did fire
    assert_raw_matches_portal(workdir, sandbox)
    assert sandbox.count("onlyoffice", "POST authentication") == 1 + (method == "POST authentication")


def test_503_storm_of_the_cloud_rate_limit_is_waited_out_without_using_up_retries(make_sandbox, workdir):
    # 20 requests in 3 s instead of the cloud's 500 in 10 s: 46 requests from 4 workers run into it
    sandbox, provider = portal(make_sandbox, 40, rate_limit=20, rate_window=3.0)
    proc = run(workdir, sandbox, REQUEST_MAX_ATTEMPTS=1)  # no retries at all: a 503 must not count as one
    assert_ok(proc)
    assert provider.throttled > 0
    assert re.search(r"ONLYOFFICE: the portal is rate-limiting \(HTTP 503\); waiting [123] s as its Retry-After asks",
                     proc.stderr)
    assert_raw_matches_portal(workdir, sandbox)
    # nothing was asked twice but the throttled requests: login, one list page, 40 details, 4 snapshots
    assert sandbox.count("onlyoffice") - provider.throttled == 1 + 1 + 40 + 4


def test_token_that_expires_mid_run_is_replaced_by_one_login_with_the_password(make_sandbox, workdir):
    sandbox, provider = portal(make_sandbox, 24)
    on(provider, "invoice/{id}", 5, lambda prov: prov.expire_tokens())
    proc = run(workdir, sandbox, TOKEN=provider.portal.token)  # the token wins; the password is the fallback
    assert_ok(proc)
    assert provider.expired == {provider.portal.token}
    assert sandbox.count("onlyoffice", "POST authentication") == 1  # four workers hit the 401, one logged in
    assert_raw_matches_portal(workdir, sandbox)
    assert provider.portal.token not in proc.stdout + proc.stderr


def test_rows_inserted_changed_and_deleted_between_page_requests(make_sandbox, workdir):
    sandbox, provider = portal(make_sandbox, 40, seed=3)
    assert_ok(run(workdir, sandbox, PAGE_SIZE=10))
    ids = sorted(oo_id(i) for i in sandbox.world.invoices["onlyoffice"])  # the list order (sortBy=id)
    by_id = {oo_id(i): i for i in sandbox.world.invoices["onlyoffice"]}
    later_sent = next(i for i in ids[25:] if state(by_id[i]).status == SENT)

    def between_pages(prov):  # before page 2 is answered; page 1 (rows 0-9) was read already
        prov.call("POST", "invoice", {
            "number": "INV-MID-RUN", "issueDate": "2026-11-20", "dueDate": "2026-11-30", "contactId": 3,
            "currency": "RUB", "invoiceLines": [{"invoiceItemID": 2, "invoiceTax1ID": 2, "quantity": 2,
                                                 "price": 1500.5}]})
        prov.call("PUT", "invoice/status/4", {"invoiceids": [later_sent]})  # a row not read yet changes
        prov.delete_invoice(by_id[ids[30]].id)  # a row not read yet goes away
        prov.delete_invoice(by_id[ids[4]].id)  # a row read already goes away: every offset after it shifts

    on(provider, "invoice/filter", 2, between_pages)
    sandbox.reset_counts()
    proc = run(workdir, sandbox, PAGE_SIZE=10)
    assert_ok(proc)
    assert "ONLYOFFICE: invoice/filter changed while it was read (attempt 1); reading it again" in proc.stderr
    assert_raw_matches_portal(workdir, sandbox)
    assert deleted_ids(workdir) == {ids[4], ids[30]}
    assert workdir.query("select status_id from raw_onlyoffice.invoices where id = ?", [later_sent]) == [(4,)]
    assert workdir.query("select count(*) from raw_onlyoffice.invoices where number = 'INV-MID-RUN'") == [(1,)]

    # A row changes behind the reader and nothing shifts: this run holds it as it was read, the next one
    # (its list row's fingerprint changed) fetches it again.
    early = next(i for i in ids[:9] if not by_id[i].deleted and state(by_id[i]).status == SENT)
    was = portal_rows(sandbox)[0][early]
    on(provider, "invoice/filter", 2, lambda prov: prov.call("PUT", "invoice/status/4", {"invoiceids": [early]}))
    assert_ok(run(workdir, sandbox, PAGE_SIZE=10))
    assert_raw_matches_portal(workdir, sandbox, stale={early: was})
    provider.faults.on_request = None
    sandbox.reset_counts()
    assert_ok(run(workdir, sandbox, PAGE_SIZE=10))
    assert_raw_matches_portal(workdir, sandbox)
    drafts = sum(1 for i in sandbox.world.invoices["onlyoffice"] if not i.deleted and state(i).status == 1)
    assert sandbox.count("onlyoffice", "invoice/{id}") == drafts + 1


# ---- failed cleanly -------------------------------------------------------------------------------------------
PERSISTENT = {
    # fault: (method, nth, Faults fields, what the message says)
    "http_500": ("invoice/filter", 2, {"fail_next": 99, "fail_status": 500, "fail_body": HTML_500},
                 "ONLYOFFICE: crm/invoice/filter failed with HTTP 500 after 3 attempts: Internal Server Error. "
                 + FIX_RETRY),
    "http_502": ("invoice/tax", 1, {"fail_next": 99, "fail_status": 502},
                 "ONLYOFFICE: crm/invoice/tax failed with HTTP 502 after 3 attempts: Bad Gateway. " + FIX_RETRY),
    "http_504": ("invoice/{id}", 1, {"fail_next": 99, "fail_status": 504},
                 "failed with HTTP 504 after 3 attempts: Gateway Timeout. " + FIX_RETRY),
    "connection_reset_mid_body": ("invoice/filter", 2, {"reset_next": 99},
                                  "ONLYOFFICE: the connection broke while crm/invoice/filter was being read (3 "
                                  "attempts; "),
    "read_timeout": ("invoice/filter", 1, {"stall_next": 99, "stall_seconds": 8},
                     "ONLYOFFICE: crm/invoice/filter did not answer within 2 s (3 attempts). Fix: raise "
                     "SOURCES__ONLYOFFICE__REQUEST_TIMEOUT if the portal is only slow, or retry later"),
    "truncated_json": ("invoice/filter", 2, {"truncate_next": 99},
                       "ONLYOFFICE: crm/invoice/filter returned a malformed page (HTTP 200, not a complete JSON "
                       "object: '{"),
    "html_error_page_with_http_200": ("invoice/{id}", 2, {"nonjson_next": 99},
                                      "returned a malformed page (HTTP 200, not a complete JSON object: '<br /> "
                                      "<b>Fatal error</b>:  Uncaught mysqli_sql_exception: Deadlock found when "
                                      "trying to get lock') on all 3 attempts. Fix: this is a server-side error; "
                                      "retry later."),
}


@pytest.mark.parametrize("fault", sorted(PERSISTENT))
def test_fault_that_outlasts_the_retries_fails_clearly_and_changes_nothing(make_sandbox, workdir, fault):
    method, nth, faults, message = PERSISTENT[fault]
    sandbox, provider, before = loaded(make_sandbox, workdir)
    for tax in (1, 2):  # a tax rate edit changes the cost of every invoice using it: details are fetched again
        provider.call("PUT", f"invoice/tax/{tax}", {"rate": 21})
    seen = at(provider, method, nth, **faults)
    # a short timeout only where the timeout is the fault: a loaded machine must not turn others into timeouts
    proc = run(workdir, sandbox, PAGE_SIZE=10, REQUEST_TIMEOUT=2 if "stall_next" in faults else 10)
    assert_failed_cleanly(proc, workdir, before, message)
    failed_calls = len(seen)
    provider.faults.on_request = None
    provider.faults.only_methods = None
    for name in ("fail_next", "reset_next", "stall_next", "truncate_next", "nonjson_next"):
        setattr(provider.faults, name, 0)
    sandbox.reset_counts()
    assert_ok(run(workdir, sandbox))  # the next run starts from the same state and loads everything
    assert_raw_matches_portal(workdir, sandbox)
    if method == "invoice/{id}":  # only the calls in flight went on; the queued ones were not each retried
        assert failed_calls <= 1 + 4 * 3 < sandbox.count("onlyoffice", "invoice/{id}") * 3


def test_503_storm_that_outlasts_the_allowed_waits_fails_clearly(make_sandbox, workdir):
    sandbox, provider, before = loaded(make_sandbox, workdir)
    on(provider, "invoice/filter", 1, lambda prov: setattr(prov.portal, "throttle_next", 99))
    proc = run(workdir, sandbox, RATE_LIMIT_WAITS=2)
    assert_failed_cleanly(proc, workdir, before,
                          "ONLYOFFICE: crm/invoice/filter was still rate-limited (HTTP 503, Retry-After 1 s) after "
                          "waiting as often as allowed. Fix: lower SOURCES__ONLYOFFICE__DETAIL_WORKERS, raise "
                          "SOURCES__ONLYOFFICE__RATE_LIMIT_WAITS")
    assert provider.throttled == 3  # the first answer and two waits


def test_expired_token_without_a_password_fails_clearly(make_sandbox, workdir):
    sandbox, provider, before = loaded(make_sandbox, workdir)
    provider.call("PUT", "invoice/tax/2", {"rate": 21})
    on(provider, "invoice/{id}", 3, lambda prov: prov.expire_tokens())
    proc = run(workdir, sandbox, TOKEN=provider.portal.token, USERNAME="", PASSWORD="")
    assert_failed_cleanly(proc, workdir, before, "ONLYOFFICE: the portal refused the credentials for crm/invoice/",
                          "(HTTP 401 'Unauthorized'; the token is wrong, expired, or its sessions were logged out). "
                          "Fix: set SOURCES__ONLYOFFICE__TOKEN to a valid API token")
    assert sandbox.count("onlyoffice", "POST authentication") == 1  # the first run's; this one had no password
    assert provider.portal.token not in proc.stdout + proc.stderr


def test_credentials_revoked_mid_run_fail_clearly_after_a_single_login_attempt(make_sandbox, workdir):
    sandbox, provider, before = loaded(make_sandbox, workdir)
    provider.call("PUT", "invoice/tax/2", {"rate": 21})
    old_password = provider.portal.password
    on(provider, "invoice/{id}", 3, lambda prov: prov.change_password("a-new-password-9d2f"))
    sandbox.reset_counts()
    proc = run(workdir, sandbox)
    assert_failed_cleanly(proc, workdir, before,
                          "answered HTTP 401 mid-run (the token expired or its sessions were logged out), and "
                          "logging in again failed: the portal rejected the username or password (HTTP 500: User "
                          "authentication failed). Fix: set SOURCES__ONLYOFFICE__TOKEN")
    # four workers hit the 401; one logged in again and was refused; nobody else tried (the brute-force lock)
    assert sandbox.count("onlyoffice", "POST authentication") == 2
    assert old_password not in proc.stdout + proc.stderr


def test_invoice_deleted_between_the_list_and_its_detail_call_is_marked_in_the_same_run(make_sandbox, workdir):
    sandbox, provider = portal(make_sandbox, 30, seed=5)
    assert_ok(run(workdir, sandbox))
    provider.call("PUT", "invoice/tax/1", {"rate": 21})  # most invoices changed: their details are fetched again
    live = [i for i in sandbox.world.invoices["onlyoffice"] if not i.deleted]
    victim = max((i for i in live if state(i).status == SENT), key=oo_id)
    assert sorted(map(oo_id, live)).index(oo_id(victim)) > 10  # far behind the first calls the workers make
    provider.call("PUT", "invoice/status/4", {"invoiceids": [oo_id(victim)]})  # changed for sure
    on(provider, "invoice/{id}", 1, lambda prov: prov.delete_invoice(victim.id))  # the list was read already
    sandbox.reset_counts()
    assert_ok(run(workdir, sandbox))
    assert sandbox.count("onlyoffice", "invoice/{id}") > 4  # the victim's call came after the first ones
    assert_raw_matches_portal(workdir, sandbox)
    marked = workdir.query("select id, deleted_at from raw_onlyoffice.invoice_deletions where is_deleted")
    assert [i for i, _at in marked] == [oo_id(victim)]
    provider.faults.on_request = None
    assert_ok(run(workdir, sandbox))  # the state knew: the next run marks nothing again
    assert workdir.query("select id, deleted_at from raw_onlyoffice.invoice_deletions where is_deleted") == marked
