"""Where things live at run time, and the environment every run gets before dlt or dbt is imported."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_DIR / "models"

# Environment names whose values are secrets: redacted from everything the CLI prints.
SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|WEBHOOK)", re.IGNORECASE)

RUNTIME_DEFAULTS = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    # Completed load packages pile up (about 18 MB per 100k invoices) and hold raw data: drop them.
    "LOAD__DELETE_COMPLETED_JOBS": "true",
    # DuckDB's own default is 80 % of RAM, and dlt's load step is where a big first load peaks: 1.7 GB of RSS
    # for a million SalesMan invoices, 0.8 GB with this cap (measured); it spills to disk beyond it.
    "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "512MB"}',
}


def apply_runtime_defaults() -> None:
    for key, value in RUNTIME_DEFAULTS.items():
        os.environ.setdefault(key, value)


def data_dir() -> Path:
    return Path(os.environ.get("CRM_INVOICES_DATA_DIR", "data")).resolve()


def database_path() -> Path:
    """The DuckDB file: ``DESTINATION__DUCKDB__CREDENTIALS`` (a path), else ``data/crm_invoices.duckdb``."""
    configured = os.environ.get("DESTINATION__DUCKDB__CREDENTIALS")
    if configured:
        return Path(configured.removeprefix("duckdb:///")).resolve()
    return data_dir() / "crm_invoices.duckdb"


def pipelines_dir() -> Path:
    return data_dir() / "pipelines"


def dbt_work_dir() -> Path:
    """dbt's target/ and logs/ for this warehouse: partial-parse caches and run results of one warehouse
    never serve another one loaded from the same folder."""
    import hashlib

    from .destination import is_postgres, postgres_target

    if is_postgres():
        key = postgres_target().key()
        return data_dir() / "dbt" / f"{key}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
    db = database_path()
    return data_dir() / "dbt" / f"{db.stem}-{hashlib.sha1(str(db).encode()).hexdigest()[:8]}"


def secret_values() -> list[str]:
    """Every configured secret: from the environment and from the ``secrets.toml`` files dlt reads (the
    project's ``.dlt/`` and the global dlt dir), chosen by the same key names."""
    found = [v for k, v in os.environ.items() if SECRET_ENV.search(k) and v and len(v) >= 4]
    found += [p for v in os.environ.values() if (p := url_password(v))]
    for path in _secrets_files():
        leaves = _toml_leaves(path)
        found += [v for k, v in leaves if SECRET_ENV.search(k) and len(v) >= 4]
        found += [p for _k, v in leaves if (p := url_password(v))]
    return found


def url_password(value: str) -> str | None:
    """The password of a connection string (``postgresql://user:password@host/db``, dlt's credentials form),
    whatever the setting is called: DESTINATION__POSTGRES__CREDENTIALS names no secret word."""
    from urllib.parse import unquote, urlsplit

    if "://" not in value or "@" not in value:
        return None
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return None
    return unquote(password) if password and len(password) >= 4 else None


def _secrets_files() -> list[Path]:
    import dlt

    context = dlt.current.run_context()
    return [Path(d) / "secrets.toml" for d in (context.settings_dir, context.global_dir)
            if (Path(d) / "secrets.toml").is_file()]


def _toml_leaves(path: Path) -> list[tuple[str, str]]:
    import tomllib

    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return []
    out: list[tuple[str, str]] = []

    def walk(node: object, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}__{k}" if key else k)
        elif isinstance(node, str):
            out.append((key, node))

    walk(doc, "")
    return out


def redact_text(text: str) -> str:
    """Remove every known secret, and any Bitrix24 webhook secret, from text meant for a terminal or log."""
    from crm_invoices.sources.common import redact, redact_webhooks  # the one webhook regex

    return redact_webhooks(redact(text, secret_values()))


@contextmanager
def temporary_env(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment for the block, then the environment as it was (dlt and dbt read it)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
