"""Bad input gets a clear error and loses nothing: wrong key or login, dead host, malformed pages, 5xx."""

from __future__ import annotations

import socket

from crm_invoices.sandbox.salesman import expected_invoices

from tests.conftest import assert_ok


def snapshot(workdir) -> dict:
    """The warehouse file and the pipeline's state, byte for byte."""
    state = workdir.data / "pipelines" / "crm_invoices_salesman" / "state.json"
    return {"db": workdir.db.read_bytes() if workdir.db.exists() else None,
            "state": state.read_bytes() if state.exists() else None}


def live_totals(workdir):
    return workdir.query("select count(*), sum(amount_gross), sum(amount_paid) from marts.fct_invoices "
                         "where not is_deleted")[0]


def test_wrong_api_key_fails_clearly_and_touches_nothing(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 20})
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    before = snapshot(workdir)
    wrong = "WRONG-KEY-7f3a9c"
    proc = workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox,
                       env={"SOURCES__SALESMAN__API_KEY": wrong})
    assert proc.returncode == 1
    assert ("crm-invoices: SalesMan: the API rejected the credentials (error 401: Неизвестный пользователь). "
            "Fix: check SOURCES__SALESMAN__API_KEY") in proc.stderr
    assert "SOURCES__SALESMAN__LOGIN" in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    assert snapshot(workdir) == before


def test_wrong_login_on_a_fresh_machine_creates_no_warehouse(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 5})
    proc = workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox,
                       env={"SOURCES__SALESMAN__LOGIN": "nobody@example.com"})
    assert proc.returncode == 1
    assert "SalesMan: the API rejected the credentials (error 401" in proc.stderr
    assert not workdir.db.exists()


def test_a_400_for_a_wrong_key_is_understood_too(make_sandbox, workdir):
    # the doc says 400 for a wrong key, the self-hosted build answers 401: both are credential errors
    sandbox = make_sandbox(invoices={"salesman": 5}, salesman={"wrong_key_code": 400})
    proc = workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox,
                       env={"SOURCES__SALESMAN__API_KEY": "nope-nope"})
    assert proc.returncode == 1
    assert "SalesMan: the API rejected the credentials (error 400: Не верный API key)" in proc.stderr


def test_dead_host_fails_clearly_and_touches_nothing(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 10})
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    before = snapshot(workdir)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    proc = workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox,
                       env={"SOURCES__SALESMAN__BASE_URL": dead})
    assert proc.returncode == 1
    assert f"SalesMan: cannot reach the API at {dead}/developer/v3/invoice/list (ConnectionError" in proc.stderr
    assert "Fix: check SOURCES__SALESMAN__BASE_URL" in proc.stderr
    assert snapshot(workdir) == before


def test_malformed_page_commits_nothing_and_the_next_run_recovers(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 40}, salesman={"page_size": 6})
    provider = sandbox["salesman"]
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    before_totals = live_totals(workdir)
    before = snapshot(workdir)
    # changes that a partial commit would reveal: a new invoice and a deletion
    provider._add({"did": 4, "invoice": "N-1", "summa": "777.77", "date": "2026-11-01"}, express=False)
    victim = next(i for i in sandbox.world.invoices["salesman"] if not i.deleted and not i.payments)
    provider.delete_invoice(victim.id)
    provider.faults.only_methods = {"invoice/list"}

    def cut_page_three(prov, request, n):  # page 3 is cut in half on every attempt
        if b'"offset": 3' in request.body:
            prov.faults.truncate_next = 1

    provider.faults.on_request = cut_page_three
    proc = workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox)
    assert proc.returncode == 1
    assert "SalesMan: invoice/list returned a malformed page (not a complete JSON object" in proc.stderr
    assert snapshot(workdir) == before
    assert live_totals(workdir) == before_totals

    provider.faults.on_request = None
    provider.faults.truncate_next = 0
    assert_ok(workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox))
    expected = {e["invoice_key"]: e for e in expected_invoices(sandbox.world)}
    got = {k: (g, p, d) for k, g, p, d in workdir.query(
        "select invoice_key, amount_gross, amount_paid, is_deleted from marts.fct_invoices")}
    assert got == {k: (e["amount_gross"], e["amount_paid"], e["is_deleted"]) for k, e in expected.items()}
    assert got["salesman:sandbox:4:N-1"][0] == expected["salesman:sandbox:4:N-1"]["amount_gross"]


def test_transient_errors_are_retried_within_the_run(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 15}, salesman={"page_size": 4})
    faults = sandbox["salesman"].faults
    faults.fail_next, faults.nonjson_next = 1, 1  # a 500, then a PHP fatal error page, then fine
    proc = workdir.cli("run", "--sources", "salesman", "--no-progress", sandbox=sandbox)
    assert_ok(proc)
    assert faults.fail_next == 0 and faults.nonjson_next == 0
    expected = expected_invoices(sandbox.world)
    assert live_totals(workdir)[0] == len(expected)


def test_api_key_appears_nowhere(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 10})
    key = sandbox["salesman"].account.api_key
    proc = workdir.cli("run", "--sources", "salesman", sandbox=sandbox)  # with progress output
    assert_ok(proc)
    assert key not in proc.stdout + proc.stderr
    leaks = [str(p) for p, data in workdir.files_bytes().items() if key.encode() in data]
    assert leaks == []
