"""One writer per warehouse: a second run, a `models` rebuild or a program that holds the DuckDB file gets a
clear refusal (exit 4) before any CRM is called, naming the holder; a dead holder never blocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from crm_invoices.pipelines.warehouse import EXIT_BUSY, lock_path

from tests.conftest import assert_ok
from tests.reliability_support import cli, world_sandbox


def _start_slow_run(workdir, sandbox) -> subprocess.Popen:
    sandbox["salesman"].faults.delay = 0.2  # every SalesMan page takes 0.2 s: the run holds the lock a while
    proc = subprocess.Popen([sys.executable, "-m", "crm_invoices.pipelines.cli", "run", "--no-progress", "--sources", "salesman"],
                            cwd=workdir.path, env=workdir.env(sandbox), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads(lock_path(workdir.db).read_text() or "null")["pid"] == proc.pid:
                return proc
        except (OSError, ValueError, TypeError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the first run never took the warehouse lock")


def test_a_second_run_and_a_models_rebuild_refuse_while_a_run_writes(make_sandbox, workdir):
    slow = world_sandbox(make_sandbox, n=60)
    other = world_sandbox(make_sandbox, n=5, seed=3)
    first = _start_slow_run(workdir, slow)
    try:
        for args in (("run", "--no-progress"), ("models",)):
            second = workdir.cli(*args, sandbox=other)
            assert (second.returncode, second.stdout) == (EXIT_BUSY, "")
            assert second.stderr.startswith(
                f"crm-invoices: the warehouse {workdir.db} is being written by crm-invoices run (pid {first.pid} on ")
            assert ", started 20" in second.stderr and " UTC). Fix: wait for that run to finish" in second.stderr
            assert "Traceback" not in second.stderr
        assert other.count("salesman") + other.count("bitrix24") + other.count("onlyoffice") == 0
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]


def test_a_program_holding_the_duckdb_file_is_named_and_nothing_is_called(make_sandbox, workdir):
    sandbox = world_sandbox(make_sandbox, n=5)
    cli(workdir, sandbox, "run")
    sandbox.reset_counts()
    dashboard = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; "
                                  f"c = duckdb.connect({str(workdir.db)!r}, read_only=True); "
                                  "print('open', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert dashboard.stdout.readline() == "open\n"
        proc = workdir.cli("run", "--no-progress", sandbox=sandbox)
        assert proc.returncode == EXIT_BUSY
        assert f"crm-invoices: the warehouse {workdir.db} is open in another program (" in proc.stderr
        assert f", pid {dashboard.pid}): DuckDB lets no one write" in proc.stderr
        assert "Fix: close that program's connection" in proc.stderr and "Traceback" not in proc.stderr
        assert sandbox.count("salesman") + sandbox.count("bitrix24") + sandbox.count("onlyoffice") == 0
    finally:
        dashboard.kill()
        dashboard.wait()
    assert_ok(workdir.cli("run", "--no-progress", sandbox=sandbox))


def test_the_lock_of_a_killed_run_does_not_block_the_next_one(make_sandbox, workdir):
    sandbox = world_sandbox(make_sandbox, n=20)
    first = _start_slow_run(workdir, sandbox)
    os.kill(first.pid, 9)
    first.wait()
    assert json.loads(lock_path(workdir.db).read_text())["pid"] == first.pid  # the file stays behind
    sandbox["salesman"].faults.delay = 0
    assert_ok(workdir.cli("run", "--no-progress", "--sources", "salesman", sandbox=sandbox))


def test_a_warehouse_that_cannot_be_created_fails_clearly(make_sandbox, workdir, tmp_path):
    sandbox = world_sandbox(make_sandbox, n=5)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the warehouse's folder should be")
    db = blocker / "crm.duckdb"
    proc = workdir.cli("run", "--no-progress", sandbox=sandbox, env={"DESTINATION__DUCKDB__CREDENTIALS": str(db)})
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"crm-invoices: cannot write beside the warehouse {db} (")
    assert "Fix: make that directory writable" in proc.stderr and "Traceback" not in proc.stderr
    assert sandbox.count("salesman") + sandbox.count("bitrix24") + sandbox.count("onlyoffice") == 0


def test_a_full_disk_fails_clearly_and_the_next_run_with_room_equals_a_clean_load(make_sandbox, workdir, tmp_path):
    import resource
    import signal

    from tests.reliability_support import assert_same_facts, clean_load, facts

    sandbox = world_sandbox(make_sandbox, n=20)

    def little_room():  # every write past 64 KiB fails with EFBIG, as a full disk fails with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    env = workdir.env(sandbox, {"SOURCES__BITRIX24__REQUESTS_PER_SECOND": "200", "SOURCES__BITRIX24__BURST": "200"})
    proc = subprocess.run([sys.executable, "-m", "crm_invoices.pipelines.cli", "run", "--no-progress"], cwd=workdir.path, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=little_room)
    assert proc.returncode == 1, proc.stderr[-3000:]
    for crm in ("SalesMan", "Bitrix24", "ONLYOFFICE"):
        assert (f"crm-invoices: {crm}: no room to write the warehouse or dlt's working files (File too large). "
                "Fix: free disk space") in proc.stderr
    assert "Traceback" not in proc.stderr and "WARNING" not in proc.stderr  # dlt's own lines go to its log file
    assert (workdir.data / "logs" / "dlt.log").exists()
    cli(workdir, sandbox, "run")
    assert_same_facts(facts(workdir), clean_load(tmp_path, sandbox))
