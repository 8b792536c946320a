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
    """Run ``cmd`` and return its wall time and peak resident memory.

    Peak memory is the largest ``VmHWM`` (the kernel's high-water mark of resident memory) of any process in
    the child's tree, sampled every 20 ms. Not ``ru_maxrss`` from ``wait4``: Linux carries a parent's high-water
    mark into a forked child, so every child of a big benchmark process would report at least its size.
    """
    import psutil

    out_path, err_path = cwd / "bench.stdout", cwd / "bench.stderr"
    peak_kib = 0
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = []
            for p in tree:
                peak_kib = max(peak_kib, _hwm_kib(p.pid))
            time.sleep(0.02)
        seconds = time.monotonic() - started
    return Measured(seconds, peak_kib / 1024, proc.returncode, out_path.read_text(), err_path.read_text())


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # the process ended between listing and reading
        pass
    return 0


def cli_env(workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update({"CRM_INVOICES_DATA_DIR": str(workdir / "data"), "RUNTIME__DLTHUB_TELEMETRY": "false",
                "DO_NOT_TRACK": "1"})
    env.update(extra)
    return env


def measure_cli(workdir: Path, env: dict[str, str], *args: str) -> Measured:
    """``crm-invoices <args>`` in a child process, measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    return measure([sys.executable, "-m", "crm_invoices.pipelines.cli", *args], cli_env(workdir, env), workdir)


def measure_script(workdir: Path, env: dict[str, str], script: Path, *args: str) -> Measured:
    """A standalone Python script (a plain-dlt baseline, say) in a child process, measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    return measure([sys.executable, str(script), *args], cli_env(workdir, env), workdir)


def duckdb_count(db: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"select count(*) from {table}").fetchone()[0]


def result_row(variant: str, source: str, invoices: int, rows: int, m: Measured, http_requests: int,
               lower_bound: int, notes: str) -> dict:
    """One line of bench/RESULTS.md."""
    return {"variant": variant, "source": source, "invoices": invoices, "rows": rows, "seconds": m.seconds,
            "rows_per_s": rows / m.seconds, "http_requests": http_requests, "lower_bound": lower_bound,
            "peak_rss_mib": m.peak_rss_mib, "notes": notes}
