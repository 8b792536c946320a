"""The package installs like any other: a wheel (not ``-e``) into a fresh virtualenv, then ``crm-invoices run
--demo`` from an empty folder loads all three CRMs and builds the marts from the dbt project inside the wheel.

Offline: the wheel is built from this checkout without build isolation, and the fresh venv sees the test
environment's third-party packages through a ``.pth`` line (not its ``crm_invoices``: that one is editable, and
an editable finder in a ``.pth``-added directory is never activated).
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import duckdb
import pytest
from crm_invoices.pipelines.registry import NAMES
from crm_invoices.sandbox import expected as truth
from crm_invoices.sandbox.world import World

from tests.conftest import assert_ok

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, cwd=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("crm_invoices-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))
    # dependencies only: the test env's site-packages, whose crm_invoices is editable and so inert here
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    proc = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                           "--ignore-installed", "--no-index", str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def _installed_files(venv: Path) -> dict[str, tuple[int, int]]:
    pkg = next(venv.glob("lib/python*/site-packages/crm_invoices"))
    return {str(p.relative_to(pkg)): (p.stat().st_size, p.stat().st_mtime_ns) for p in pkg.rglob("*")}


def test_wheel_holds_one_namespace_and_the_dbt_project(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("crm_invoices-")}
    assert top == {"crm_invoices"}
    tracked = subprocess.run(["git", "ls-files", "models"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    project = {f"crm_invoices/{path}" for path in tracked if path.endswith((".sql", ".yml", ".csv"))}
    assert project and project <= set(names), sorted(project - set(names))


def test_installed_run_demo_from_an_empty_folder(venv, tmp_path):
    before = _installed_files(venv)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "RUNTIME__DLTHUB_TELEMETRY": "false", "DO_NOT_TRACK": "1"}
    proc = subprocess.run([str(venv / "bin" / "crm-invoices"), "run", "--demo", "--demo-invoices", "12",
                           "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert_ok(proc)
    assert "site-packages" not in proc.stdout + proc.stderr
    # the code that ran is the wheel's, and it wrote nothing beside itself
    code = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import crm_invoices.pipelines.settings as s; print(s.MODELS_DIR)"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert code.startswith(str(venv)) and code.endswith("crm_invoices/models")
    assert _installed_files(venv) == before
    world = World.generate(invoices=dict.fromkeys(NAMES, 12), anomalies=True)
    want = sorted((e["source_system"], e["invoice_key"], e["amount_gross"]) for e in truth.expected(world, "invoices"))
    with duckdb.connect(str(tmp_path / "data" / "crm_invoices.duckdb"), read_only=True) as con:
        got = sorted(con.execute("select source_system, invoice_key, amount_gross from marts.fct_invoices").fetchall())
    assert got == want
    assert sorted(os.listdir(tmp_path)) == ["data"]
