"""kill -9 of the whole process tree at moments spread over every step of a run, then a normal run: the facts
must equal a clean load's, every column. Used by tests/test_reliability_kill.py (a few points in `make test`)
and `make reliability` (the full sweep, `python -m tests.crash_sweep`, which writes its figures).

Moments are placed by the phases of an uninterrupted run of the same setup, timed from its own stderr
("loading SalesMan ...", ..., "building models ..."), so every source's extract/normalize/load and the dbt
build get their share. After each kill the pipelines' working dirs tell which step was cut (a package still
extracted = normalize pending, normalized = load pending)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

from tests.bitrix24_support import FAST_CLIENT, FAST_PORTAL
from tests.conftest import Workdir
from tests.reliability_support import ALL, facts, upstream_changes

SEED, INVOICES = 13, 30
MARKERS = {"loading SalesMan": "salesman", "loading Bitrix24": "bitrix24", "loading ONLYOFFICE": "onlyoffice",
           "building models": "dbt"}


def make_sandbox() -> Sandbox:
    """The same world every time (a kill point gets a fresh copy of the upstream it started from)."""
    world = World.generate(seed=SEED, invoices={s: INVOICES for s in ALL})
    # a little latency per request, as any real server has: the extract steps last long enough to be hit
    sandbox = Sandbox(world, salesman={"page_size": 7}, bitrix24=dict(FAST_PORTAL))  # `with` starts it
    for name in ALL:
        sandbox[name].faults.delay = 0.01
    return sandbox


@dataclass
class Timed:
    returncode: int
    stderr: str
    marks: dict[str, float]  # phase -> seconds after start when its line appeared
    seconds: float


def run_cli(workdir: Workdir, sandbox: Sandbox, kill_at: float | None = None) -> Timed:
    """``crm-invoices run`` in its own session; with ``kill_at``, SIGKILL to the whole group at that time."""
    env = workdir.env(sandbox, FAST_CLIENT)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "crm_invoices.pipelines.cli", "run", "--no-progress"], cwd=workdir.path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    marks: dict[str, float] = {}
    lines: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            for marker, phase in MARKERS.items():
                if line.startswith(marker):
                    marks.setdefault(phase, time.monotonic() - started)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if kill_at is not None:
        try:
            proc.wait(timeout=kill_at)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=600)
    reader.join(timeout=10)
    return Timed(proc.returncode, "".join(lines), marks, time.monotonic() - started)


def cut_step(workdir: Workdir, timed: Timed) -> str:
    """Which step the kill cut, from the last phase line and what the working dirs hold."""
    if timed.returncode == 0:
        return "after the run"
    phase = max(timed.marks, key=timed.marks.get) if timed.marks else "start"
    if phase in ("dbt", "start"):
        return "dbt build" if phase == "dbt" else "start-up"
    work = workdir.data / "pipelines" / f"crm_invoices_{phase}"
    if any(work.glob("normalize/extracted/*")):
        return f"{phase} normalize"
    if any(work.glob("load/normalized/*")):
        return f"{phase} load"
    return f"{phase} extract"


def moments(marks: dict[str, float], total: float, points: int) -> list[float]:
    """``points`` kill times spread evenly within each phase of an uninterrupted run."""
    bounds = sorted(marks.values()) + [total]
    phases = list(zip(bounds, bounds[1:], strict=False))
    out = []
    for i in range(points):
        start, end = phases[i % len(phases)]
        k, n = i // len(phases), -(-points // len(phases))
        out.append(start + (end - start) * (k + 0.5) / n)
    return sorted(out)


@dataclass
class PointResult:
    variant: str
    at: float
    step: str
    recovered: bool
    detail: str = ""


def sweep(base: Path, points: int, variants=("first load", "rerun with changes")) -> list[PointResult]:
    results: list[PointResult] = []
    for variant in variants:
        results += _sweep_variant(base / variant.replace(" ", "_"), points, variant)
    return results


def _prepare(base: Path, name: str, initial: Path | None) -> Workdir:
    workdir = Workdir(base / name)
    workdir.path.mkdir(parents=True)
    if initial is not None:
        shutil.copytree(initial, workdir.data)
    return workdir


def _sweep_variant(base: Path, points: int, variant: str) -> list[PointResult]:
    rerun = variant != "first load"
    initial = None
    if rerun:  # one warehouse loaded before the changes, copied for every point
        seed_dir = _prepare(base, "initial", None)
        with make_sandbox() as sandbox:
            assert run_cli(seed_dir, sandbox).returncode == 0
        initial = seed_dir.data
    # the reference (a clean load of the upstream as the point sees it) and the phase timings
    if not rerun:
        with make_sandbox() as sandbox:
            clean = _prepare(base, "clean", None)
            assert run_cli(clean, sandbox).returncode == 0
            reference = facts(clean)
    with make_sandbox() as sandbox:
        if rerun:
            upstream_changes(sandbox)
        timing = run_cli(_prepare(base, "timing", initial), sandbox)
        assert timing.returncode == 0, timing.stderr[-3000:]
    out = []
    for i, at in enumerate(moments(timing.marks, timing.seconds, points)):
        workdir = _prepare(base, f"point{i:02d}", initial)
        with make_sandbox() as sandbox:
            if rerun:
                upstream_changes(sandbox)
            killed = run_cli(workdir, sandbox, kill_at=at)
            step = cut_step(workdir, killed)
            again = run_cli(workdir, sandbox)
            if rerun:  # invoices created through the APIs carry this sandbox's clock: its own clean load
                clean = _prepare(base, f"clean{i:02d}", None)
                assert run_cli(clean, sandbox).returncode == 0
                reference = facts(clean)
        if again.returncode != 0:
            out.append(PointResult(variant, at, step, False, again.stderr[-2000:]))
            continue
        got = facts(workdir)
        diff = {name: {"got": [r for r in got[name] if r not in reference[name]][:2],
                       "clean": [r for r in reference[name] if r not in got[name]][:2]}
                for name in reference if got[name] != reference[name]}
        out.append(PointResult(variant, at, step, not diff, str(diff) if diff else ""))
        shutil.rmtree(workdir.path, ignore_errors=True)
    return out


def table(results: list[PointResult]) -> str:
    lines = ["| variant | kill at (s) | step cut | recovered, facts equal a clean load |", "|---|---|---|---|"]
    lines += [f"| {r.variant} | {r.at:.2f} | {r.step} | {'yes' if r.recovered else 'NO: ' + r.detail[:200]} |"
              for r in results]
    ok = sum(r.recovered for r in results)
    lines.append(f"\n{ok} of {len(results)} kill points recovered with facts equal to a clean load's.")
    return "\n".join(lines)


def main() -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=12, help="kill points per variant")
    parser.add_argument("--out", default="docs/reliability_kill_sweep.md")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        results = sweep(Path(tmp), args.points)
    text = (f"# Kill sweep ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{time.monotonic() - started:.0f} s)\n\n{INVOICES} invoices per CRM, all three CRMs, then dbt.\n\n"
            + table(results) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0 if all(r.recovered for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
