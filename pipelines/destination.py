"""Which warehouse a run writes: DuckDB (the default, a local file) or PostgreSQL (a server).

The choice is ``crm-invoices <command> --destination duckdb|postgres``, which the CLI puts into
``CRM_INVOICES_DESTINATION`` before anything else runs, so dlt, dbt and the lock all see the same one.
PostgreSQL's credentials are dlt's own: ``DESTINATION__POSTGRES__CREDENTIALS``
(``postgresql://user:password@host:port/db``) or ``[destination.postgres] credentials`` in
``.dlt/secrets.toml``; they are resolved by dlt's destination factory, and the dbt profile is built from the
same resolved values (see ``dbt_env``), so dlt and dbt can never point at two different databases.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DESTINATIONS = ("duckdb", "postgres")
DEFAULT = "duckdb"
ENV = "CRM_INVOICES_DESTINATION"
CREDENTIALS_SETTING = ("DESTINATION__POSTGRES__CREDENTIALS (postgresql://user:password@host:port/database) or "
                       "[destination.postgres] credentials in .dlt/secrets.toml")


def destination_name() -> str:
    name = os.environ.get(ENV, DEFAULT).strip().lower() or DEFAULT
    if name not in DESTINATIONS:
        from .warehouse import WarehouseError

        raise WarehouseError(f"crm-invoices: unknown destination {name!r} ({ENV}). Fix: use one of "
                             f"{', '.join(DESTINATIONS)}.")
    return name


def is_postgres() -> bool:
    return destination_name() == "postgres"


@dataclass(frozen=True)
class PostgresTarget:
    """The PostgreSQL database dlt loads, as dlt resolved it. ``password`` never goes into a message."""

    host: str
    port: int
    database: str
    username: str
    password: str | None
    connect_timeout: int
    sslmode: str | None

    def describe(self) -> str:
        return f"PostgreSQL database {self.database!r} at {self.host}:{self.port} (user {self.username!r})"

    def key(self) -> str:
        """A file-name-safe name of this database, for the lock file and dbt's work dir."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"postgres-{self.host}-{self.port}-{self.database}")

    def connect(self, application_name: str = "crm-invoices"):
        """A psycopg2 connection; a failure becomes a :class:`WarehouseError` naming the setting to fix."""
        import psycopg2

        kwargs = {"host": self.host, "port": self.port, "dbname": self.database, "user": self.username,
                  "password": self.password, "connect_timeout": self.connect_timeout,
                  "application_name": application_name[:63]}
        if self.sslmode:
            kwargs["sslmode"] = self.sslmode
        try:
            return psycopg2.connect(**kwargs)
        except psycopg2.Error as exc:
            from .warehouse import WarehouseError

            raise WarehouseError(f"crm-invoices: {connection_problem(self, exc)}") from None


def postgres_target() -> PostgresTarget:
    """dlt's own resolution of the postgres destination's credentials (env, secrets.toml, config.toml)."""
    import dlt
    from dlt.common.configuration.exceptions import ConfigurationException

    from .warehouse import WarehouseError

    try:  # partial: the dataset is per pipeline, only the credentials are asked here
        creds = dlt.destinations.postgres().configuration(None, accept_partial=True).credentials
    except ConfigurationException as exc:
        raise WarehouseError(f"crm-invoices: PostgreSQL: the credentials cannot be read ({type(exc).__name__}). "
                             f"Fix: set {CREDENTIALS_SETTING}; nothing was loaded.") from None
    if creds is None or not creds.is_resolved() or not (creds.database and creds.username):
        raise WarehouseError(f"crm-invoices: PostgreSQL: no complete credentials are configured (user, password, "
                             f"host and database). Fix: set {CREDENTIALS_SETTING}; nothing was loaded.")
    query = dict(creds.query or {})
    return PostgresTarget(host=creds.host or "localhost", port=int(creds.port or 5432), database=creds.database,
                          username=creds.username, password=creds.password,
                          connect_timeout=int(creds.connect_timeout or 15), sslmode=query.get("sslmode"))


_CAUSES = [
    (re.compile(r"password authentication failed|no password supplied|authentication failed|"
                r"role \".*\" does not exist|no pg_hba.conf entry", re.I),
     "the server refused the login ({detail})",
     "correct the user and password"),
    (re.compile(r"database \".*\" does not exist", re.I),
     "{detail}",
     "create that database (createdb) or name an existing one"),
    (re.compile(r"Connection refused|could not connect|timeout expired|Connection timed out|"
                r"could not translate host name|Name or service not known|No route to host|"
                r"server closed the connection|terminating connection", re.I),
     "the server does not answer ({detail})",
     "start the server, or correct the host and port"),
]


def connection_problem(target: PostgresTarget, exc: BaseException) -> str:
    """The user-facing sentence for a PostgreSQL connection failure: what, why, which setting to fix."""
    text = str(exc).strip()
    detail = _first_meaningful_line(text)
    for pattern, cause, fix in _CAUSES:
        if pattern.search(text):
            return (f"PostgreSQL: cannot use the {target.describe()}: {cause.format(detail=detail)}. Fix: {fix} "
                    f"in {CREDENTIALS_SETTING}; nothing was loaded.")
    return (f"PostgreSQL: cannot use the {target.describe()}: {detail}. Fix: check {CREDENTIALS_SETTING}; "
            "nothing was loaded.")


def postgres_error_in(exc: BaseException) -> BaseException | None:
    """The psycopg2 connection-level error anywhere in ``exc``'s chain (the server went away mid-run)."""
    try:
        import psycopg2
    except ImportError:
        return None
    from crm_invoices.sources.common import causes

    return next((e for e in causes(exc) if isinstance(e, psycopg2.OperationalError | psycopg2.InterfaceError)), None)


def _first_meaningful_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:  # libpq prefixes the real cause with 'connection to server at ... failed:'
        cause = line.split(" failed: ", 1)[-1]
        if cause:
            return cause.removeprefix("FATAL:  ").rstrip(".")
    return text or "unknown error"


def duckdb_memory_limit() -> str:
    """The ``memory_limit`` of dlt's DuckDB loads (settings.RUNTIME_DEFAULTS, or the user's own
    DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG): the dbt build runs under the same cap, so a run's peak is
    the one the user set, not DuckDB's 80 % of RAM in the models."""
    import json

    from .settings import RUNTIME_DEFAULTS

    key = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"
    default = json.loads(RUNTIME_DEFAULTS[key])["memory_limit"]
    try:
        configured = json.loads(os.environ.get(key) or "{}")
    except ValueError:  # dlt itself refuses such a value before any model runs
        configured = {}
    limit = configured.get("memory_limit") if isinstance(configured, dict) else None
    return str(limit) if limit else default


def dbt_env() -> dict[str, str]:
    """The environment the dbt profile (models/profiles.yml) reads for the current destination. The password
    goes under a ``DBT_ENV_SECRET_`` name: dbt scrubs those from its logs and artifacts."""
    from .settings import database_path

    if not is_postgres():
        return {"CRM_INVOICES_DBT_TARGET": "duckdb", "CRM_INVOICES_DUCKDB": str(database_path()),
                "CRM_INVOICES_DUCKDB_MEMORY_LIMIT": duckdb_memory_limit()}
    target = postgres_target()
    return {
        "CRM_INVOICES_DBT_TARGET": "postgres",
        "CRM_INVOICES_PG_HOST": target.host,
        "CRM_INVOICES_PG_PORT": str(target.port),
        "CRM_INVOICES_PG_DATABASE": target.database,
        "CRM_INVOICES_PG_USER": target.username,
        "DBT_ENV_SECRET_CRM_INVOICES_PG_PASSWORD": target.password or "",
        "CRM_INVOICES_PG_SSLMODE": target.sslmode or "prefer",
        "CRM_INVOICES_PG_CONNECT_TIMEOUT": str(target.connect_timeout),
    }


def describe() -> str:
    """The warehouse in one phrase, for the run's summary."""
    from .settings import database_path

    return postgres_target().describe() if is_postgres() else str(database_path())


def query(sql: str) -> list[tuple]:
    """Read rows from the current warehouse (read-only use only: the summary and the enabled sources)."""
    from .settings import database_path

    if is_postgres():
        con = postgres_target().connect("crm-invoices read")
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            con.close()
    import duckdb

    db = database_path()
    if not db.exists():
        return []
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def execute(statements: list[str]) -> None:
    """Run DDL on the current warehouse in one transaction (the caller holds the writer lock)."""
    from .settings import database_path

    if not statements:
        return
    if is_postgres():
        con = postgres_target().connect("crm-invoices")
        try:
            with con, con.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
        finally:
            con.close()
        return
    import duckdb

    with duckdb.connect(str(database_path())) as con:
        con.execute("begin")
        for sql in statements:
            con.execute(sql)
        con.execute("commit")
