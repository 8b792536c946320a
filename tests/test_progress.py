"""Quiet terminals (issue 11, goal 4): a normal run shows our progress and summary, dlt's counters go to the log."""

from __future__ import annotations

import io

import dlt
import duckdb
from crm_invoices.pipelines.progress import RunProgress

from .conftest import assert_ok


def test_a_normal_run_prints_no_dlt_counters_warnings_or_tracebacks_and_keeps_them_in_the_log(make_sandbox, workdir):
    sandbox = make_sandbox(invoices={"salesman": 30, "onlyoffice": 10, "bitrix24": 10})
    proc = workdir.cli("run", sandbox=sandbox)  # progress on, as a user runs it; models and report included
    assert_ok(proc)
    terminal = proc.stdout + proc.stderr
    for noise in ("Resources:", "Files:", "Jobs:", "Normalize ", "Extract ", "WARNING", "Traceback", "-----"):
        assert noise not in terminal, f"{noise!r} on the terminal:\n{terminal}"
    # what the terminal shows is ours: a line per CRM, the summary
    assert [line for line in proc.stderr.splitlines() if line.startswith("loading ")] == [
        "loading SalesMan ...", "loading Bitrix24 ...", "loading ONLYOFFICE ..."]
    assert "  salesman    ok" in proc.stdout
    log = (workdir.data / "logs" / "progress.log").read_text(encoding="utf-8")
    for step in ("Extract salesman", "Normalize salesman", "Load salesman", "Extract bitrix24", "Load onlyoffice"):
        assert step in log
    (loaded,), = workdir.query("select count(*) from raw_salesman.invoice_rows")
    assert loaded >= 30 and f"invoice_rows: {loaded}  | Time" in log  # dlt's own counter of the rows it loaded


def test_a_step_longer_than_the_period_shows_one_line_of_ours_with_the_rows_so_far(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_INVOICES_DATA_DIR", str(tmp_path / "data"))
    terminal = io.StringIO()
    progress = RunProgress("SalesMan", terminal=terminal, period=0.0)  # every update is "a whole period"

    @dlt.resource(name="invoice_rows")
    def rows():
        yield [{"id": i} for i in range(1200)]
        yield [{"id": i} for i in range(1200, 1500)]

    db = tmp_path / "w.duckdb"
    pipeline = dlt.pipeline("progress_test", destination=dlt.destinations.duckdb(str(db)), dataset_name="raw",
                            pipelines_dir=str(tmp_path / "p"), progress=progress)
    pipeline.run(rows())
    lines = terminal.getvalue().splitlines()
    assert lines, "no progress line"
    assert all(line.startswith("SalesMan: ") for line in lines)
    assert any(line.startswith("SalesMan: extracting, 1,500 rows so far (invoice_rows 1,500), ") for line in lines)
    assert any(line.startswith("SalesMan: loading into the warehouse, ") for line in lines)
    assert not any("Resources" in line or "_dlt" in line for line in lines)
    with duckdb.connect(str(db)) as con:
        assert con.execute("select count(*) from raw.invoice_rows").fetchone() == (1500,)
