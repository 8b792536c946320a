"""Talking to a real SalesMan server set up by ``shared/servers/salesman/setup.sh``: its API v3 (writes as
the captures in ``shared/api/salesman_real/writes/`` show them), its web UI (the only way to delete an
invoice row or undo a payment) and its own MariaDB (the ground truth the marts are compared with)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import requests

# Every write makes the server POST to its own /developer/webhooks.php (5 s timeout): with php -S's 4
# workers, at most 3 writes may be in flight or a write waits for a worker that waits for it.
WRITE_PARALLELISM = 3


class ServerError(AssertionError):
    """The server refused a write the scenario needs: the scenario itself is wrong, so the test fails."""


@dataclass
class Server:
    """One installed SM_HOME: its URL, credentials and database, read from the files setup.sh wrote."""

    home: Path
    base_url: str
    login: str
    api_key: str
    timezone: str
    password: str

    @classmethod
    def from_home(cls, home: Path, password: str) -> Server:
        env = dict(re.findall(r"export (\w+)='([^']*)'", (home / "env.sh").read_text()))
        return cls(home, env["SOURCES__SALESMAN__BASE_URL"], env["SOURCES__SALESMAN__LOGIN"],
                   env["SOURCES__SALESMAN__API_KEY"], env["SOURCES__SALESMAN__TIMEZONE"], password)

    def source_env(self) -> dict[str, str]:
        return {"SOURCES__SALESMAN__BASE_URL": self.base_url, "SOURCES__SALESMAN__LOGIN": self.login,
                "SOURCES__SALESMAN__API_KEY": self.api_key, "SOURCES__SALESMAN__TIMEZONE": self.timezone}

    @property
    def request_log(self) -> Path:
        return self.home / "logs" / "requests.jsonl"

    # --- the database ---------------------------------------------------------------------------------
    def sql(self, query: str) -> list[dict]:
        """Rows of ``query`` over the server's unix socket; the query must select one JSON_OBJECT per row.
        Amounts come back as exact decimals (DOUBLE(20,2) cast to DECIMAL in SQL, parsed as Decimal)."""
        proc = subprocess.run(["mariadb", f"--defaults-file={self.home / 'my.cnf'}", "salesman", "-N", "-B", "-r",
                               "-e", query], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise AssertionError(f"MariaDB query failed: {proc.stderr.strip()}\n{query}")
        return [json.loads(line, parse_float=Decimal) for line in proc.stdout.splitlines() if line.strip()]

    def credit_rows(self) -> list[dict]:
        """Every row of app_credit as the CRM stores it, with its deal's owner and currency."""
        return self.sql("""
            select json_object(
                'crid', c.crid, 'did', c.did, 'clid', c.clid, 'invoice', c.invoice,
                'summa', cast(cast(c.summa_credit as decimal(20,2)) as char),
                'nds', cast(cast(coalesce(c.nds_credit, 0) as decimal(20,2)) as char),
                'do', c.do, 'iduser', c.iduser, 'deal_iduser', d.iduser, 'rs', c.rs, 'tip', c.tip,
                'datum', date_format(c.datum, '%Y-%m-%d %H:%i:%s'), 'epoch', unix_timestamp(c.datum),
                'issue_date', date_format(c.datum, '%Y-%m-%d'),
                'datum_credit', date_format(c.datum_credit, '%Y-%m-%d'),
                'invoice_date', date_format(c.invoice_date, '%Y-%m-%d'),
                'idcurrency', d.idcurrency, 'idcourse', d.idcourse)
            from app_credit c left join app_dogovor d on d.did = c.did
            order by c.crid""")

    # --- the request log (router.php, one JSON line per API request) ----------------------------------
    def api_requests(self, since: int = 0) -> list[dict]:
        """API v3 requests logged after byte offset ``since`` (webhook callbacks excluded)."""
        with self.request_log.open("rb") as fh:
            fh.seek(since)
            lines = fh.read().decode().splitlines()
        return [r for r in map(json.loads, filter(None, lines)) if r["path"].startswith("/developer/v3/")]

    def request_log_offset(self) -> int:
        return self.request_log.stat().st_size if self.request_log.exists() else 0


class Api:
    """API v3 writes and reads, one session per thread (requests sessions are not thread-safe)."""

    def __init__(self, server: Server):
        self.server = server
        self.url = server.base_url.rstrip("/") + "/developer/v3/"
        self.headers = {"Content-Type": "application/json", "apikey": server.api_key, "login": server.login}
        self._local = threading.local()
        self.calls = 0

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def call(self, method: str, params: dict) -> dict:
        self.calls += 1
        resp = self._session().post(self.url + method, data=json.dumps(params, ensure_ascii=False).encode(),
                                    headers=self.headers, timeout=120)
        try:
            body = json.loads(resp.content, parse_float=Decimal)
        except ValueError:
            raise ServerError(f"{method} {params}: not JSON: {resp.text[:300]}") from None
        if not isinstance(body, dict) or body.get("result") == "Error" or "error" in body:
            raise ServerError(f"{method} {params}: {str(body)[:300]}")
        return body

    def many(self, calls: Iterable[tuple[str, dict]] | Iterable[Callable[[], object]],
             parallel: int = WRITE_PARALLELISM) -> list:
        """Run independent calls concurrently; each item is (method, params) or a function."""
        def one(item):
            return item() if callable(item) else self.call(*item)
        with ThreadPoolExecutor(parallel) as pool:
            return list(pool.map(one, list(calls)))


class WebUi:
    """The web UI's own endpoints for what API v3 cannot do: delete an invoice row, undo a payment."""

    def __init__(self, server: Server):
        self.server = server
        self.session = requests.Session()
        resp = self.session.post(server.base_url + "/login", timeout=60, allow_redirects=False,
                                 data={"action": "enter", "logi": server.login, "pwd": server.password})
        if "ses" not in self.session.cookies:
            raise ServerError(f"web UI login failed (HTTP {resp.status_code}): {resp.text[:200]}")

    def _deal_action(self, action: str, crid: int, did: int) -> dict:
        resp = self.session.post(self.server.base_url + "/content/core/core.deals.php", timeout=120,
                                 headers={"X-Requested-With": "XMLHttpRequest"},
                                 data={"action": action, "crid": crid, "did": did})
        try:
            body = resp.json()
        except ValueError:
            raise ServerError(f"{action} crid={crid}: not JSON: {resp.text[:300]}") from None
        if body.get("result") != "Успешно":
            raise ServerError(f"{action} crid={crid}: {body}")
        return body

    def delete(self, crid: int, did: int) -> dict:
        return self._deal_action("credit.delete", crid, did)

    def undo(self, crid: int, did: int) -> dict:
        return self._deal_action("credit.undoit", crid, did)


@dataclass
class Ledger:
    """What the scenario did, by crid, so that a test can name the rows a check is about."""

    deleted: dict[int, int] = field(default_factory=dict)  # crid -> did of rows deleted in the UI
    tags: dict[str, list[int]] = field(default_factory=dict)

    def tag(self, name: str, crid: int) -> None:
        self.tags.setdefault(name, []).append(int(crid))


def sm_home_from_env() -> Path | None:
    value = os.environ.get("SALESMAN_REAL_HOME")
    return Path(value) if value else None
