"""Time to build the dbt marts (`crm-invoices models`) over a warehouse a source benchmark loaded."""

from __future__ import annotations

from pathlib import Path

from .common import duckdb_count, measure_cli, result_row


def run_one(workdir: Path, source: str, rtt_ms: float = 0) -> dict:
    """dbt build over ``<workdir>/data/crm_invoices.duckdb`` (our pipeline's warehouse)."""
    m = measure_cli(workdir, {}, "models")
    if m.returncode != 0:
        raise RuntimeError(f"models failed over {workdir}:\n{m.stderr[-3000:]}")
    invoices = duckdb_count(workdir / "data" / "crm_invoices.duckdb", "marts.fct_invoices")
    summary = m.stdout.strip().splitlines()[-1] if m.stdout.strip() else ""
    return result_row(source, "dbt build (all models + tests)", invoices, rtt_ms, invoices, m, 0, None,
                      f"over the {source} load; {summary}", kind="models")


def run(work: Path) -> list[dict]:
    """Every warehouse our pipeline loaded below ``work`` (<work>/<source>/.../ours/data/crm_invoices.duckdb)."""
    return [run_one(db.parent.parent, db.relative_to(work).parts[0])
            for db in sorted(work.glob("**/ours/data/crm_invoices.duckdb"))]
