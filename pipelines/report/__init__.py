"""``crm-invoices report``: one self-contained HTML file (and a CSV per table) from the marts.

Figures come from SQL over the marts on a read-only connection. The marts carry two dbt vars, ``as_of``
(rpt_ar_aging) and ``reporting_currency`` (fct_invoices' conversion, through each source's own rates). When
the report is asked for other values than the marts were built with, it does not re-implement dbt's logic:
it copies the warehouse file to a temporary folder, runs the same dbt project over the copy with those vars
(``dbt run``, as ``crm-invoices models --vars`` would), and reads the copy. The figures are then those of the
marts built with the vars, by construction, and the warehouse itself is never written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from ..settings import MODELS_DIR, database_path

EXIT_REPORT = 5  # the report could not be written


class ReportError(Exception):
    """The report cannot be written; ``str()`` is the whole message for the terminal."""

    exit_code = EXIT_REPORT


@dataclass
class ReportResult:
    path: Path
    csvs: list[Path]
    as_of: date
    reporting_currency: str
    lang: str
    rebuilt: bool
    notes: list[str] = field(default_factory=list)


def default_out() -> Path:
    return database_path().parent / "report.html"


def _project_default_currency() -> str:
    match = re.search(r"^\s*reporting_currency:\s*([A-Z]{3})", (MODELS_DIR / "dbt_project.yml").read_text(), re.M)
    return match.group(1) if match else "RUB"


@contextmanager
def _read_only(db: Path):
    import duckdb

    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        raise ReportError(f"crm-invoices: report: cannot open the warehouse {db} ({first}). Fix: wait for the run "
                          "that writes it to finish (DuckDB lets no one read a file while it is written), then "
                          "run `crm-invoices report` again.") from None
    try:
        yield con
    finally:
        con.close()


def write_report(out: Path | None = None, as_of: date | None = None, reporting_currency: str | None = None,
                 lang: str | None = None, failures: dict[str, str] | None = None) -> ReportResult:
    """Write the report; ``failures`` (source -> message) are this run's failed loads, when a run calls it."""
    from ..registry import SOURCES
    from .data import load, marts_as_of, marts_reporting_currency, missing_marts
    from .labels import default_lang

    db = database_path()
    out = Path(out or default_out()).resolve()
    lang = lang or default_lang(os.environ)
    if not db.exists():
        raise ReportError(f"crm-invoices: report: there is no warehouse at {db}. Fix: run `crm-invoices run` first "
                          "(or point DESTINATION__DUCKDB__CREDENTIALS / CRM_INVOICES_DATA_DIR at the warehouse).")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="crm-invoices-report-") as tmp:
        with _read_only(db) as con:
            missing = missing_marts(con)
            if missing:
                raise ReportError(f"crm-invoices: report: the warehouse {db} has no marts yet (missing "
                                  f"{', '.join('marts.' + m for m in missing)}). Fix: load a CRM with `crm-invoices "
                                  "run`, or build the models over what is loaded with `crm-invoices models`.")
            built_as_of, built_currency = marts_as_of(con), marts_reporting_currency(con)
            rebuild = ((as_of is not None and as_of != built_as_of)
                       or (reporting_currency is not None and reporting_currency != built_currency))
            if rebuild:
                copy = Path(tmp) / db.name  # same file name: DuckDB names the catalog after it, views use it
                shutil.copyfile(db, copy)  # our read-only connection keeps writers out while we copy
                wal = db.with_name(db.name + ".wal")
                if wal.exists():
                    shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
        effective_currency = reporting_currency or built_currency or _project_default_currency()
        effective_as_of = as_of or built_as_of
        source_db = db
        if rebuild:
            _rebuild(copy, Path(tmp), effective_as_of, effective_currency)
            source_db = copy
            notes.append(_rebuild_note(lang, effective_as_of, effective_currency))
        with _read_only(source_db) as con:
            effective_as_of = effective_as_of or marts_as_of(con) or datetime.now(UTC).date()
            data = load(con, effective_as_of, effective_currency, list(SOURCES))
    _attach_failures(data, failures or {})
    return _write(data, out, db, lang, notes, rebuild)


def _rebuild_note(lang: str, as_of: date | None, currency: str) -> str:
    vars_text = f"as_of={as_of.isoformat() if as_of else 'null'}, reporting_currency={currency}"
    if lang == "ru":
        return (f"Цифры посчитаны по копии хранилища, витрины которой перестроены dbt с переменными {vars_text}; "
                "само хранилище не изменено.")
    return (f"Figures come from a copy of the warehouse whose marts dbt rebuilt with the vars {vars_text}; the "
            "warehouse itself was not changed.")


def _rebuild(copy: Path, work: Path, as_of: date | None, currency: str) -> None:
    from ..models import build_models
    from ..runner import enabled_sources
    from ..settings import temporary_env

    dbt_vars = {"reporting_currency": currency}
    if as_of is not None:
        dbt_vars["as_of"] = as_of.isoformat()
    with temporary_env({"DESTINATION__DUCKDB__CREDENTIALS": str(copy), "CRM_INVOICES_DATA_DIR": str(work / "data")}):
        result = build_models(enabled_sources(copy), dbt_vars, command="run")
    if not result.ok:
        tail = "\n".join(result.output.strip().splitlines()[-12:])
        raise ReportError(f"{tail}\ncrm-invoices: report: dbt could not rebuild the marts with {dbt_vars} (above). "
                          "Fix: check the date and currency code; the warehouse was not changed.")


def _attach_failures(data, failures: dict[str, str]) -> None:
    from ..registry import SOURCES
    from .runs import last_failure_from_trace

    for f in data.freshness:
        if f.source in failures:
            f.failed_at, f.failure = datetime.now(UTC), failures[f.source]
            continue
        found = last_failure_from_trace(SOURCES[f.source].pipeline_name)
        if found is None:
            continue
        when, cause = found
        # a failure older than the last successful load is history, not the state of the data
        if f.last_success is None or when is None or when > f.last_success:
            f.failed_at, f.failure = when, cause


def _write(data, out: Path, db: Path, lang: str, notes: list[str], rebuilt: bool) -> ReportResult:
    from .render import Page

    page = Page(data, lang, out, db, notes)
    html = page.render(datetime.now(UTC))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        partial.write_text(html, encoding="utf-8")
        csvs = page.write_csvs()
        partial.replace(out)  # a reader never opens half a file
    except OSError as exc:
        raise ReportError(f"crm-invoices: report: cannot write {exc.filename or out} ({exc.strerror}). Fix: choose "
                          "a writable place with --out FILE.") from None
    return ReportResult(out, csvs, data.as_of, data.reporting_currency, lang, rebuilt, notes)
