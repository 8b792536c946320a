"""What a run owes the warehouse: one writer at a time, and local dlt state that matches the warehouse.

One writer. ``crm-invoices run`` and ``models`` take an exclusive ``flock`` on ``<warehouse>.lock`` (beside
the DuckDB file, so every working dir that points at the same file shares it) before they call any CRM. The
kernel drops the lock when the process dies, ``kill -9`` included, so a stale lock never blocks the next
run; the file only carries who holds it (pid, command, start time) for the message of the run it refuses.
A program that holds the DuckDB file itself (a dashboard, a notebook) is found the same way, by asking
DuckDB for a writable connection and reading the holder out of its lock error. On PostgreSQL
(``--destination postgres``) the same flock lives under the data dir, named after host/port/database, and a
session advisory lock on a connection held for the whole run keeps out writers from other folders and hosts;
the server drops it when that connection ends (see :func:`exclusive_postgres`).

State that belongs to its warehouse. dlt keeps each pipeline's incremental state (SalesMan fingerprints,
Bitrix24 cursors, seen ids) in the local working dir *and* commits it with every load into the warehouse's
``_dlt_pipeline_state``. Local state is trusted only while it is the very state of the warehouse's last
complete load; a new or deleted warehouse, another warehouse loaded from the same folder, or a backup
restored over the file (on PostgreSQL: a database dropped and created again, or restored from a
dump) all break that, and the local working dir is then dropped and rebuilt from the
warehouse (which may have no state at all: then the next run is a first load). A pending load package of a
dropped working dir is lost on purpose: it is extracted again from the CRM, from the warehouse's own state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Exit code of a run refused because another process writes (or holds) the warehouse.
EXIT_BUSY = 4

_DUCKDB_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseError(Exception):
    """The warehouse cannot be used by this run; ``str()`` is the whole user-facing message."""

    exit_code = 1


class WarehouseBusy(WarehouseError):
    exit_code = EXIT_BUSY


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    started: str
    host: str

    def describe(self) -> str:
        return f"crm-invoices {self.command} (pid {self.pid} on {self.host}, started {self.started})"


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


@contextlib.contextmanager
def exclusive(db: Path, command: str) -> Iterator[None]:
    """Hold the warehouse for this process, or raise :class:`WarehouseBusy` at once (no waiting)."""
    with _flocked(lock_path(db), str(db), command, f"cannot write beside the warehouse {db}",
                  "point DESTINATION__DUCKDB__CREDENTIALS or CRM_INVOICES_DATA_DIR at one that is"):
        _refuse_if_duckdb_is_held(db)
        yield


@contextlib.contextmanager
def writer_lock(command: str) -> Iterator[None]:
    """The one-writer lock of the current destination (``--destination``): DuckDB's file lock, or
    PostgreSQL's (see :func:`exclusive_postgres`)."""
    from .destination import is_postgres, postgres_target
    from .settings import database_path

    if is_postgres():
        with exclusive_postgres(postgres_target(), command):
            yield
    else:
        with exclusive(database_path(), command):
            yield


# Session-level advisory locks are per database: one constant key is "the crm-invoices writer" of that
# database. (A bigint: the first 8 bytes of sha1("crm-invoices writer"), as a signed integer.)
ADVISORY_KEY = int.from_bytes(__import__("hashlib").sha1(b"crm-invoices writer").digest()[:8], "big", signed=True)


@contextlib.contextmanager
def exclusive_postgres(target, command: str) -> Iterator[None]:
    """One writer per PostgreSQL database. Two layers: a ``flock`` on a file under the data dir named after
    host/port/database (refuses a second run from the same working folder with the holder's pid, as on
    DuckDB) and a session advisory lock held by a connection open for the whole run (refuses writers from
    other folders and other machines). The server releases the advisory lock when that connection ends,
    so a killed run (``kill -9``: its socket closes) never blocks the next one. Opening that connection is
    also where wrong credentials, a server that is down or a database that does not exist are found: before
    any CRM is called."""
    from .settings import data_dir

    path = data_dir() / "locks" / f"{target.key()}.lock"
    with _flocked(path, target.describe(), command, f"cannot write the lock file of the {target.describe()}",
                  "point CRM_INVOICES_DATA_DIR at one that is"):
        app = f"crm-invoices {command} (pid {os.getpid()} on {socket.gethostname()})"
        con = target.connect(app)
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("select pg_try_advisory_lock(%s)", (ADVISORY_KEY,))
                (got,) = cur.fetchone()
                if not got:
                    raise WarehouseBusy(
                        f"crm-invoices: the warehouse {target.describe()} is being written by "
                        f"{_advisory_holder(cur)}. Fix: wait for that run to finish (or stop it), then run "
                        "again; this run called no CRM and changed nothing.")
            yield
        finally:
            con.close()  # ends the session: the advisory lock goes with it


def _advisory_holder(cur) -> str:
    key = ADVISORY_KEY & 0xFFFFFFFFFFFFFFFF
    cur.execute("select a.application_name, a.pid, a.client_addr, a.backend_start from pg_locks l "
                "join pg_stat_activity a on a.pid = l.pid where l.locktype = 'advisory' and l.granted "
                "and l.classid = %s and l.objid = %s", (key >> 32, key & 0xFFFFFFFF))
    row = cur.fetchone()
    if row is None:
        return "another crm-invoices process"
    app, pid, addr, started = row
    return (f"{app or 'another session'} (server backend pid {pid}, from {addr or 'a local socket'}, "
            f"connected {started:%Y-%m-%d %H:%M:%S %Z})")


@contextlib.contextmanager
def _flocked(path: Path, what: str, command: str, cannot: str, fix_dir: str) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WarehouseError(
            f"crm-invoices: {cannot} ({exc.strerror}: {exc.filename}). "
            f"Fix: make that directory writable for this user (or {fix_dir}); nothing was loaded.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            who = holder.describe() if holder else "another crm-invoices process"
            raise WarehouseBusy(
                f"crm-invoices: the warehouse {what} is being written by {who}. Fix: wait for that run to "
                f"finish (or stop it), then run again; this run called no CRM and changed nothing.") from None
        _write_holder(fd, command)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _write_holder(fd: int, command: str) -> None:
    info = {"pid": os.getpid(), "command": command, "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


def _read_holder(fd: int) -> Holder | None:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"null")
        return Holder(int(info["pid"]), str(info["command"]), str(info["started"]), str(info["host"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _refuse_if_duckdb_is_held(db: Path) -> None:
    """A dashboard with the file open (even read-only) keeps every writer out: say so now, not after the
    extraction, and name the program."""
    if not db.exists():
        return
    import duckdb

    try:
        duckdb.connect(str(db)).close()
    except duckdb.IOException as exc:
        message = held_by_other_program(db, exc)
        if message:
            raise WarehouseBusy(message) from None
        raise


def held_by_other_program(db: Path, exc: BaseException) -> str | None:
    """The user-facing message for DuckDB's "Conflicting lock" error anywhere in ``exc``'s chain."""
    from crm_invoices.sources.common import causes

    for cause in causes(exc):
        match = _DUCKDB_HOLDER.search(str(cause))
        if match:
            return (f"crm-invoices: the warehouse {db} is open in another program ({match['exe']}, pid "
                    f"{match['pid']}): DuckDB lets no one write a file that another process has open. Fix: "
                    "close that program's connection (a dashboard, notebook or DuckDB shell), then run again; "
                    "this run changed nothing in the warehouse.")
    return None


_NO_ROOM = re.compile(r"No space left on device|File too large|Disk quota exceeded")


def out_of_room(exc: BaseException) -> str | None:
    """The user-facing cause when a write failed for want of disk space (ENOSPC, EFBIG, EDQUOT)."""
    import errno

    from crm_invoices.sources.common import causes

    for cause in causes(exc):
        reason = _NO_ROOM.search(str(cause))
        if reason or (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)):
            return (f"no room to write the warehouse or dlt's working files ({reason[0] if reason else cause}). "
                    "Fix: free disk space (or move DESTINATION__DUCKDB__CREDENTIALS / CRM_INVOICES_DATA_DIR to a "
                    "disk with room), then run again; nothing of this run was committed for this CRM and the next "
                    "run loads it.")
    return None


def reconcile_local_state(pipeline, db: Path | None) -> str | None:
    """Drop the pipeline's local working dir unless its state is the warehouse's last committed state, then
    let dlt restore state and schemas from the warehouse. Returns a note for the log when it dropped.

    ``db`` is the DuckDB file (``None`` for a destination without a local file: then the destination is
    always asked)."""
    from dlt.common.destination.exceptions import DestinationUndefinedEntity
    from dlt.pipeline.state_sync import load_pipeline_state_from_destination

    if not pipeline.has_data and not pipeline.has_pending_data:
        remote_exists = db is None or db.exists()
        if remote_exists:
            pipeline.sync_destination()  # a wiped working dir against a full warehouse: dlt restores it
        return None
    local_hash = pipeline.state.get("_version_hash")
    remote_hash = None
    if db is None or db.exists():
        try:
            with pipeline.destination_client() as client:
                remote = load_pipeline_state_from_destination(pipeline.pipeline_name, client)
            remote_hash = remote.get("_version_hash") if remote else None
        except DestinationUndefinedEntity:
            remote_hash = None
    if remote_hash is not None and remote_hash == local_hash:
        return None
    why = ("the warehouse holds no state of this pipeline (a new, deleted or other warehouse)" if remote_hash is None
           else "the warehouse's state is not the local one (another warehouse, or one restored from a backup)")
    pipeline.drop()
    if db is None or db.exists():
        pipeline.sync_destination()
    return f"{pipeline.pipeline_name}: local state dropped: {why}; rebuilt from the warehouse"


def log(message: str) -> None:
    print(f"crm-invoices: {message}", file=sys.stderr)
