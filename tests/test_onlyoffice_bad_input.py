"""Bad input gets a clear error naming ONLYOFFICE and loses nothing; credentials appear nowhere."""

from __future__ import annotations

import socket

from tests.conftest import assert_ok

RUN = ("run", "--sources", "onlyoffice", "--no-progress", "--skip-models")


def snapshot(workdir) -> dict:
    state = workdir.data / "pipelines" / "crm_invoices_onlyoffice" / "state.json"
    return {"db": workdir.db.read_bytes() if workdir.db.exists() else None,
            "state": state.read_bytes() if state.exists() else None}


def test_wrong_password_fails_clearly_touches_nothing_and_is_not_retried(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"onlyoffice": 12})
    assert_ok(workdir.cli(*RUN, sandbox=sandbox))
    before = snapshot(workdir)
    sandbox.reset_counts()
    wrong = "WRONG-pass-7f3a9c"
    proc = workdir.cli(*RUN, sandbox=sandbox, env={"SOURCES__ONLYOFFICE__PASSWORD": wrong})
    assert proc.returncode == 1
    assert ("crm-invoices: ONLYOFFICE: the portal rejected the username or password (HTTP 500: User authentication "
            "failed). Fix: set SOURCES__ONLYOFFICE__TOKEN to a valid API token, or SOURCES__ONLYOFFICE__USERNAME and "
            "SOURCES__ONLYOFFICE__PASSWORD") in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    assert sandbox.count("onlyoffice", "POST authentication") == 1  # a retry would only feed the brute-force lock
    assert snapshot(workdir) == before


def test_wrong_token_fails_with_the_401_explained(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"onlyoffice": 5})
    wrong = "token-that-is-not-valid-123"
    proc = workdir.cli(*RUN, sandbox=sandbox, env={"SOURCES__ONLYOFFICE__TOKEN": wrong,
                                                   "SOURCES__ONLYOFFICE__USERNAME": "",
                                                   "SOURCES__ONLYOFFICE__PASSWORD": ""})
    assert proc.returncode == 1
    assert ("ONLYOFFICE: the portal refused the credentials for crm/invoice/filter (HTTP 401 'Unauthorized'; the "
            "token is wrong, expired, or its sessions were logged out). Fix: set SOURCES__ONLYOFFICE__TOKEN") in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    assert not workdir.db.exists()


def test_missing_credentials_are_named(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"onlyoffice": 5})
    proc = workdir.cli(*RUN, sandbox=sandbox, env={"SOURCES__ONLYOFFICE__USERNAME": "",
                                                   "SOURCES__ONLYOFFICE__PASSWORD": ""})
    assert proc.returncode == 1
    assert "crm-invoices: ONLYOFFICE: no credentials are configured. Fix: set SOURCES__ONLYOFFICE__TOKEN" in proc.stderr


def test_dead_host_fails_clearly(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"onlyoffice": 5})
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    proc = workdir.cli(*RUN, sandbox=sandbox, env={"SOURCES__ONLYOFFICE__BASE_URL": dead})
    assert proc.returncode == 1
    assert (f"ONLYOFFICE: cannot reach the portal at {dead}/api/2.0/authentication.json (ConnectionError"
            in proc.stderr)
    assert "Fix: check SOURCES__ONLYOFFICE__BASE_URL" in proc.stderr


def test_malformed_page_commits_nothing_and_the_next_run_recovers(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"onlyoffice": 30})
    provider, world = sandbox["onlyoffice"], sandbox.world
    env = {"SOURCES__ONLYOFFICE__PAGE_SIZE": "10"}
    assert_ok(workdir.cli(*RUN, sandbox=sandbox, env=env))
    before = snapshot(workdir)
    provider.delete_invoice(world.invoices["onlyoffice"][3].id)  # a change a partial commit would reveal
    provider.faults.only_methods = {"invoice/filter"}

    def cut_second_page(prov, request, n):  # cut in half on every attempt
        if request.query.get("startIndex") == ["9"]:
            prov.faults.truncate_next = 1

    provider.faults.on_request = cut_second_page
    proc = workdir.cli(*RUN, sandbox=sandbox, env=env)
    assert proc.returncode == 1
    assert "ONLYOFFICE: crm/invoice/filter returned a malformed page (HTTP 200, not a complete JSON object" in proc.stderr
    assert snapshot(workdir) == before

    provider.faults.on_request = None
    assert_ok(workdir.cli(*RUN, sandbox=sandbox, env=env))
    assert workdir.query("select count(*) from raw_onlyoffice.invoice_deletions where is_deleted") == [(1,)]


def test_server_errors_are_retried_where_it_helps_and_reported_where_not(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"onlyoffice": 8})
    faults = sandbox["onlyoffice"].faults
    faults.fail_next, faults.fail_status = 1, 502  # a proxy hiccup: retried
    assert_ok(workdir.cli(*RUN, sandbox=sandbox))
    assert faults.fail_next == 0
    faults.only_methods = {"invoice/tax"}
    faults.fail_next, faults.fail_status, faults.fail_body = 99, 403, (
        b'{"status":1,"statusCode":403,"error":{"message":"Forbidden","hresult":0,"data":{}}}')
    proc = workdir.cli(*RUN, sandbox=sandbox)
    assert proc.returncode == 1
    assert "ONLYOFFICE: crm/invoice/tax answered HTTP 403 (Forbidden). Fix: the API user must be a CRM administrator" \
        in proc.stderr
    assert faults.fail_next == 98  # not retried


def test_password_and_tokens_appear_nowhere(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"onlyoffice": 10, "salesman": 2})
    provider = sandbox["onlyoffice"]
    proc = workdir.cli("run", "--sources", "salesman,onlyoffice", sandbox=sandbox)  # with progress and models
    assert_ok(proc)
    secrets = {provider.portal.password, provider.portal.token, *provider.tokens}
    assert len(secrets) == 3  # the password, the configured token, the token the run obtained
    for secret in secrets:
        assert secret not in proc.stdout + proc.stderr
        assert [str(p) for p, data in workdir.files_bytes().items() if secret.encode() in data] == []
