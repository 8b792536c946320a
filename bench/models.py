"""Time to build the dbt marts over the data the source benchmarks loaded (their `ours` warehouses)."""

from __future__ import annotations

from pathlib import Path

from .common import duckdb_count, measure_cli, result_row


def run(work: Path) -> list[dict]:
    results = []
    # every warehouse our pipeline loaded (<work>/<source>/<our dir>/data/crm_invoices.duckdb)
    for db in sorted(work.glob("*/*/data/crm_invoices.duckdb")):
        workdir = db.parent.parent
        source = workdir.parent.name
        m = measure_cli(workdir, {}, "models")
        if m.returncode != 0:
            raise RuntimeError(f"models failed over {db}:\n{m.stderr[-3000:]}")
        invoices = duckdb_count(db, "marts.fct_invoices")
        results.append(result_row("dbt build (all models + tests)", f"models over the {source} load", invoices,
                                  invoices, m, 0, 0, m.stdout.strip().splitlines()[-1] if m.stdout else ""))
    return results
