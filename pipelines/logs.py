"""Quiet terminals: dlt's own log lines (warnings, retries, the tracebacks of failed load jobs) go to
``<data dir>/logs/dlt.log``; the terminal shows the CLI's progress, its messages and the summary.

dlt takes the first handler already on its ``dlt`` logger when it sets logging up (``_create_logger``), so a
file handler installed before the first pipeline is the one it formats and writes to."""

from __future__ import annotations

import logging
import logging.handlers

from .settings import data_dir


def route_dlt_logs() -> None:
    logger = logging.getLogger("dlt")
    if any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        return
    path = data_dir() / "logs" / "dlt.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # no data dir to write to: the run fails on that with its own message; logs stay on stderr
        return
    logger.addHandler(logging.handlers.RotatingFileHandler(path, maxBytes=5 << 20, backupCount=3, encoding="utf-8",
                                                           delay=True))
    # a log line that cannot be written (a full disk) must not print logging's own traceback on the terminal
    logging.raiseExceptions = False
