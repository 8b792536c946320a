"""Run the sources (one dlt pipeline each), then the dbt models, and report what happened."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .settings import apply_runtime_defaults, database_path, pipelines_dir, redact_text

apply_runtime_defaults()

import dlt  # noqa: E402
from crm_invoices.sources.common import SourceError, causes  # noqa: E402
from dlt.pipeline.exceptions import PipelineStepFailed  # noqa: E402

from .accounts import Account, AccountError, accounts_of, dataset_account_sql, raw_schemas, union_views_sql  # noqa: E402
from .destination import connection_problem, is_postgres, postgres_error_in, postgres_target  # noqa: E402
from .progress import RunProgress  # noqa: E402
from .registry import ALL_SOURCES, SOURCES  # noqa: E402
from .warehouse import held_by_other_program, log, out_of_room, reconcile_local_state  # noqa: E402


@dataclass
class SourceOutcome:
    name: str  # the account's key: ``bitrix24``, or ``bitrix24.spb`` for a further account
    ok: bool
    seconds: float
    message: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    source: str = ""  # the CRM (registry name)

    def __post_init__(self):
        self.source = self.source or self.name.split(".", 1)[0]


def find_source_error(exc: BaseException) -> SourceError | None:
    return next((e for e in causes(exc) if isinstance(e, SourceError)), None)


def make_destination():
    """The dlt destination of ``--destination``. PostgreSQL takes its credentials the way dlt always does
    (DESTINATION__POSTGRES__CREDENTIALS or .dlt/secrets.toml): nothing of ours sits in between."""
    if is_postgres():
        return dlt.destinations.postgres()
    return dlt.destinations.duckdb(str(database_path()))


def loader_file_format() -> str:
    # DuckDB: parquet, measured here 6x faster and 25x less memory than its default insert_values.
    # PostgreSQL: parquet needs the ADBC driver (not a dependency); dlt's default INSERT statements go in one
    # transaction per table chunk and carry decimals as exact literals.
    return "insert_values" if is_postgres() else "parquet"


def warehouse_file() -> Path | None:
    """The DuckDB file reconcile_local_state compares with; None for a server (then it always asks it)."""
    return None if is_postgres() else database_path()


def make_pipeline(spec: Account, progress: bool = True) -> dlt.Pipeline:
    # our one line every 10 s of a long step on the terminal, dlt's counters in logs/progress.log
    progress_collector = RunProgress(spec.display) if progress else None
    return dlt.pipeline(
        pipeline_name=spec.pipeline_name,
        destination=make_destination(),
        dataset_name=spec.dataset_name,
        pipelines_dir=str(pipelines_dir()),
        progress=progress_collector,
    )


def finish_pending(pipeline: dlt.Pipeline, spec: Account) -> None:
    """Normalize and load what an interrupted run left. A run killed after its extract package was committed
    but before dlt saved the package's schema leaves a package whose Arrow tables the stored schema lacks;
    dlt's normalizer then fails on it at every run ("Table not found"). Such a package holds nothing that is
    not extracted again: it was never loaded, and the state it would have committed never reached the
    warehouse (``reconcile_local_state`` just checked that). So it is dropped and this run extracts afresh."""
    try:
        pipeline.normalize()
    except PipelineStepFailed as exc:
        if exc.step != "normalize":
            raise
        pipeline.abort_packages()  # deletes the extracted package, restores the state and schemas before it
        log(f"{spec.display}: a package left by an interrupted run could not be normalized "
            f"({type(exc.__cause__ or exc).__name__}); dropped it, this run extracts everything it held again")
        return
    pipeline.load()


def run_source(spec: Account, full_refresh: bool = False, progress: bool = True) -> SourceOutcome:
    """Extract, normalize and load one source. Extraction runs before anything touches the warehouse, so
    a wrong key or a dead host leaves the DuckDB file and the pipeline state as they were."""
    started = time.monotonic()
    pipeline = make_pipeline(spec, progress)
    try:
        note = reconcile_local_state(pipeline, warehouse_file())
        if note:
            log(note)
        if pipeline.has_pending_data:  # a previous run extracted but did not finish loading: finish it first
            finish_pending(pipeline, spec)
        with spec.isolated():  # a further account never borrows the main account's URL or credentials
            source = spec.make_source()
            pipeline.extract(source, refresh="drop_sources" if full_refresh else None,
                             loader_file_format=loader_file_format())
        pipeline.normalize()
        info = pipeline.load()
        info.raise_on_failed_jobs()
    except Exception as exc:  # one source failing must not stop the others
        error = find_source_error(exc)
        busy = held_by_other_program(database_path(), exc)
        no_room = out_of_room(exc)
        pg_down = postgres_error_in(exc) if is_postgres() else None
        if isinstance(exc, AccountError):
            message = str(exc)
        elif error is not None:  # the CRM's own message, naming the account when it is not the main one
            message = str(error).replace(f"{spec.spec.display}:", f"{spec.display}:", 1)
        elif pg_down is not None:
            message = f"{spec.display}: {connection_problem(postgres_target(), pg_down)}"
        elif busy is not None:
            message = f"{spec.display}: {busy.removeprefix('crm-invoices: ')}"
        elif no_room is not None:
            message = f"{spec.display}: {no_room}"
        else:
            root = exc
            while isinstance(root, PipelineStepFailed) and root.__cause__ is not None:
                root = root.__cause__
            message = (f"{spec.display}: {type(root).__name__}: {root} Fix: check the {spec.display} settings "
                       f"({spec.env_prefix}...) and the log above; nothing from this run was "
                       "loaded for this source.")
        return SourceOutcome(spec.key, False, time.monotonic() - started, redact_text(message))
    rows = {}
    trace = pipeline.last_trace
    if trace is not None and trace.last_normalize_info is not None:
        rows = {t: n for t, n in trace.last_normalize_info.row_counts.items() if not t.startswith("_dlt")}
    return SourceOutcome(spec.key, True, time.monotonic() - started, rows=rows)


def warehouse_tables(db: Path | None = None) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """``{dataset: {table: [(column, sql type)]}}`` of every raw dataset, read from the warehouse (read-only):
    the DuckDB file ``db`` (default: the configured one), or the PostgreSQL database of ``--destination
    postgres``."""
    from .destination import query

    where = "where table_schema like 'raw\\_%' escape '\\' order by table_schema, table_name, ordinal_position"
    if is_postgres():
        rows = query("select table_schema, table_name, column_name, case when data_type = 'numeric' and "
                     "numeric_precision is not null then 'numeric(' || numeric_precision || ',' || numeric_scale "
                     "|| ')' when data_type = 'character varying' then 'varchar' else data_type end "
                     f"from information_schema.columns {where}")
    else:
        db = db or database_path()
        if not db.exists():
            return {}
        import duckdb

        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute("select table_schema, table_name, column_name, data_type "
                               f"from information_schema.columns {where}").fetchall()
    out: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for schema, table, column, sql_type in rows:
        out.setdefault(schema, {}).setdefault(table, []).append((column, sql_type))
    return out


def existing_raw_tables(db: Path | None = None) -> dict[str, set[str]]:
    """Raw tables per CRM, over all of its accounts' datasets."""
    tables = warehouse_tables(db)
    return {crm: {t for d in datasets for t in tables[d]} for crm, datasets in raw_schemas(tables).items()}


def enabled_sources(db: Path | None = None) -> dict[str, bool]:
    """Which sources' models can build: all of their required raw tables exist."""
    tables = existing_raw_tables(db)
    return {spec.name: set(spec.required_tables) <= tables.get(spec.name, set()) for spec in ALL_SOURCES}


def prepare_raw_schemas() -> dict[str, str]:
    """The ``raw_schemas`` dbt var: CRM -> the schema its models read. A CRM loaded by one account reads its
    dataset; one loaded by several reads ``raw_<crm>_all``, (re)built here as views over all of them."""
    from .destination import execute, query

    tables = warehouse_tables()
    out: dict[str, str] = {}
    for crm, datasets in raw_schemas(tables).items():
        if len(datasets) == 1:
            out[crm] = datasets[0]
            continue
        accounts = {}
        for dataset in datasets:
            sql = dataset_account_sql(dataset, tables[dataset])
            accounts[dataset] = (query(sql) or [(None,)])[0][0] if sql else None
        schema, statements = union_views_sql(crm, datasets, tables, accounts)
        execute(statements)
        out[crm] = schema
    return out


def selected_specs(names: list[str] | None) -> list[Account]:
    """The accounts to run: every configured account of every CRM, or those named (``bitrix24`` = all of its
    accounts, ``bitrix24.spb`` = that one)."""
    wanted = names or list(SOURCES)
    unknown = [n for n in wanted if n.split(".", 1)[0] not in SOURCES]
    if unknown:
        raise SystemExit(f"crm-invoices: unknown source(s) {', '.join(unknown)}; "
                         f"available: {', '.join(SOURCES)}")
    out: list[Account] = []
    for crm in dict.fromkeys(n.split(".", 1)[0] for n in wanted):
        try:
            accounts = accounts_of(SOURCES[crm])
        except AccountError as exc:
            raise SystemExit(f"crm-invoices: {exc}") from None
        picked = [a for a in accounts if a.key in wanted or crm in wanted]
        missing = [n for n in wanted if n.startswith(f"{crm}.") and n not in {a.key for a in accounts}]
        if missing:
            raise SystemExit(f"crm-invoices: unknown account(s) {', '.join(missing)}; {SOURCES[crm].display} "
                             f"has: {', '.join(a.key for a in accounts)} (list more in "
                             f"{SOURCES[crm].env_prefix}ACCOUNTS)")
        out += picked
    return out
