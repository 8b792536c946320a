"""A kill at one exact moment, found by the kill sweep: after dlt committed a SalesMan extract package (one that
holds a table the warehouse has not seen yet, the first deletion marks) but before it saved that package's
schema. dlt's normalizer then refused the pending package at every later run ("Table not found"), so the CRM
could never load again. The next run must drop that package, extract again, and leave facts equal to a clean
load's."""

from __future__ import annotations

import shutil

from crm_invoices.pipelines.accounts import Account
from crm_invoices.pipelines.registry import spec
from crm_invoices.pipelines.settings import temporary_env

from tests.conftest import Workdir, assert_ok
from tests.crash_sweep import make_sandbox, run_cli
from tests.reliability_support import facts, upstream_changes


def test_a_package_committed_without_its_schema_is_extracted_again(tmp_path):
    workdir = Workdir(tmp_path / "killed")
    clean = Workdir(tmp_path / "clean")
    for w in (workdir, clean):
        w.path.mkdir()
    with make_sandbox() as sandbox:
        assert run_cli(workdir, sandbox).returncode == 0
        upstream_changes(sandbox)  # a SalesMan deletion: the next extract adds invoice_row_deletions
        local = workdir.data / "pipelines" / "crm_invoices_salesman"
        saved = {p.name: p.read_bytes() for p in (local / "schemas").iterdir()}
        state = (local / "state.json").read_bytes()

        # the extract of the next run, in-process, then the kill's effect: the package is committed, while
        # the stored schema and the local state are still those from before it
        from crm_invoices.pipelines.runner import make_pipeline

        with temporary_env(workdir.env(sandbox)):
            pipeline = make_pipeline(Account(spec("salesman")), progress=False)
            pipeline.extract(Account(spec("salesman")).make_source(), loader_file_format="parquet")
        assert list(pipeline.list_extracted_load_packages())
        shutil.rmtree(local / "schemas")
        (local / "schemas").mkdir()
        for name, data in saved.items():
            (local / "schemas" / name).write_bytes(data)
        (local / "state.json").write_bytes(state)

        again = run_cli(workdir, sandbox)
        assert again.returncode == 0, again.stderr[-3000:]
        assert ("crm-invoices: SalesMan: a package left by an interrupted run could not be normalized "
                "(NormalizeJobFailed); dropped it, this run extracts everything it held again") in again.stderr
        assert_ok(workdir.cli("run", "--no-progress", "--skip-models", "--sources", "salesman", sandbox=sandbox))
        assert run_cli(clean, sandbox).returncode == 0  # this sandbox's clock: its own clean load
    assert_ok(workdir.cli("models"))
    assert facts(workdir) == facts(clean)
