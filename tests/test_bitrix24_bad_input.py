"""Bitrix24 bad input and hostile conditions: wrong secret, dead host, batch errors, 503 storms, malformed
pages, expired OAuth tokens. Each failure is a clear message naming Bitrix24 and changes nothing."""

from __future__ import annotations

import json
import os
import socket
import stat

from tests.bitrix24_support import assert_marts_match_truth, run, sandbox_for
from tests.conftest import assert_ok


def snapshot(workdir) -> dict:
    """Bitrix24's raw tables and its pipeline state, as data (DuckDB rewrites its file on every open)."""
    state = workdir.data / "pipelines" / "crm_invoices_bitrix24" / "state.json"
    tables = [t for (t,) in workdir.query("select table_name from information_schema.tables "
                                          "where table_schema = 'raw_bitrix24' order by 1")] if workdir.db.exists() else []
    return {"tables": {t: sorted(map(str, workdir.query(f"select * from raw_bitrix24.{t}"))) for t in tables},
            "state": state.read_bytes() if state.exists() else None}


def leaks(workdir, proc, secret: str, allowed=()) -> list[str]:
    found = [str(p) for p, data in workdir.files_bytes().items() if secret.encode() in data and p not in allowed]
    if secret in proc.stdout + proc.stderr:
        found.append("cli output")
    return found


def test_wrong_webhook_secret_fails_clearly_leaks_nothing_and_touches_nothing(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 30)
    provider = sandbox["bitrix24"]
    assert_ok(run(workdir, sandbox, "--skip-models"))
    before = snapshot(workdir)
    wrong = "wr0ngS3cretValue77"
    url = f"{sandbox.base_url}/rest/{provider.portal.webhook_user}/{wrong}/"
    proc = run(workdir, sandbox, "--skip-models", env={"SOURCES__BITRIX24__WEBHOOK_URL": url})
    assert proc.returncode == 1
    assert ("crm-invoices: Bitrix24: the portal rejected the credentials (NO_AUTH_FOUND: Wrong authorization "
            "data). Fix: check SOURCES__BITRIX24__WEBHOOK_URL") in proc.stderr
    assert leaks(workdir, proc, wrong) == []
    assert snapshot(workdir) == before


def test_dead_host_and_malformed_url_fail_clearly(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/rest/1/deadSecret123/"
    proc = run(workdir, sandbox, "--skip-models", env={"SOURCES__BITRIX24__WEBHOOK_URL": dead})
    assert proc.returncode == 1
    assert "Bitrix24: cannot reach the portal at http://127.0.0.1:" in proc.stderr
    assert "/rest/1/***/" in proc.stderr and "deadSecret123" not in proc.stderr + proc.stdout
    assert "Fix: check SOURCES__BITRIX24__WEBHOOK_URL" in proc.stderr
    proc = run(workdir, sandbox, "--skip-models", env={"SOURCES__BITRIX24__WEBHOOK_URL": "https://b24.example/rest/"})
    assert proc.returncode == 1
    assert "Bitrix24: the webhook URL '***' is not of the form https://PORTAL/rest/USER_ID/SECRET/" in proc.stderr
    after = snapshot(workdir)
    assert after["tables"] == {} and b"cursor" not in (after["state"] or b"")


def test_batch_errors_fail_the_run_and_commit_nothing(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 60)
    provider = sandbox["bitrix24"]
    assert_ok(run(workdir, sandbox, "--skip-models"))
    before = snapshot(workdir)
    provider.fail_method("crm.item.payment.list", "ACCESS_DENIED", "Доступ запрещен", 403)
    proc = run(workdir, sandbox, "--skip-models")
    assert proc.returncode == 1
    assert ("Bitrix24: the portal refused crm.item.payment.list inside a batch (ACCESS_DENIED: Доступ запрещен)"
            in proc.stderr)
    provider.fail_method("crm.invoice.get", 0, "Недостаточно прав", 400)  # the integer 0 as an error code
    provider.failing.pop("crm.item.payment.list")
    proc = run(workdir, sandbox, "--skip-models")
    assert proc.returncode == 1
    assert "failed with 0: Недостаточно прав" in proc.stderr
    assert snapshot(workdir) == before


def test_503_storm_and_cut_pages_are_recovered_nothing_is_lost_and_the_webhook_secret_appears_nowhere(
        make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 150, seed=3)
    faults = sandbox["bitrix24"].faults
    faults.fail_next, faults.fail_status = 12, 503  # the portal answering 503 for a while
    faults.fail_body = b'{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}'
    faults.truncate_next = 2  # then two cut-off bodies (retried by dlt's client)
    proc = workdir.cli("run", "--sources", "bitrix24", sandbox=sandbox,  # with progress output
                       env={"SOURCES__BITRIX24__REQUESTS_PER_SECOND": "200", "SOURCES__BITRIX24__BURST": "200"})
    assert_ok(proc)
    assert faults.fail_next == 0 and faults.truncate_next == 0
    assert_marts_match_truth(workdir, sandbox.world)
    assert leaks(workdir, proc, sandbox["bitrix24"].portal.webhook_secret) == []


def test_default_client_pace_never_trips_the_portal_bucket(make_sandbox, workdir):
    # a portal with a small burst; the client told the same numbers paces itself below it
    sandbox = make_sandbox(invoices={"bitrix24": 200}, seed=5,
                           bitrix24={"requests_per_second": 20.0, "burst": 4})
    proc = workdir.cli("run", "--sources", "bitrix24", "--no-progress", "--skip-models", sandbox=sandbox,
                       env={"SOURCES__BITRIX24__REQUESTS_PER_SECOND": "20", "SOURCES__BITRIX24__BURST": "4"})
    assert_ok(proc)
    assert sandbox.count("bitrix24") > 4
    assert sandbox["bitrix24"].rate_limited == 0


def test_an_overrunning_client_gets_503s_and_still_loads_everything(make_sandbox, workdir):
    # a portal paced at 2 requests/s with no burst: a first load of 600 invoices is ~14 requests, which a
    # client that believes in 1000 requests/s sends faster than 2/s on any machine, so it must overrun; it
    # retries each refused request until the portal's bucket has drained (as many times as that takes here)
    sandbox = make_sandbox(invoices={"bitrix24": 600}, seed=5,
                           bitrix24={"requests_per_second": 2.0, "burst": 1})
    proc = workdir.cli("run", "--sources", "bitrix24", "--no-progress", "--skip-models", sandbox=sandbox,
                       env={"SOURCES__BITRIX24__REQUESTS_PER_SECOND": "1000", "SOURCES__BITRIX24__BURST": "1000",
                            "SOURCES__BITRIX24__RATE_LIMIT_RETRIES": "1000000"})
    assert_ok(proc)
    assert sandbox["bitrix24"].rate_limited > 0
    truth = [i for i in sandbox.world.invoices["bitrix24"] if i.kind == "smart"]
    loaded = workdir.query("select count(*), sum(opportunity) from raw_bitrix24.smart_invoices")
    assert loaded == [(len(truth), sum(i.totals()[2] for i in truth))]
    payments = workdir.query("select count(*) from raw_bitrix24.smart_invoice_payments")
    assert payments == [(sum(len(i.payments) for i in truth),)]


def test_oauth_expired_token_mid_run_refreshes_and_keeps_the_rotated_token_private(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 80, seed=9)
    provider = sandbox["bitrix24"]
    env = {"SOURCES__BITRIX24__WEBHOOK_URL": "", **provider.oauth_env(sandbox.base_url)}
    expired = []

    def expire_mid_run(prov, request, n):
        if n == 4 and not expired:
            expired.append(n)
            prov.expire_access_tokens()

    provider.faults.on_request = expire_mid_run
    proc = run(workdir, sandbox, "--skip-models", env=env)
    assert_ok(proc)
    assert expired and provider.refreshes == 2  # the first token of the run, then the one after expiry
    store = workdir.data / "secrets" / "bitrix24_oauth.json"
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    rotated = json.loads(store.read_text())["refresh_token"]
    assert rotated in provider.refresh_tokens and provider.portal.refresh_token not in provider.refresh_tokens

    # the configured refresh token is spent: the next run must use the stored one (access token still valid)
    provider.faults.on_request = None
    provider.expire_access_tokens()
    proc = run(workdir, sandbox, "--skip-models", env=env)
    assert_ok(proc)
    assert provider.refreshes == 3  # expired again: refreshed with the rotated token from the store
    smart = [i for i in sandbox.world.invoices["bitrix24"] if i.kind == "smart"]
    assert workdir.query("select count(*), sum(opportunity) from raw_bitrix24.smart_invoices") == [
        (len(smart), sum(i.totals()[2] for i in smart))]
    rotated = json.loads(store.read_text())["refresh_token"]
    for secret in (provider.portal.client_secret, provider.portal.refresh_token, rotated):
        assert leaks(workdir, proc, secret, allowed=(store,)) == []


def test_oauth_rejected_refresh_token_fails_clearly(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 5)
    provider = sandbox["bitrix24"]
    env = {"SOURCES__BITRIX24__WEBHOOK_URL": "", **provider.oauth_env(sandbox.base_url),
           "SOURCES__BITRIX24__REFRESH_TOKEN": "revoked-refresh-token-1"}
    proc = run(workdir, sandbox, "--skip-models", env=env)
    assert proc.returncode == 1
    assert ("Bitrix24: the OAuth server refused to refresh the access token (invalid_grant: Invalid refresh "
            "token). Fix: check SOURCES__BITRIX24__CLIENT_ID") in proc.stderr
    assert "revoked-refresh-token-1" not in proc.stdout + proc.stderr
