"""The ``report`` subcommand's arguments and its two callers: ``crm-invoices report`` and the end of
``crm-invoices run``. Kept here so that cli.py only wires them in."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

from ..settings import redact_text
from . import EXIT_REPORT, ReportError, write_report
from .labels import LANGS

EXIT_USAGE = 3


def add_parser(sub) -> None:
    report = sub.add_parser("report", help="write the finance report (one self-contained HTML file, CSV beside it)")
    report.add_argument("--out", type=Path, default=None,
                        help="the HTML file to write (default: report.html beside the warehouse)")
    report.add_argument("--as-of", default=None,
                        help="aging date YYYY-MM-DD (default: the as_of the marts were built with)")
    report.add_argument("--reporting-currency", default=None,
                        help="ISO code, e.g. EUR (default: the currency the marts were built with)")
    report.add_argument("--lang", choices=LANGS, default=None, help="ru or en (default: from the locale)")


def report_command(args: argparse.Namespace) -> int:
    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else None
    except ValueError:
        print(f"crm-invoices: report: --as-of {args.as_of!r} is not a date. Fix: give it as YYYY-MM-DD, "
              "e.g. --as-of 2026-10-31.", file=sys.stderr)
        return EXIT_USAGE
    currency = args.reporting_currency.strip().upper() if args.reporting_currency else None
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        print(f"crm-invoices: report: --reporting-currency {args.reporting_currency!r} is not an ISO 4217 code. "
              "Fix: give three letters, e.g. --reporting-currency EUR.", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = write_report(args.out, as_of, currency, args.lang)
    except ReportError as exc:
        print(redact_text(str(exc)), file=sys.stderr)
        return exc.exit_code
    _print_result(result)
    return 0


def report_after_run(outcomes, models_skipped: bool) -> int:
    """The last step of ``crm-invoices run``: write the report over what the run left; 0 or EXIT_REPORT."""
    if models_skipped:
        print("report: skipped (--skip-models: the marts were not rebuilt)")
        return 0
    failures: dict[str, str] = {}  # per CRM: the report's freshness is per CRM, over all of its accounts
    for o in outcomes:
        if not o.ok:
            failures[o.source] = " ".join(filter(None, (failures.get(o.source), o.message)))
    try:
        result = write_report(failures=failures)
    except ReportError as exc:
        print(redact_text(str(exc)), file=sys.stderr)
        return EXIT_REPORT
    _print_result(result)
    return 0


def _print_result(result) -> None:
    print(f"report: {result.path}")
    print(f"  as of {result.as_of.isoformat()}, reporting currency {result.reporting_currency}, "
          f"{len(result.csvs)} CSV files beside it ({result.path.stem}.*.csv)")
