"""Measuring helpers shared by the per-source benchmarks: wall time and peak RSS of a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def measure(cmd: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Run ``cmd`` and return its wall time and peak resident memory (``ru_maxrss`` from ``wait4``)."""
    out_path, err_path = cwd / "bench.stdout", cwd / "bench.stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(seconds, usage.ru_maxrss / 1024, proc.returncode, out_path.read_text(), err_path.read_text())


def cli_env(workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update({"CRM_INVOICES_DATA_DIR": str(workdir / "data"), "RUNTIME__DLTHUB_TELEMETRY": "false",
                "DO_NOT_TRACK": "1"})
    env.update(extra)
    return env


def measure_cli(workdir: Path, env: dict[str, str], *args: str) -> Measured:
    """``crm-invoices <args>`` in a child process, measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    return measure([sys.executable, "-m", "pipelines.cli", *args], cli_env(workdir, env), workdir)


def measure_script(workdir: Path, env: dict[str, str], script: Path, *args: str) -> Measured:
    """A standalone Python script (a plain-dlt baseline, say) in a child process, measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    return measure([sys.executable, str(script), *args], cli_env(workdir, env), workdir)


def duckdb_count(db: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"select count(*) from {table}").fetchone()[0]
