"""SalesMan rows: parsing (amounts, dates, the paid flag), fingerprints, the records loaded, the list scan."""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import islice
from zoneinfo import ZoneInfo

import pendulum

from ..common import money
from .client import SalesmanClient
from .client import fail as _fail
from .settings import FINGERPRINT_FIELDS, INVOICE_LIST_ORDER


def parse_paid_flag(raw: object) -> bool:
    """The CRM's own rule: an invoice row is paid only when ``do == 'on'``.

    'yes' (set by ``invoice/add do:"yes"``) is shown unpaid everywhere and books no money; '' comes from an
    undone payment; 'no' is the column default.
    """
    return raw == "on"


def parse_local_datetime(text: str | None, zone: str) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` wall time of the account's zone, as an aware UTC datetime.

    A wall time that occurs twice (clocks set back) is the later one; one that does not occur (clocks set
    forward) is read with the offset before the change: pendulum's rules, with the standard library's
    parser and one zone object per zone (a row costs microseconds, not a time-zone file load)."""
    if not text:
        return None
    try:
        local = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return pendulum.parse(text, tz=zone, strict=False).in_timezone("UTC")
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    tz = _zone(zone)
    early, late = local.replace(tzinfo=tz), local.replace(tzinfo=tz, fold=1)
    return (late if late.utcoffset() < early.utcoffset() else early).astimezone(UTC)


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def as_int(value: object) -> int | None:
    """An id as the warehouse keeps it (bigint): PHP may send it as a number or a numeric string."""
    return None if value is None or value == "" else int(value)


def parse_date(text: str | None) -> date | None:
    if not text:
        return None
    return date.fromisoformat(str(text)[:10])


_FINGERPRINT_JSON = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(..., ensure_ascii=False) builds per call


def fingerprint(row: dict) -> str:
    payload = _FINGERPRINT_JSON.encode([str(row.get(k)) for k in FINGERPRINT_FIELDS])
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


@dataclass
class ScanResult:
    ids: set[int]
    count: int
    scans: int
    pages: int


# pages read ahead of the reader (~2 MB of decoded rows at 30 a page): enough for the requests to go on
# while the reader shapes and writes a batch of 5,000 rows at 80 ms RTT
READ_AHEAD_PAGES = 64


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
        # a bounded window of requests ahead of the reader: memory stays flat however long the list is, and
        # the requests go on while the reader shapes a batch (only `parallel` of them are in flight at once)
        ahead = deque((no, pool.submit(page, no)) for no in islice(numbers, max(2 * parallel, READ_AHEAD_PAGES)))
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
        seen[crid] = row["_fingerprint"] = fingerprint(row)  # kept for list_row_columns
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
        seen[crid] = row["_fingerprint"] = fingerprint(row)
        out.append(row)
    return out


def list_row_record(row: dict, zone: str, scan: int, db_zone: str | None = None) -> dict:
    """One invoice/list row, reduced to business fields with exact types.

    The list renders ``date_create`` in the *database server's* zone (its own MySQL connection never sets
    the account zone, unlike ``invoice/info``): ``db_zone`` when the two differ. The business date is the
    creation date in the account's zone. The list's own ``do`` depends on the caller's rights: ``color is
    null`` is the reliable paid test.
    """
    return {name: values[0] for name, values in list_row_columns([row], [scan], zone, db_zone).items()}


@functools.lru_cache(maxsize=1 << 16)
def _created(text: str | None, zone: str, db_zone: str) -> tuple[datetime | None, date | None]:
    # rows share creation times (whole minutes, remainder rows): parse each distinct one once
    created_at = parse_local_datetime(text, db_zone)
    return created_at, created_at.astimezone(_zone(zone)).date() if created_at else None


@functools.lru_cache(maxsize=1 << 16)
def _date_of(text: str | None) -> date | None:
    # few distinct dates among many rows: parse each once
    return parse_date(text)


def list_row_columns(rows: list[dict], scans: list[int], zone: str, db_zone: str | None = None) -> dict[str, list]:
    """The same values as :func:`list_row_record` of each row, column by column (one list per column, no
    dict per row): the first load shapes every row of the list, so this is its hot path."""
    created = [_created(r.get("date_create"), zone, db_zone or zone) for r in rows]
    return {
        "crid": [int(r["crid"]) for r in rows],
        "did": [None if (v := r.get("did")) is None else int(v) for r in rows],
        "clid": [None if (v := r.get("clid")) is None else int(v) for r in rows],
        "client": [r.get("client") for r in rows],
        "pid": [r.get("pid") or None for r in rows],
        "person": [r.get("person") for r in rows],
        "deal": [r.get("deal") for r in rows],
        "invoice": [None if (v := r.get("invoice")) is None else str(v) for r in rows],
        "contract": [r.get("contract") or None for r in rows],
        "summa": [money(r["summa"]) for r in rows],
        "date_create": [r.get("date_create") for r in rows],
        "created_at": [c[0] for c in created],
        "issue_date": [c[1] for c in created],
        "date_plan": [_date_of(r.get("date_plan")) for r in rows],
        "date_fact": [_date_of(r.get("date_fact")) for r in rows],
        "is_paid_list": [r.get("color") is None for r in rows],
        "mc": [r.get("mc") for r in rows],
        "company": [r.get("company") for r in rows],
        "_fingerprint": [r.get("_fingerprint") or fingerprint(r) for r in rows],
        "_scan": scans,
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
        "clid": as_int(data.get("clid")),
        "did": as_int(data.get("did")),
        "tip": data.get("tip"),
        "rs": as_int(data.get("rs")),
        "iduser": as_int(data.get("iduser")),
        "do": data.get("do"),
        "is_paid": parse_paid_flag(data.get("do")),
        "template_id": as_int(template.get("id")) if isinstance(template, dict) else None,
        # idcourse is filled with the deal's idcurrency by the server (a bug): course.id is the real one.
        "currency_id": as_int(currency.get("id")),
        "currency_code": currency.get("code"),
        "currency_course_current": money(currency.get("course")),
        "course_id": as_int(course.get("id")),
        "course": money(course.get("course")),
        "course_datum": course.get("datum"),
        "_list_fingerprint": list_fp,
        "details_via": "invoice/info",
    }


# the fields of a details record, as info_record and deal_invoice_columns build them
INFO_FIELDS = ("crid", "invoice", "datum", "created_at", "datum_credit", "invoice_date", "contractnum", "summa", "nds",
               "clid", "did", "tip", "rs", "iduser", "do", "is_paid", "template_id", "currency_id", "currency_code",
               "currency_course_current", "course_id", "course", "course_datum", "_list_fingerprint", "details_via")


def deal_invoice_columns(entries: list[tuple[int, int, dict]]) -> dict[str, list]:
    """The details of each ``(crid, did, item)`` from an invoice entry of ``deal/list`` with
    ``invoice: true``, column by column (a first load gives every row its details this way): the same VAT,
    raw paid flag, type and bank account as ``invoice/info``, without the deal's display currency (deal/list
    does not expose it)."""
    items = [e[2] for e in entries]
    n = len(entries)
    nothing = [None] * n
    dos = [i.get("do") for i in items]
    return {
        "crid": [e[0] for e in entries], "invoice": [None if (v := i.get("invoice")) is None else str(v) for i in items],
        "datum": nothing, "created_at": nothing, "datum_credit": nothing,
        "invoice_date": [_date_of(i.get("date_do")) for i in items], "contractnum": [i.get("contract") for i in items],
        "summa": [money(i.get("summa")) for i in items],
        "nds": [ZERO if (v := i.get("nds")) is None else money(v) for i in items],
        "clid": nothing, "did": [e[1] for e in entries], "tip": [i.get("tip") for i in items],
        "rs": [as_int(i.get("rs")) for i in items], "iduser": nothing, "do": dos,
        "is_paid": [parse_paid_flag(d) for d in dos], "template_id": nothing, "currency_id": nothing,
        "currency_code": nothing, "currency_course_current": nothing, "course_id": nothing, "course": nothing,
        "course_datum": nothing, "details_via": ["deal/list"] * n,
    }


ZERO = Decimal("0")


def deal_record(deal: dict) -> dict:
    """A ``deal/list`` entry: its names, owner, amount and dates."""
    return {"did": int(deal["did"]), "title": deal.get("title"), "clid": as_int(deal.get("clid")),
            "client": deal.get("clientTitle"), "payer": as_int(deal.get("payer")), "mcid": as_int(deal.get("mcid")),
            "iduser": as_int(deal.get("iduser")), "datum": parse_date(deal.get("datum")), "kol": money(deal.get("kol")),
            "close": deal.get("close"), "datum_close": parse_date(deal.get("datum_close"))}
