"""``crm-invoices``: load the CRMs into DuckDB and build the finance marts.

Exit codes: 0 everything loaded and built; 1 a source failed (the others still loaded), or the warehouse
cannot be written; 2 the models failed; 3 bad usage; 4 the warehouse is busy (another run writes it, or a
program holds the DuckDB file open): the run refused before calling any CRM; 5 the report could not be
written (`report`, or the last step of `run`: no warehouse, no marts, an unwritable --out).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .settings import apply_runtime_defaults, database_path, redact_text

apply_runtime_defaults()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-invoices", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="load the sources, then build the models")
    run.add_argument("--sources", help="comma-separated sources to load (default: all available)")
    run.add_argument("--demo", action="store_true",
                     help="start the local sandbox on a free loopback port and point every source at it")
    run.add_argument("--demo-invoices", type=int, default=None,
                     help="with --demo: invoices per provider in the sandbox (default 90)")
    run.add_argument("--full-refresh", action="store_true",
                     help="drop the selected sources' raw tables and state, then load everything again")
    run.add_argument("--skip-models", action="store_true", help="load only; do not run dbt")
    run.add_argument("--no-progress", action="store_true", help="no periodic progress lines on stderr")
    _add_destination(run)
    models = sub.add_parser("models", help="rebuild the dbt models over what is loaded")
    models.add_argument("--vars", default=None, help="extra dbt vars as JSON, e.g. '{\"as_of\": \"2026-11-01\"}'")
    _add_destination(models)
    from .report.command import add_parser as add_report_parser

    add_report_parser(sub)
    _add_destination(sub.choices["report"])
    return parser


def _add_destination(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", choices=("duckdb", "postgres"), default=None,
                        help="the warehouse: duckdb (default, a local file) or postgres (dlt's "
                             "DESTINATION__POSTGRES__CREDENTIALS or .dlt/secrets.toml); see docs/WAREHOUSES.md")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "destination", None):  # before dlt or dbt read anything: the lock, dlt and dbt agree
        os.environ["CRM_INVOICES_DESTINATION"] = args.destination
    from .warehouse import WarehouseError, writer_lock

    if args.command == "report":  # a reader: no writer lock, a read-only connection
        from .destination import is_postgres
        from .report.command import report_command

        if is_postgres():
            print("crm-invoices: report: the HTML report reads a DuckDB warehouse; the PostgreSQL marts are the "
                  "tables of its schema `marts` (query them there). Fix: run `crm-invoices report` against a "
                  "DuckDB warehouse (--destination duckdb); see docs/WAREHOUSES.md.", file=sys.stderr)
            return 5
        return report_command(args)
    try:  # run and models write: one at a time per warehouse
        with writer_lock(args.command):
            return _run(args) if args.command == "run" else _models(args)
    except WarehouseError as exc:
        print(redact_text(str(exc)), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("crm-invoices: interrupted; nothing partial was committed.", file=sys.stderr)
        return 130


def _start_demo(invoices: int | None):
    from crm_invoices.sandbox.server import Sandbox
    from crm_invoices.sandbox.world import SYSTEMS, World

    # the demo account carries one case of each reconciliation rule, so the exceptions report shows them
    world = World.generate(invoices=dict.fromkeys(SYSTEMS, invoices)
                           if invoices else None, anomalies=True)
    sandbox = Sandbox(world).start()
    os.environ.update(sandbox.demo_env())
    print(f"sandbox: emulated CRMs at {sandbox.base_url}", file=sys.stderr)
    return sandbox


def _run(args) -> int:
    started = time.monotonic()
    sandbox = _start_demo(args.demo_invoices) if args.demo else None
    try:
        from .logs import route_dlt_logs
        from .runner import enabled_sources, run_source, selected_specs

        route_dlt_logs()

        names = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None
        try:
            specs = selected_specs(names)
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            return 3
        database_path().parent.mkdir(parents=True, exist_ok=True)
        outcomes = []
        for spec in specs:
            print(f"loading {spec.display} ...", file=sys.stderr)
            outcome = run_source(spec, full_refresh=args.full_refresh, progress=not args.no_progress)
            outcomes.append(outcome)
            if not outcome.ok:
                print(f"crm-invoices: {outcome.message}", file=sys.stderr)
        models_ok = True
        models_summary = "skipped"
        if not args.skip_models and any(o.ok for o in outcomes):
            from .models import build_models

            print("building models ...", file=sys.stderr)
            result = build_models(enabled_sources())
            models_ok = result.ok
            models_summary = f"{result.summary} in {result.seconds:.1f}s"
            if not result.ok:
                print(result.failure_text(), file=sys.stderr)
                print("crm-invoices: models: dbt build failed (see above). Fix: the raw data is loaded; "
                      "correct the model or data and run `crm-invoices models`.", file=sys.stderr)
        _print_summary(outcomes, models_summary, time.monotonic() - started)
        from .destination import is_postgres
        from .report.command import report_after_run

        if is_postgres():  # the report reads a DuckDB file (docs/WAREHOUSES.md)
            print("report: skipped (the HTML report reads a DuckDB warehouse; the marts are in PostgreSQL)")
            report_rc = 0
        else:
            report_rc = report_after_run(outcomes, models_skipped=args.skip_models)
        if not all(o.ok for o in outcomes):
            return 1
        return (0 if models_ok else 2) or report_rc
    finally:
        if sandbox is not None:
            sandbox.stop()


def _models(args) -> int:
    import json

    from .models import build_models
    from .runner import enabled_sources

    extra = json.loads(args.vars) if args.vars else None
    result = build_models(enabled_sources(), extra)
    if not result.ok:
        print(result.failure_text(), file=sys.stderr)
        print("crm-invoices: models: dbt build failed.", file=sys.stderr)
        return 2
    print(f"models: {result.summary} in {result.seconds:.1f}s")
    return 0


def _print_summary(outcomes, models_summary: str, seconds: float) -> None:
    from .destination import describe

    lines = [f"crm-invoices: {describe()}"]
    for o in outcomes:
        state = "ok" if o.ok else "FAILED"
        rows = ", ".join(f"{t}={n}" for t, n in sorted(o.rows.items())) or "no new rows"
        lines.append(f"  {o.name:<11} {state:<7} {o.seconds:6.1f}s  {rows}")
    lines.append(f"  models      {models_summary}")
    lines.extend(_mart_totals())
    lines.append(f"  elapsed     {seconds:.1f}s")
    print(redact_text("\n".join(lines)))


def _mart_totals() -> list[str]:
    from .destination import query

    try:
        rows = query("select source_system, currency, count(*), sum(amount_gross), sum(amount_paid), "
                     "sum(amount_due) from marts.fct_invoices where not is_deleted group by 1, 2 order by 1, 2")
        exceptions = query("select severity, count(*) from marts.rpt_reconciliation_exceptions "
                           "group by 1 order by 1")
    except Exception:  # no marts yet (a failed first build), or the warehouse went away: no totals
        return []
    out = ["  fct_invoices (live)  source / currency / invoices / gross / paid / due"]
    out += [f"    {s:<11} {c} {n:>7} {g:>16} {p:>16} {d:>16}" for s, c, n, g, p, d in rows]
    out.append("  reconciliation exceptions: " + (", ".join(f"{n} {s}" for s, n in exceptions) or "none")
               + " (marts.rpt_reconciliation_exceptions)")
    return out


if __name__ == "__main__":
    sys.exit(main())
