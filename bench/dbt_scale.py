"""The dbt build over a big warehouse without waiting for a big load: ``python -m bench.dbt_scale``.

Which CRM's load is multiplied, and how, is its bench module's ``DBT_SCALE_COPY`` (``--source``, default
salesman, the only CRM that has one). Loading a million SalesMan invoices through the emulator takes most of an hour on two cores (the world alone
takes minutes to build), while the question here is only what ``crm-invoices models`` costs over a
million-invoice warehouse. So our CLI loads ``--seed-invoices`` (10,000) from the sandbox, and the warehouse's
raw SalesMan tables are then multiplied in DuckDB to ``--invoices`` (1,000,000): copy k of every row gets
``crid``/``did`` + k x 10^7 and the invoice number suffixed ``-k``, so every copy is a distinct invoice of a
distinct deal with the same amounts, dates, VAT and payment pattern as the rows the source loaded. The marts
then hold exactly ``copies`` x the seed's invoices (checked). Reported: wall, CPU (dbt's process tree), peak
RSS, and the slowest nodes from dbt's ``run_results.json``.

Usage: python -m bench.dbt_scale [--source salesman] [--invoices 1000000] [--seed-invoices 10000] [--commit REV]
       [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import tempfile
from pathlib import Path

from .common import Network, Server, duckdb_count, load_ours, measure_cli, result_row, use_commit

OFFSET = 10_000_000  # above any id the sandbox hands out


def multiply(db: Path, source: str, copies: int) -> None:
    """Copies 1 .. copies-1 of every row of the source's raw tables (its ``DBT_SCALE_COPY``) appended."""
    import duckdb

    plan = importlib.import_module(f"bench.{source}").DBT_SCALE_COPY
    schema = f"raw_{source}"
    with duckdb.connect(str(db)) as con:
        for table, (keys, suffixed) in plan.items():
            columns = [r[0] for r in con.execute(
                "select column_name from duckdb_columns() where schema_name = ? and table_name = ? "
                "order by column_index", [schema, table]).fetchall()]
            if not columns:
                continue
            select = ", ".join(f'"{c}" + k * {OFFSET} as "{c}"' if c in keys else
                               f""""{c}" || '-' || k as "{c}\"""" if c in suffixed else f'"{c}"' for c in columns)
            con.execute(f"create temp table seed as select * from {schema}.{table}")
            con.execute(f"insert into {schema}.{table} select {select} from seed, range(1, {copies}) r(k)")
            con.execute("drop table seed")


def slowest(workdir: Path, count: int = 8) -> str:
    results = next(workdir.glob("data/dbt/*/target/run_results.json"), None)
    if results is None:
        return ""
    nodes = sorted(json.loads(results.read_text())["results"], key=lambda r: -r["execution_time"])[:count]
    return "; ".join(f"{r['unique_id'].split('.')[2]} {r['execution_time']:.1f} s" for r in nodes)


def run(source: str, invoices: int, seed_invoices: int, work: Path) -> list[dict]:
    if invoices % seed_invoices:
        raise SystemExit("--invoices must be a multiple of --seed-invoices")
    copies = invoices // seed_invoices
    ours = work / "ours"
    with Server({source: seed_invoices}, {}) as server, Network(server, 0) as net:
        load_ours(source, ours, net)
    db = ours / "data" / "crm_invoices.duckdb"
    multiply(db, source, copies)
    m = measure_cli(ours, {}, "models")
    if m.returncode != 0:
        raise RuntimeError(f"models failed:\n{m.stderr[-3000:]}")
    built = duckdb_count(db, "marts.fct_invoices")
    if built != invoices:
        raise RuntimeError(f"expected {invoices:,} invoices in marts.fct_invoices, found {built:,}")
    summary = m.stdout.strip().splitlines()[-1] if m.stdout.strip() else ""
    return [result_row(source, f"dbt build, {copies} copies of a {seed_invoices:,}-invoice load", invoices, 0,
                       built, m, 0, None, f"{summary}; slowest nodes: {slowest(ours)}", kind="models")]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dbt_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="salesman", help="the CRM whose load is multiplied")
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--seed-invoices", type=int, default=10_000)
    parser.add_argument("--commit", default=None, help="measure the code of this commit, not the working tree")
    parser.add_argument("--json", type=Path, default=None, help="append the row as a JSON line to this file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crm-bench-dbt-"))
    try:
        if args.commit:
            use_commit(args.commit, work)
        rows = run(args.source, args.invoices, args.seed_invoices, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from .__main__ import table

    print(table(rows))
    if args.json:
        with args.json.open("a") as out:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


if __name__ == "__main__":
    main()
