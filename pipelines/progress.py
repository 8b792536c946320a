"""Progress of a load: one short line of ours on the terminal, dlt's full counters in the log file.

dlt's ``LogCollector`` prints a block of counters per step (extract, normalize, load) the moment each step
starts and again every period; on a terminal that is dozens of lines per CRM for a load of a few seconds, in
dlt's words ("Resources: 4/4", "Normalize salesman in 1796182723.38"). A user wants to see that a long load is
moving and how far it got. So this collector keeps dlt's counting, writes dlt's own block unchanged to
``<data dir>/logs/progress.log`` (for whoever debugs a slow run), and shows on the terminal only a step that
has run for a whole period, as one line every period:

    SalesMan: extracting, 40,000 rows so far (invoice_rows 38,000, deals 2,000), 20 s
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import TextIO

from dlt.common.runtime.collector import LogCollector

from .settings import data_dir

PERIOD = 10.0  # seconds between lines; a step shorter than this shows none
VERBS = {"extract": "extracting", "normalize": "normalizing", "load": "loading into the warehouse"}
# the counters dlt keeps of its own work units, not of rows: shown apart from the tables
UNITS = {"Resources": "resources", "Files": "files", "Jobs": "load jobs"}


def _file_logger() -> logging.Logger | None:
    logger = logging.getLogger("crm_invoices.progress")
    if logger.handlers:
        return logger
    path = data_dir() / "logs" / "progress.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # no data dir: the run fails on that with its own message; dlt's block is then not kept
        return None
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5 << 20, backupCount=3, encoding="utf-8",
                                                   delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # never onto the terminal through the root logger
    return logger


class RunProgress(LogCollector):
    """dlt's collector for one CRM (``display``: "SalesMan", "Bitrix24 (spb)")."""

    def __init__(self, display: str, terminal: TextIO | None = None, period: float = PERIOD):
        super().__init__(log_period=period, logger=_file_logger() or "dlt_logger", dump_system_stats=False)
        self.display = display
        self.terminal = terminal or sys.stderr
        self._step_started: float | None = None

    def _start(self, step: str) -> None:
        super()._start(step)
        self._step_started = self._clock()

    def dump_counters(self) -> None:
        if isinstance(self.logger, logging.Logger):
            super().dump_counters()
        if self._step_started is not None and self._clock() - self._step_started >= self.log_period:
            self.terminal.write(self.line() + "\n")
            self.terminal.flush()

    def _stop(self) -> None:
        # the last block goes to the file; the terminal gets the run's summary instead of a final line per step
        self._step_started = None
        super()._stop()

    def line(self) -> str:
        """The terminal line for the current step, from dlt's counters."""
        verb = VERBS.get((self.step or "").split(" ", 1)[0].lower(), (self.step or "working").lower())
        units, tables = [], []
        for key, count in (self.counters or {}).items():
            info = self.counter_info[key]
            if info.description in UNITS:
                total = f"/{info.total:,}" if info.total else ""
                units.append(f"{count:,}{total} {UNITS[info.description]}")
            elif not info.description.startswith("_dlt"):
                tables.append((count, info.description))
        tables.sort(reverse=True)
        parts = [f"{self.display}: {verb}"]
        if tables:
            shown = ", ".join(f"{name} {count:,}" for count, name in tables[:3])
            more = ", ..." if len(tables) > 3 else ""
            parts.append(f"{sum(c for c, _ in tables):,} rows so far ({shown}{more})")
        elif units:
            parts.append(", ".join(units))
        parts.append(f"{self._clock() - self._step_started:.0f} s")
        return ", ".join(parts)
