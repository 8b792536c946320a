"""Shared fixtures: a sandbox of emulated CRMs on loopback, the real CLI in a subprocess, a real DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from crm_invoices.pipelines.registry import ALL_SOURCES, NAMES
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

# Retries stay on in tests (they are part of what is tested) but without exponential waits.
FAST_RETRIES = {
    f"{spec.env_prefix}{key}": value
    for spec in ALL_SOURCES
    for key, value in (("REQUEST_BACKOFF_FACTOR", "0"), ("REQUEST_MAX_ATTEMPTS", "3"), ("REQUEST_TIMEOUT", "10"))
}


@pytest.fixture
def make_sandbox() -> Callable[..., Sandbox]:
    """``make_sandbox(invoices={"salesman": 40}, seed=1, salesman={"page_size": 7})`` -> a started sandbox.

    Providers that are not named in ``invoices`` get 0 invoices, so a test loads only what it looks at.
    """
    started: list[Sandbox] = []

    def factory(invoices: dict[str, int] | None = None, seed: int = 7, **provider_options) -> Sandbox:
        counts = dict.fromkeys(NAMES, 0)
        counts.update(invoices or {})
        sandbox = Sandbox(World.generate(seed=seed, invoices=counts), **provider_options).start()
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in started:
        sandbox.stop()


class Workdir:
    """A project-less working directory with its own data/ (DuckDB file, dlt pipelines, dbt target)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path / "data"
        self.db = self.data / "crm_invoices.duckdb"

    def env(self, sandbox: Sandbox | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
        env.update({"CRM_INVOICES_DATA_DIR": str(self.data), "RUNTIME__DLTHUB_TELEMETRY": "false",
                    "DO_NOT_TRACK": "1", **FAST_RETRIES})
        if sandbox is not None:
            env.update(sandbox.demo_env())
        env.update(extra or {})
        return env

    def cli(self, *args: str, sandbox: Sandbox | None = None, env: dict[str, str] | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
        """Run ``crm-invoices <args>`` as a user would, in a subprocess, and return what it printed."""
        return subprocess.run([sys.executable, "-m", "crm_invoices.pipelines.cli", *args], cwd=self.path,
                              env=self.env(sandbox, env), capture_output=True, text=True, timeout=timeout)

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def query_dicts(self, sql: str) -> list[dict]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            cur = con.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def files_bytes(self) -> dict[Path, bytes]:
        """Every file under data/ (the DuckDB file, dlt state, traces, dbt logs), for leak checks."""
        return {p: p.read_bytes() for p in self.data.rglob("*") if p.is_file()}


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    return Workdir(tmp_path)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-8000:]}"
