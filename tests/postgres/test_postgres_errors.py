"""``--destination postgres`` when PostgreSQL cannot be used: wrong password, a server that is down, a database
that does not exist, no credentials at all, another writer holding the database. Each: exit code, a message that
names PostgreSQL and the setting to fix, the password nowhere, no CRM called, nothing loaded."""

from __future__ import annotations

import socket

import pytest
from crm_invoices.pipelines.warehouse import ADVISORY_KEY

from tests.conftest import Workdir

from .conftest import admin_connect, dsn_for, pg_query

SETTING = "DESTINATION__POSTGRES__CREDENTIALS"


def _run(workdir: Workdir, sandbox, dsn: str | None, *extra: str):
    env = {SETTING: dsn} if dsn else {}
    return workdir.cli("run", "--no-progress", "--destination", "postgres", *extra, sandbox=sandbox, env=env)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nothing_loaded(database: str) -> None:
    assert pg_query(database, "select schema_name from information_schema.schemata "
                              "where schema_name like 'raw%' or schema_name = 'marts'") == []


@pytest.mark.parametrize("case", ["wrong password", "server down", "no such database"])
def test_unusable_postgres_is_named_with_the_setting_to_fix(case, database, make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 5, "bitrix24": 5, "onlyoffice": 5})
    secret = "Wr0ng-Passw0rd"
    dsn, cause = {
        "wrong password": (dsn_for(database, password=secret), "the server refused the login (password "
                                                               "authentication failed for user"),
        "server down": (dsn_for(database, port=_closed_port()), "the server does not answer ("),
        "no such database": (dsn_for("crm_no_such_db"), 'database "crm_no_such_db" does not exist'),
    }[case]
    proc = _run(workdir, sandbox, dsn)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("crm-invoices: PostgreSQL: cannot use the PostgreSQL database "), proc.stderr
    assert cause in proc.stderr
    assert "Fix: " in proc.stderr and SETTING in proc.stderr and "nothing was loaded" in proc.stderr
    assert "Traceback" not in proc.stderr
    for text in (proc.stdout, proc.stderr):
        assert secret not in text and dsn_for(database).split("@")[0].split(":")[-1] not in text
    assert sandbox.count("salesman") + sandbox.count("bitrix24") + sandbox.count("onlyoffice") == 0
    _nothing_loaded(database)


def test_no_credentials_at_all(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 5})
    proc = _run(workdir, sandbox, None)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "crm-invoices: PostgreSQL: no complete credentials are configured (user, password, host and database). "
        f"Fix: set {SETTING} (postgresql://user:password@host:port/database) or [destination.postgres] "
        "credentials in .dlt/secrets.toml; nothing was loaded.")
    assert sandbox.count("salesman") == 0


def test_credentials_from_secrets_toml_load_and_never_leak(database, make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 6})
    dsn = dsn_for(database)
    (workdir.path / ".dlt").mkdir()
    (workdir.path / ".dlt" / "secrets.toml").write_text(f'[destination.postgres]\ncredentials = "{dsn}"\n')
    proc = _run(workdir, sandbox, None, "--sources", "salesman")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pg_query(database, "select count(*) from marts.fct_invoices") == [(6,)]
    password = dsn.split("@")[0].split(":")[-1]
    assert password not in proc.stdout + proc.stderr
    leaks = [p for p, data in workdir.files_bytes().items() if password.encode() in data]
    assert leaks == []


def test_a_second_writer_of_the_same_database_is_refused(database, make_sandbox, workdir):
    # another run (another folder, another machine) holds the writer lock of this database
    sandbox = make_sandbox(invoices={"salesman": 5})
    holder = admin_connect(database)
    try:
        with holder.cursor() as cur:
            cur.execute("set application_name = 'crm-invoices run (pid 4242 on elsewhere)'")
            cur.execute("select pg_advisory_lock(%s)", (ADVISORY_KEY,))
        proc = _run(workdir, sandbox, dsn_for(database))
    finally:
        holder.close()
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith(f"crm-invoices: the warehouse PostgreSQL database '{database}' at 127.0.0.1:")
    assert "is being written by crm-invoices run (pid 4242 on elsewhere) (server backend pid " in proc.stderr
    assert "this run called no CRM and changed nothing" in proc.stderr
    assert sandbox.count("salesman") == 0
    _nothing_loaded(database)
    # the holder is gone (its session ended): the next run loads
    proc = _run(workdir, sandbox, dsn_for(database), "--sources", "salesman")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pg_query(database, "select count(*) from marts.fct_invoices") == [(5,)]


def test_a_killed_run_leaves_no_lock_behind(database, make_sandbox, workdir):
    import os
    import signal
    import subprocess
    import sys
    import time

    sandbox = make_sandbox(invoices={"salesman": 8})
    env = workdir.env(sandbox, {SETTING: dsn_for(database)})
    proc = subprocess.Popen([sys.executable, "-m", "crm_invoices.pipelines.cli", "run", "--no-progress", "--destination",
                             "postgres", "--sources", "salesman"], cwd=workdir.path, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = proc.stderr.readline()  # the first line comes after the lock was taken
        assert line.startswith("loading SalesMan"), line
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    held = "select count(*) from pg_locks where locktype = 'advisory' and granted"
    for _ in range(100):  # the server ends the killed session once it sees the socket closed
        if pg_query(database, held) == [(0,)]:
            break
        time.sleep(0.1)
    again = _run(workdir, sandbox, dsn_for(database), "--sources", "salesman")
    assert again.returncode == 0, again.stderr[-3000:]
    assert pg_query(database, "select count(*) from marts.fct_invoices") == [(8,)]
