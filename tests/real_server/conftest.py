"""The real-SalesMan suite: runs only against a server installed by shared/servers/salesman/setup.sh, named
by ``SALESMAN_REAL_HOME`` (its SM_HOME). ``.ci/salesman_real.sh`` installs the packages, sets the server up
in a temp folder, runs this suite and stops the server. Without that variable the folder is not collected,
so ``make test`` needs no PHP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .salesman_real import Server, sm_home_from_env

collect_ignore_glob = [] if sm_home_from_env() else ["test_*.py"]


@pytest.fixture(scope="session")
def server() -> Server:
    home = sm_home_from_env()
    assert home is not None and (home / "env.sh").is_file(), (
        "SALESMAN_REAL_HOME must name the SM_HOME of a running server set up by shared/servers/salesman/setup.sh")
    return Server.from_home(home, os.environ.get("SM_PASSWORD", "Adm1n!pass"))


@pytest.fixture(scope="session")
def report(server: Server):
    """Figures of the run (rows, pages, requests and seconds per sync), written to $SALESMAN_REAL_HOME/
    report.json and printed at the end, for docs/REAL_SERVER.md and the CI log."""
    figures: dict = {"syncs": []}
    yield figures
    path = Path(server.home) / "report.json"
    path.write_text(json.dumps(figures, indent=2, default=str))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    home = sm_home_from_env()
    path = home / "report.json" if home else None
    if path and path.exists():
        terminalreporter.section("real SalesMan figures")
        terminalreporter.write_line(path.read_text())
