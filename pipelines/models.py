"""Build the dbt project in ``models/`` over the same warehouse dlt loaded: the DuckDB file, or the PostgreSQL
database of ``--destination postgres`` (profile target chosen and filled from dlt's resolved credentials by
``destination.dbt_env``). dbt is called directly, not via dlt's runner: that one costs about 18 s per run and
builds its own virtualenv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .destination import dbt_env, is_postgres
from .runner import prepare_raw_schemas
from .settings import MODELS_DIR, database_path, dbt_work_dir, redact_text
from .warehouse import held_by_other_program, out_of_room

STALE_PARSE = "dbt found two schema.yml entries for the same resource"


@dataclass
class ModelsOutcome:
    ok: bool
    seconds: float
    summary: str
    output: str
    busy: str | None = None  # the message when the warehouse was held by another program or the disk is full

    def failure_text(self) -> str:
        """What the terminal shows for a failed build: the holder when that was the cause, else dbt's tail."""
        return self.busy or self.output[-6000:]


def build_models(enabled: dict[str, bool], extra_vars: dict | None = None, command: str = "build") -> ModelsOutcome:
    """Run dbt `command` (``build``; ``source freshness`` for the loads' age) over the warehouse, with the CRM
    vars of ``enabled`` (registry name -> loaded) and ``extra_vars``."""
    started = time.monotonic()
    work = dbt_work_dir()
    env = dict(os.environ)
    env.update(dbt_env())
    env.update({
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
        "DBT_PROFILES_DIR": str(MODELS_DIR),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    })
    dbt_vars = crm_vars(enabled)
    try:  # which schema each CRM's models read: its dataset, or the union of its accounts' datasets
        dbt_vars["raw_schemas"] = prepare_raw_schemas()
    except Exception as exc:
        busy = held_by_other_program(database_path(), exc) if not is_postgres() else None
        no_room = out_of_room(exc)
        text = busy or (f"crm-invoices: models: {no_room}" if no_room else None)
        return ModelsOutcome(False, time.monotonic() - started, "", redact_text(f"{type(exc).__name__}: {exc}"),
                             text)
    dbt_vars.update(extra_vars or {})
    cmd = [sys.executable, "-c", "from dbt.cli.main import cli; cli()", *command.split(),
           "--project-dir", str(MODELS_DIR), "--vars", json.dumps(dbt_vars)]
    (work / "target" / "run_results.json").unlink(missing_ok=True)  # never report a previous run's results
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode and STALE_PARSE in proc.stdout + proc.stderr:
        # dbt's partial parsing can miss a model's YAML entry that moved to another file (an upgrade of this
        # project does that): parse from scratch once
        (work / "target" / "partial_parse.msgpack").unlink(missing_ok=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    output = redact_text(proc.stdout + proc.stderr)
    lines = output.strip().splitlines()
    summary = _summary(work / "target" / "run_results.json") or (lines[-1] if lines else "")
    busy = (held_by_other_program(database_path(), Exception(output))
            if proc.returncode and not is_postgres() else None)
    if proc.returncode and busy is None:  # a full disk is fixed outside the models: say so, no dbt traceback
        no_room = out_of_room(Exception(output))
        busy = f"crm-invoices: models: {no_room}" if no_room else None
    return ModelsOutcome(proc.returncode == 0, time.monotonic() - started, summary, output, busy)


def crm_vars(enabled: dict[str, bool]) -> dict[str, list[str]]:
    """The dbt project's only list of CRMs (models/macros/crm_sources.sql), from the registry's: every CRM it
    knows, and the loaded ones (all their required raw tables exist), whose models build and enter the unions."""
    return {"crm_sources": list(enabled), "crm_sources_loaded": [name for name, on in enabled.items() if on]}


def _summary(path: Path) -> str | None:
    try:
        results = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError):
        return None
    counts: dict[str, int] = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
