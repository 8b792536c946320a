"""Measuring helpers shared by the per-source benchmarks.

The sandbox runs in a process of its own (``bench.server``), optionally behind the RTT proxy
(``bench.proxy``, another process); the client (our CLI or a plain-dlt baseline) is a third. So the client's
CPU is the client's: user + sys from ``wait4`` on the client (its whole tree, interpreter startup included),
the server's CPU comes from the server's own ``getrusage`` over the control pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent


def use_commit(rev: str, work: Path) -> str:
    """Make every child process import ``crm_invoices`` from ``rev`` instead of the working tree.

    The code of ``rev`` (``git archive``: the repository is only read) goes to ``<work>/src``, and a
    ``crm_invoices`` package of symlinks to its folders to ``<work>/pkg``, first on ``PYTHONPATH``: the
    interpreter's own path finder runs before the editable install's finder, so the snapshot wins. Others'
    uncommitted edits then neither break nor flatter the figures. Returns the commit's full hash.
    """
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    src, pkg = work / "src", work / "pkg" / "crm_invoices"
    src.mkdir(parents=True)
    pkg.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", sha, "sources", "pipelines", "sandbox", "models"], cwd=REPO,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    (pkg / "__init__.py").write_text("")
    for folder in ("sources", "pipelines", "sandbox", "models"):
        (pkg / folder).symlink_to(src / folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pkg.parent), os.environ.get("PYTHONPATH")]))
    return sha


@dataclass
class Measured:
    seconds: float  # wall
    cpu: float  # user + sys of the client process tree
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    server: dict = field(default_factory=dict)  # the server's stats delta over the run
    server_cpu: float = 0.0
    proxy_cpu: float = 0.0

    def requests(self, provider: str, method: str | None = None) -> int:
        return sum(n for key, n in self.server.get("requests", {}).items()
                   if key.split("|", 1)[0] == provider and (method is None or key.split("|", 1)[1] == method))

    def server_seconds(self, provider: str, method: str) -> float:
        return self.server.get("seconds", {}).get(f"{provider}|{method}", 0.0)


class Controlled:
    """A child process that speaks the one-JSON-line protocol of bench.server and bench.proxy."""

    def __init__(self, args: list[str], cwd: Path | None = None):
        self.proc = subprocess.Popen([PY, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=cwd or REPO)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{' '.join(args[:2])} did not start (exit {self.proc.wait()})")
        self.hello = json.loads(line)
        self.base_url: str = self.hello["base_url"]

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Server(Controlled):
    """``bench.server`` with ``invoices`` per provider and the providers' options."""

    def __init__(self, invoices: dict[str, int], options: dict | None = None):
        spec = ",".join(f"{k}={v}" for k, v in invoices.items())
        super().__init__(["-m", "bench.server", "--invoices", spec, "--options", json.dumps(options or {})])
        self.env: dict[str, str] = self.hello["env"]
        self.facts: dict = self.hello["facts"]


class Proxy(Controlled):
    def __init__(self, upstream: str, rtt_ms: float):
        super().__init__(["-m", "bench.proxy", "--upstream", upstream, "--rtt-ms", str(rtt_ms)])


class Network:
    """The sandbox as the client sees it: directly (RTT 0) or through the RTT proxy."""

    def __init__(self, server: Server, rtt_ms: float):
        self.server, self.rtt_ms = server, rtt_ms
        self.proxy = Proxy(server.base_url, rtt_ms) if rtt_ms else None
        self.base_url = self.proxy.base_url if self.proxy else server.base_url

    def url(self, value: str) -> str:
        """A URL (or env value) pointing at the sandbox, re-pointed at what the client talks to."""
        return value.replace(self.server.base_url, self.base_url)

    @property
    def env(self) -> dict[str, str]:
        return {k: self.url(v) for k, v in self.server.env.items()}

    def close(self) -> None:
        if self.proxy:
            self.proxy.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def measure(cmd: list[str], env: dict[str, str], cwd: Path, net: Network | None = None) -> Measured:
    """Run ``cmd`` and return its wall time, CPU (user + sys, its tree) and peak resident memory.

    CPU comes from ``wait4`` on the child: its own and that of every descendant it waited for, from the
    interpreter's start. Peak memory is the largest ``VmHWM`` (the kernel's high-water mark of resident
    memory) of any process in the child's tree, read every 50 ms (the tree listed every 0.5 s; the
    benchmark itself must not eat the cores it measures). Not ``ru_maxrss``: Linux carries a
    parent's high-water mark into a forked child, so every child of a big benchmark process would report at
    least its size.
    """
    import psutil

    if net:
        net.server.ask("reset")
        before = net.server.ask("stats")
        proxy_before = net.proxy.ask("stats")["cpu"] if net.proxy else 0.0
    out_path, err_path = cwd / "bench.stdout", cwd / "bench.stderr"
    peak_kib = 0
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        root = psutil.Process(proc.pid)
        tree, ticks = [proc.pid], 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if ticks % 10 == 0:  # walking /proc for the tree is the dear part: twice a second is enough
                try:
                    tree = [proc.pid, *(c.pid for c in root.children(recursive=True))]
                except psutil.NoSuchProcess:
                    tree = []
            for p in tree:
                peak_kib = max(peak_kib, _hwm_kib(p))
            ticks += 1
            time.sleep(0.05)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    m = Measured(seconds, usage.ru_utime + usage.ru_stime, peak_kib / 1024, proc.returncode, out_path.read_text(),
                 err_path.read_text())
    if net:
        after = net.server.ask("stats")
        m.server, m.server_cpu = after, after["cpu"] - before["cpu"]
        m.proxy_cpu = net.proxy.ask("stats")["cpu"] - proxy_before if net.proxy else 0.0
    return m


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


def measure_cli(workdir: Path, env: dict[str, str], *args: str, net: Network | None = None) -> Measured:
    """``crm-invoices <args>`` in a child process, measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    return measure([PY, "-m", "crm_invoices.pipelines.cli", *args], cli_env(workdir, env), workdir, net)


def measure_script(workdir: Path, env: dict[str, str], script: Path, *args: str,
                   net: Network | None = None) -> Measured:
    """A standalone Python script (a plain-dlt baseline, say) in a child process, measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    return measure([PY, str(script), *args], cli_env(workdir, env), workdir, net)


BASELINES = Path(__file__).parent / "baselines"


def load_ours(source: str, workdir: Path, net: Network, env: dict[str, str] | None = None) -> Measured:
    """Our CLI loading one source (no dbt: the models have a benchmark of their own); a failure stops the bench."""
    m = measure_cli(workdir, {**net.env, **(env or {})}, "run", "--sources", source, "--skip-models",
                    "--no-progress", net=net)
    if m.returncode != 0:
        raise RuntimeError(f"{source}: crm-invoices failed (exit {m.returncode}):\n{m.stderr[-3000:]}")
    return m


def run_baseline(net: Network, workdir: Path, script: str, *args: str) -> tuple[Measured, Path]:
    """A plain-dlt baseline (``bench/baselines/<script>``) into ``<workdir>/baseline/baseline.duckdb``."""
    base = workdir / "baseline"
    base.mkdir(parents=True, exist_ok=True)
    db = base / "baseline.duckdb"
    return measure_script(base, {}, BASELINES / script, *args, str(db), net=net), db


def duckdb_count(db: Path, table: str) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"select count(*) from {table}").fetchone()[0]


def count_rows(db: Path, tables: list[str]) -> int:
    """Rows over ``schema.table`` names; a table that got no rows does not exist and counts 0."""
    total = 0
    for table in tables:
        try:
            total += duckdb_count(db, table)
        except Exception:  # noqa: BLE001 - duckdb's CatalogException: the table was never created
            pass
    return total


def goal_unit(source: str) -> int | None:
    """The goal's unit of work of a CRM (issue 11): ``GOAL_UNIT`` in its bench module."""
    import importlib

    return getattr(importlib.import_module(f"bench.{source}"), "GOAL_UNIT", None)


def result_row(source: str, variant: str, invoices: int, rtt_ms: float, rows: int, m: Measured,
               http_requests: int, bound: float | None, notes: str, kind: str = "load") -> dict:
    """One line of bench/RESULTS.md (kept as JSON beside it, so sections can be rebuilt)."""
    unit = goal_unit(source)
    row = {"source": source, "variant": variant, "kind": kind, "invoices": invoices, "rtt_ms": rtt_ms,
            "rows": rows, "seconds": round(m.seconds, 2), "client_cpu": round(m.cpu, 2),
            "cpu_per_goal_unit": round(m.cpu * unit / invoices, 1) if unit and invoices and kind == "load" else None,
            "server_cpu": round(m.server_cpu, 2), "proxy_cpu": round(m.proxy_cpu, 2),
            "http_requests": http_requests, "bound_s": round(bound, 1) if bound is not None else None,
            "wall_per_bound": round(m.seconds / bound, 2) if bound else None,
            "peak_rss_mib": round(m.peak_rss_mib), "notes": notes}
    print("  " + json.dumps(row, ensure_ascii=False), flush=True)  # as it comes: a long run that is stopped keeps it
    return row
