"""State belongs to its warehouse: whatever a user does with the warehouse file or the working dir, the next
run loads exactly what the warehouse lacks and the marts equal a clean load of the same upstream.

Each test loads all three CRMs, so each situation is checked for every CRM at once."""

from __future__ import annotations

import shutil

from tests.reliability_support import (
    ALL,
    assert_same_facts,
    clean_load,
    cli,
    deleted_keys,
    facts,
    upstream_changes,
    world_sandbox,
)


def _dropped(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "local state dropped" in line]


def test_a_deleted_warehouse_with_an_old_working_dir_loads_everything_again(make_sandbox, workdir, tmp_path):
    sandbox = world_sandbox(make_sandbox)
    cli(workdir, sandbox, "run")
    upstream_changes(sandbox)
    workdir.db.unlink()
    proc = cli(workdir, sandbox, "run")
    assert len(_dropped(proc)) == len(ALL)  # each pipeline says why it did not trust its local state
    assert_same_facts(facts(workdir), clean_load(tmp_path, sandbox))
    assert deleted_keys(workdir) == set()  # a new warehouse never saw the deleted invoices


def test_a_new_warehouse_file_from_the_same_folder_gets_everything(make_sandbox, workdir, tmp_path):
    sandbox = world_sandbox(make_sandbox)
    cli(workdir, sandbox, "run")
    other = tmp_path / "elsewhere" / "test.duckdb"
    cli(workdir, sandbox, "run", env={"DESTINATION__DUCKDB__CREDENTIALS": str(other)})
    assert_same_facts(facts(workdir, other), clean_load(tmp_path, sandbox))
    assert_same_facts(facts(workdir), facts(workdir, other))  # the first one was left as it was


def test_two_warehouses_loaded_alternately_from_one_folder_each_equal_a_clean_load(make_sandbox, workdir,
                                                                                   tmp_path):
    sandbox = world_sandbox(make_sandbox)
    prod, test = workdir.db, tmp_path / "test" / "test.duckdb"
    on_test = {"DESTINATION__DUCKDB__CREDENTIALS": str(test)}
    cli(workdir, sandbox, "run")
    cli(workdir, sandbox, "run", env=on_test)
    gone = upstream_changes(sandbox, 1)
    cli(workdir, sandbox, "run")
    assert_same_facts(facts(workdir, prod), clean_load(tmp_path, sandbox, "clean1"))
    assert deleted_keys(workdir, prod) == {k for keys in gone.values() for k in keys}
    upstream_changes(sandbox, 2)
    cli(workdir, sandbox, "run", env=on_test)
    cli(workdir, sandbox, "run")
    reference = clean_load(tmp_path, sandbox, "clean2")
    assert_same_facts(facts(workdir, test), reference)
    assert_same_facts(facts(workdir, prod), reference)


def test_a_backup_older_than_the_local_state_restored_over_the_warehouse(make_sandbox, workdir, tmp_path):
    sandbox = world_sandbox(make_sandbox)
    cli(workdir, sandbox, "run")
    backup = tmp_path / "backup.duckdb"
    shutil.copy(workdir.db, backup)
    gone = upstream_changes(sandbox, 1)
    cli(workdir, sandbox, "run")
    upstream_changes(sandbox, 2)
    shutil.copy(backup, workdir.db)  # the restore: the file is older than what data/pipelines describes
    proc = cli(workdir, sandbox, "run")
    assert len(_dropped(proc)) == len(ALL)
    assert_same_facts(facts(workdir), clean_load(tmp_path, sandbox))
    # invoices deleted after the backup was taken are known to the backup, so they come back deleted
    assert {k for keys in gone.values() for k in keys} <= deleted_keys(workdir)


def test_a_wiped_working_dir_against_a_full_warehouse_restores_state_from_the_warehouse(make_sandbox, workdir,
                                                                                        tmp_path):
    sandbox = world_sandbox(make_sandbox)
    cli(workdir, sandbox, "run")
    gone = upstream_changes(sandbox)
    shutil.rmtree(workdir.data / "pipelines")
    proc = cli(workdir, sandbox, "run")
    assert _dropped(proc) == []  # nothing local to distrust: dlt restored each pipeline's state
    assert_same_facts(facts(workdir), clean_load(tmp_path, sandbox))
    # the restored state knew the deleted invoices: they are marked, not forgotten
    assert deleted_keys(workdir) == {k for keys in gone.values() for k in keys}


def test_full_refresh_of_one_crm_leaves_the_others_state_and_rows_alone(make_sandbox, workdir, tmp_path):
    sandbox = world_sandbox(make_sandbox)
    cli(workdir, sandbox, "run")
    others = ("bitrix24", "onlyoffice")

    def raw(system: str) -> dict:
        tables = [t for (t,) in workdir.query("select table_name from information_schema.tables where "
                                              f"table_schema = 'raw_{system}' and table_name not like '_dlt%'")]
        return {t: sorted(map(repr, workdir.query(f"select * from raw_{system}.{t}"))) for t in tables}

    def state(system: str) -> bytes:
        return (workdir.data / "pipelines" / f"crm_invoices_{system}" / "state.json").read_bytes()

    before = {s: (raw(s), state(s)) for s in others}
    cli(workdir, sandbox, "run", "--sources", "salesman", "--full-refresh")
    assert {s: (raw(s), state(s)) for s in others} == before
    assert_same_facts(facts(workdir), clean_load(tmp_path, sandbox))


def test_dbt_artifacts_live_with_their_warehouse(make_sandbox, workdir, tmp_path):
    sandbox = world_sandbox(make_sandbox, n=5)
    other = tmp_path / "other.duckdb"
    cli(workdir, sandbox, "run")
    cli(workdir, sandbox, "run", env={"DESTINATION__DUCKDB__CREDENTIALS": str(other)})
    results = sorted(p.parent.parent.name for p in (workdir.data / "dbt").glob("*/target/run_results.json"))
    assert len(results) == 2 and results[0] != results[1]
    assert {r.split("-")[0] for r in results} == {"crm_invoices", "other"}
    assert not (workdir.path / "models").exists() and not (workdir.path / "logs").exists()


def test_an_unchanged_warehouse_and_working_dir_are_trusted(make_sandbox, workdir):
    sandbox = world_sandbox(make_sandbox, n=10)
    cli(workdir, sandbox, "run")
    sandbox.reset_counts()
    proc = cli(workdir, sandbox, "run")
    assert _dropped(proc) == []
    assert sandbox.count("salesman", "invoice/info") == 0  # the fingerprints were trusted: no detail re-read
