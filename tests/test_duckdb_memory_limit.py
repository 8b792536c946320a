"""DuckDB's memory cap for dlt's loads: 512 MB unless the user sets their own (DuckDB's default, 80 % of RAM, is
where a million-invoice first load peaked at 1.7 GB of RSS)."""

from __future__ import annotations

import os
import subprocess
import sys

# A load through the destination the CLI builds, then the cap its connection runs with, as DuckDB reports it.
PROBE = """
import sys
import dlt
from crm_invoices.pipelines import runner
pipeline = dlt.pipeline("probe", destination=runner.make_destination(), pipelines_dir=sys.argv[1] + "/pipelines",
                        dataset_name="probe")
pipeline.run([{"a": 1}], table_name="t")
with pipeline.sql_client() as client:
    print(client.execute_sql("select current_setting('memory_limit'), (select count(*) from t)")[0])
"""


def _probe(tmp_path, extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESTINATION__", "SOURCES__"))}
    (tmp_path / "data").mkdir()
    env.update({"CRM_INVOICES_DATA_DIR": str(tmp_path / "data"), "RUNTIME__DLTHUB_TELEMETRY": "false", **extra})
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_loads_run_with_a_512_mb_cap_by_default(tmp_path):
    assert _probe(tmp_path, {}) == "('488.2 MiB', 1)"  # 512 MB as DuckDB prints it, and the row is in


def test_a_users_own_cap_wins(tmp_path):
    assert _probe(tmp_path, {"DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "1GB"}'}) == \
        "('953.6 MiB', 1)"


def test_the_dbt_build_gets_the_same_cap(monkeypatch):
    from crm_invoices.pipelines.destination import dbt_env

    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", raising=False)
    assert dbt_env()["CRM_INVOICES_DUCKDB_MEMORY_LIMIT"] == "512MB"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "1GB"}')
    assert dbt_env()["CRM_INVOICES_DUCKDB_MEMORY_LIMIT"] == "1GB"
