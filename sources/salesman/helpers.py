"""SalesMan API plumbing: the request envelope, errors users can act on, row parsing, the list scan."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import islice

import pendulum
import requests as _requests

from ..common import SourceError, loads_exact, looks_like_json_object, make_session, money
from .settings import (
    API_PREFIX,
    AUTH_ERROR_CODES,
    FINGERPRINT_FIELDS,
    INVOICE_LIST_ORDER,
    SOURCE_NAME,
)


def _fail(cause: str, fix: str) -> SourceError:
    return SourceError(SOURCE_NAME, cause, fix)


def parse_paid_flag(raw: object) -> bool:
    """The CRM's own rule: an invoice row is paid only when ``do == 'on'``.

    'yes' (set by ``invoice/add do:"yes"``) is shown unpaid everywhere and books no money; '' comes from an
    undone payment; 'no' is the column default.
    """
    return raw == "on"


def parse_local_datetime(text: str | None, zone: str) -> pendulum.DateTime | None:
    """``YYYY-MM-DD HH:MM:SS`` wall time of the account's zone, as an aware UTC datetime."""
    if not text:
        return None
    return pendulum.parse(text, tz=zone, strict=False).in_timezone("UTC")


def parse_date(text: str | None) -> date | None:
    if not text:
        return None
    return date.fromisoformat(str(text)[:10])


def fingerprint(row: dict) -> str:
    payload = json.dumps([str(row.get(k)) for k in FINGERPRINT_FIELDS], ensure_ascii=False)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


class SalesmanClient:
    """POSTs JSON with ``Content-Type: application/json`` exactly (anything else, even ``; charset=utf-8``,
    makes the server ignore the body and the auth headers) and lower-case ``apikey``/``login`` headers."""

    def __init__(self, base_url: str, login: str, api_key: str, *, timeout: float = 60,
                 max_attempts: int = 5, backoff_factor: float = 1.0):
        self.base_url = base_url.rstrip("/")
        self.session = make_session(
            timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor,
            # A PHP fatal error answers HTTP 200 with an HTML body: transient (deadlocks), so retry it.
            retry_condition=lambda resp, exc: resp is not None and resp.status_code == 200
            and bool(resp.content) and not looks_like_json_object(resp),
        )
        self.headers = {"Content-Type": "application/json", "apikey": api_key, "login": login}
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.requests_made = 0  # calls made (each may have been retried); read by the benchmark
        self._count_lock = threading.Lock()  # calls come from several threads (parallel reads)

    def call(self, method: str, params: dict | None = None) -> dict:
        url = f"{self.base_url}{API_PREFIX}{method}"
        with self._count_lock:
            self.requests_made += 1
        try:
            resp = self.session.post(url, data=json.dumps(params or {}), headers=self.headers)
        except _requests.Timeout:
            raise _fail(f"{method} did not answer within {self.timeout:g} s, {self.max_attempts} times in a row "
                        f"(the server at {self.base_url} stopped answering).",
                        "check that the server is up and not overloaded, or raise SOURCES__SALESMAN__REQUEST_TIMEOUT; "
                        "nothing from this run was loaded and the next run starts from the same state.") from None
        except _requests.exceptions.ChunkedEncodingError as exc:
            raise _fail(f"{method}: the connection broke in the middle of an answer, {self.max_attempts} times in a "
                        f"row ({_reason(exc)}).",
                        "check the network path to the server (proxy, VPN, load balancer) and retry; nothing from "
                        "this run was loaded and the next run starts from the same state.") from None
        except _requests.RequestException as exc:
            raise _fail(f"cannot reach the API at {url} ({type(exc).__name__}: {_reason(exc)}).",
                        "check SOURCES__SALESMAN__BASE_URL and that the server is up; the run loaded nothing "
                        "and the next run starts from the same state.") from None
        if resp.status_code != 200:
            raise _fail(f"{method} answered HTTP {resp.status_code} after retries.",
                        "the server is failing; retry later. Nothing from this run was loaded.")
        if not resp.content.strip():
            raise _fail(f"{method} answered an empty body: this URL is not a SalesMan API v3 endpoint.",
                        "set SOURCES__SALESMAN__BASE_URL to the CRM's root URL (the API lives at "
                        "<base_url>/developer/v3/).")
        if not looks_like_json_object(resp):
            snippet = resp.content[:120].decode("utf-8", "replace").replace("\n", " ")
            raise _fail(f"{method} returned a malformed page (not a complete JSON object: {snippet!r}).",
                        "this is a server-side error (often a PHP fatal error); retry later. Nothing from this "
                        "run was loaded.")
        try:
            body = loads_exact(resp.content)
        except ValueError as exc:
            raise _fail(f"{method} returned malformed JSON ({exc}).",
                        "retry later; nothing from this run was loaded.") from None
        if isinstance(body, dict) and (body.get("result") == "Error" or "error" in body):
            error = body.get("error") or {}
            code = error.get("code")
            text = error.get("text", "")
            try:
                code = int(code)
            except (TypeError, ValueError):
                pass
            if code in AUTH_ERROR_CODES:
                raise _fail(f"the API rejected the credentials (error {code}: {text}).",
                            "check SOURCES__SALESMAN__API_KEY (Настройки → API) and SOURCES__SALESMAN__LOGIN "
                            "(a user of the account whose role sees all invoices).")
            raise _fail(f"{method} failed with error {code}: {text}.",
                        "check the request parameters; this is likely a bug, please report it.")
        if not isinstance(body, dict):
            raise _fail(f"{method} returned {type(body).__name__}, not an object.", "retry later.")
        return body


def _reason(exc: Exception) -> str:
    text = str(exc)
    # urllib3 messages repeat the pool and URL; the class name and the last clause are what users need.
    return text.rsplit(":", 1)[-1].strip(" )'\"") or type(exc).__name__


@dataclass
class ScanResult:
    ids: set[int]
    count: int
    scans: int
    pages: int


def read_pages(client: SalesmanClient, params: dict, parallel: int = 1) -> Iterator[tuple[int, dict]]:
    """Every page of ``invoice/list`` for ``params``, as ``(page_no, body)`` in page order: page 1 first
    (it says how many there are), the others with up to ``parallel`` requests in flight."""
    def page(no: int) -> dict:
        return client.call("invoice/list", {"offset": no, **params})

    first = page(1)
    yield 1, first
    pageall = _page_parts(first, 1)[2]
    if pageall <= 1 or not first.get("data"):
        return
    numbers = iter(range(2, pageall + 1))
    if parallel <= 1:
        for no in numbers:
            yield no, page(no)
        return
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="salesman")
    try:
        # a bounded window of requests ahead of the reader: memory stays flat however long the list is
        ahead = deque((no, pool.submit(page, no)) for no in islice(numbers, 2 * parallel))
        while ahead:
            no, future = ahead.popleft()
            body = future.result()
            nxt = next(numbers, None)
            if nxt is not None:
                ahead.append((nxt, pool.submit(page, nxt)))
            yield no, body
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _page_parts(body: dict, page: int) -> tuple[list, int, int]:
    data, params = body.get("data"), body.get("params")
    if not isinstance(data, list) or not isinstance(params, dict) or "pageall" not in params:
        raise _fail(f"invoice/list page {page} has no data/params.pageall (got keys {sorted(body)}).",
                    "check that SOURCES__SALESMAN__BASE_URL points at SalesMan API v3.")
    for row in data:
        if not isinstance(row, dict) or "crid" not in row or "summa" not in row:
            raise _fail(f"invoice/list page {page} has a row without crid/summa: {str(row)[:100]}.",
                        "the server returned a malformed page; retry later.")
    return data, int(body.get("count", params.get("count", 0))), int(params["pageall"])


# repair(seen, count, tie_values) yields more rows of the list (narrow reads) until len(seen) == count
Repair = Callable[[set, int, set], Iterator[list[dict]]]


def scan_invoice_list(client: SalesmanClient, max_attempts: int, result: dict, *, parallel: int = 1,
                      repair: Repair | None = None,
                      verify: Callable[[set[int]], bool] | None = None) -> Iterator[tuple[int, list[dict]]]:
    """Read every page of ``invoice/list``, yielding ``(scan_no, rows)``, each row once per scan.

    The server orders by creation date with no tie-breaker and pages with LIMIT, so rows that share a
    creation date (every partial-payment remainder does; API writes store whole minutes) can be read twice
    or skipped, and MariaDB repeats the same choice on every request, so reading the pages again does not
    help. A scan is trusted only when ``count`` stayed the same on every page and the distinct ids seen equal
    it. When fewer came, ``repair`` reads the missing rows through narrow queries (a tie group, a deal)
    whose answer fits one page. Rows that changed during the read (a count that moved, more ids than the
    count, a narrow query that shows a change, a ``verify(ids)`` that finds a row the read should have had)
    make the list be read again; ids of consecutive clean scans with the same count are united, up to
    ``max_attempts`` scans. Rows of every scan are yielded (merge keeps the latest), and the final id set
    goes to ``result`` for the delete detection.
    """
    union: set[int] = set()
    union_count: int | None = None
    pages = 0
    for attempt in range(1, max_attempts + 1):
        seen: dict[int, str] = {}  # crid -> fingerprint of the version yielded
        counts: set[int] = set()
        # creation time -> rows of it that came twice: a tie group loses exactly as many rows as it repeats
        ties: Counter[str] = Counter()
        page_size = None
        for page, body in read_pages(client, INVOICE_LIST_ORDER, parallel):
            pages += 1
            data, count, pageall = _page_parts(body, page)
            counts.add(count)
            if page == 1 and pageall > 1:
                page_size = len(data)
            if page_size is not None and len(data) > page_size:
                raise _fail(f"invoice/list page {page} has {len(data)} rows, more than the first page's "
                            f"{page_size}.", "retry; if it persists, report it.")
            yield attempt, _fresh(data, seen, ties)
        stable = len(counts) == 1
        count = next(iter(counts)) if stable else -1
        if stable and len(seen) < count and repair is not None:
            budget = Counter(ties)
            for rows in repair(seen, count, set(ties)):
                fresh = _repaired(rows, seen, budget)
                if fresh is None:  # not what ties lose: the list changed while it was read
                    stable = False
                    break
                yield attempt, fresh
        ids = set(seen)
        if not stable and count >= 0:  # a changed read: never unite it with the next one
            union, union_count = set(), None
            continue
        if stable and count == union_count:
            union |= ids
        else:
            union, union_count = set(ids), count
        if stable and len(union) > count:
            union = set(ids)  # rows were replaced between scans: the latest scan alone is the truth
        if stable and len(union) == count:
            if verify is not None and not verify(union):
                union, union_count = set(), None  # a row moved across pages already read: read it all again
                continue
            result.update(ScanResult(union, count, attempt, pages).__dict__)
            return
    raise _fail(f"invoice/list changed while it was being read: {len(union)} distinct invoice rows against a "
                f"count of {union_count} after {max_attempts} scans.",
                "rerun when the CRM is quieter, or raise SOURCES__SALESMAN__MAX_SCAN_ATTEMPTS. Nothing from this "
                "run was loaded.")


def _fresh(rows: list[dict], seen: dict[int, str], ties: Counter[str]) -> list[dict]:
    """The rows not seen yet in this scan (marked seen); creation times of repeated ones are counted in
    ``ties``."""
    out = []
    for row in rows:
        crid = int(row["crid"])
        if crid in seen:
            ties[str(row.get("date_create"))] += 1
            continue
        seen[crid] = fingerprint(row)
        out.append(row)
    return out


def _repaired(rows: list[dict], seen: dict[int, str], budget: Counter[str]) -> list[dict] | None:
    """Rows a narrow query added, or None when they show a change rather than a tie loss: a row already
    read that now reads differently, or more new rows of a creation time than its tie group repeated (a
    group cut by a page boundary loses as many rows as it shows twice; a row lost any other way means the
    list moved under the reader)."""
    out = []
    for row in rows:
        crid = int(row["crid"])
        if crid in seen:
            if seen[crid] != fingerprint(row):
                return None
            continue
        stamp = str(row.get("date_create"))
        if budget[stamp] <= 0:
            return None
        budget[stamp] -= 1
        seen[crid] = fingerprint(row)
        out.append(row)
    return out


def list_row_record(row: dict, zone: str, scan: int, db_zone: str | None = None) -> dict:
    """One invoice/list row, reduced to business fields with exact types.

    The list renders ``date_create`` in the *database server's* zone (its own MySQL connection never sets
    the account zone, unlike ``invoice/info``): ``db_zone`` when the two differ. The business date is the
    creation date in the account's zone.
    """
    created_at = parse_local_datetime(row.get("date_create"), db_zone or zone)
    return {
        "crid": int(row["crid"]),
        "did": int(row["did"]) if row.get("did") is not None else None,
        "clid": int(row["clid"]) if row.get("clid") is not None else None,
        "client": row.get("client"),
        "pid": row.get("pid") or None,
        "person": row.get("person"),
        "deal": row.get("deal"),
        "invoice": None if row.get("invoice") is None else str(row["invoice"]),
        "contract": row.get("contract") or None,
        "summa": money(row["summa"]),
        "date_create": row.get("date_create"),
        "created_at": created_at,
        "issue_date": created_at.in_timezone(zone).date() if created_at else None,
        "date_plan": parse_date(row.get("date_plan")),
        "date_fact": parse_date(row.get("date_fact")),
        # The list's own `do` depends on the caller's rights; `color is null` is the reliable paid test.
        "is_paid_list": row.get("color") is None,
        "mc": row.get("mc"),
        "company": row.get("company"),
        "_fingerprint": fingerprint(row),
        "_scan": scan,
    }


def info_record(data: dict, zone: str, list_fp: str) -> dict:
    currency = data.get("currency") if isinstance(data.get("currency"), dict) else {}
    course = data.get("course") if isinstance(data.get("course"), dict) else {}
    template = data.get("template")
    if isinstance(template, list):  # the v3 doc shows a one-element array, the server an object
        template = template[0] if template else None
    return {
        "crid": int(data["crid"]),
        "invoice": None if data.get("invoice") is None else str(data["invoice"]),
        "datum": data.get("datum"),
        "created_at": parse_local_datetime(data.get("datum"), zone),
        "datum_credit": parse_date(data.get("datum_credit")),
        "invoice_date": parse_date(data.get("invoice_date")),
        "contractnum": data.get("contractnum"),
        "summa": money(data.get("summa")),
        "nds": money(data.get("nds")) if data.get("nds") is not None else Decimal("0"),
        "clid": data.get("clid"),
        "did": data.get("did"),
        "tip": data.get("tip"),
        "rs": data.get("rs"),
        "iduser": data.get("iduser"),
        "do": data.get("do"),
        "is_paid": parse_paid_flag(data.get("do")),
        "template_id": (template or {}).get("id") if isinstance(template, dict) else None,
        # idcourse is filled with the deal's idcurrency by the server (a bug): course.id is the real one.
        "currency_id": currency.get("id"),
        "currency_code": currency.get("code"),
        "currency_course_current": money(currency.get("course")),
        "course_id": course.get("id"),
        "course": money(course.get("course")),
        "course_datum": course.get("datum"),
        "_list_fingerprint": list_fp,
        "details_via": "invoice/info",
    }


def deal_invoice_record(item: dict, did: int, list_fp: str) -> dict:
    """An invoice entry of ``deal/list`` with ``invoice: true``: the same VAT, raw paid flag, type and bank
    account as ``invoice/info``, without the deal's display currency (deal/list does not expose it)."""
    return {
        "crid": int(item["id"]), "invoice": None if item.get("invoice") is None else str(item["invoice"]),
        "datum": None, "created_at": None, "datum_credit": None,
        "invoice_date": parse_date(item.get("date_do")), "contractnum": item.get("contract"),
        "summa": money(item.get("summa")),
        "nds": money(item.get("nds")) if item.get("nds") is not None else Decimal("0"),
        "clid": None, "did": did, "tip": item.get("tip"), "rs": item.get("rs"), "iduser": None,
        "do": item.get("do"), "is_paid": parse_paid_flag(item.get("do")), "template_id": None,
        "currency_id": None, "currency_code": None, "currency_course_current": None, "course_id": None,
        "course": None, "course_datum": None, "_list_fingerprint": list_fp, "details_via": "deal/list",
    }
