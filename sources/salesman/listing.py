"""Every row of the invoice list, including the ones its paging loses or hides.

``invoice/list`` pages with LIMIT over a sort column with ties and no tie-breaker. MariaDB orders tied rows
differently for each LIMIT/OFFSET and repeats that on every request: a tie group cut by a page boundary can
show one row on both pages and its twin on neither, however often the pages are read. A narrow query whose
whole answer fits one page has no boundary to lose a row at, so the rows a scan lacks are read through
narrow queries, cheapest first (see :class:`ListRepair`). ``deal/list`` with ``invoice: true`` lists every
row of every deal (:class:`DealIndex`), including rows of deals owned by ``iduser=0`` that ``invoice/list``
never shows; those are read one by one through ``invoice/info`` (:func:`hidden_rows`).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Container, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import pendulum
import pyarrow as pa

from ..arrow import arrow_schema
from .client import SalesmanClient
from .helpers import INFO_FIELDS, deal_invoice_columns, info_record, read_pages
from .settings import BULK_DETAILS_MIN_ROWS, DEAL_PAGE_SIZE, INVOICE_LIST_ORDER, VERIFY_DEALS_BEFORE_INDEX
from .tables import INVOICE_DETAILS, records_columns


def parallel_map(fn, items: Iterable, parallel: int) -> Iterator:
    """``map(fn, items)`` with up to ``parallel`` calls in flight, results in input order; only a bounded
    window of results waits for the reader, so memory stays flat however many items there are."""
    items = iter(items)
    if parallel <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="salesman") as pool:
        ahead = deque(pool.submit(fn, item) for item in islice(items, 2 * parallel))
        try:
            while ahead:
                future = ahead.popleft()
                result = future.result()
                nxt = next(items, _END)
                if nxt is not _END:
                    ahead.append(pool.submit(fn, nxt))
                yield result
        finally:
            for future in ahead:
                future.cancel()


_END = object()
# a deal/list invoice entry's details, typed as the invoice_details table keeps them (no list fingerprint yet)
DETAIL_TYPES = {field.name: field.type for field in arrow_schema(INVOICE_DETAILS)}


class DealIndex:
    """Every invoice row of every deal, from ``deal/list`` with ``invoice: true`` (200 deals a page),
    read at most once per run and only when something needs it.

    ``active: false`` means *all* deals: the server compares loosely and inverts true/false. Only what the
    run uses is kept, compactly (a million rows must fit in memory): per page, its rows' ids and deals as
    arrays and their details as Arrow arrays; each deal's names and owner as a tuple.
    """

    def __init__(self, client: SalesmanClient, parallel: int = 1):
        self.client, self.parallel = client, parallel
        self.is_read = False
        self.crids, self.dids = array("q"), array("q")  # every row: its id and its deal
        self.pages: list[tuple[int, int, dict[str, pa.Array]]] = []  # (start, end) in crids, the rows' details
        self._deals: dict[int, tuple] = {}

    def deal(self, did: int) -> dict:
        """A deal's names and owner (``{}`` when deal/list did not have it)."""
        values = self._deals.get(did)
        return dict(zip(DEAL_KEYS, values, strict=True)) if values else {}

    def lacking(self, ids: Container[int]) -> dict[int, int]:
        """crid -> did of every row the index has and ``ids`` lacks."""
        return {crid: did for crid, did in zip(self.read().crids, self.dids, strict=True) if crid not in ids}

    def having(self, crids: set[int]) -> set[int]:
        """The rows of ``crids`` the index has."""
        return {crid for crid in self.read().crids if crid in crids} if crids else set()

    def read(self) -> DealIndex:
        if self.is_read:
            return self

        for body in deal_pages(self.client, {"invoice": True}, self.parallel):
            entries = []
            for deal in body.get("data") or []:
                did = int(deal["did"])
                self._deals[did] = tuple(deal.get(k) for k in DEAL_KEYS)
                entries += ((int(item["id"]), did, item) for item in deal.get("invoice") or [])
            start = len(self.crids)
            self.crids.extend(e[0] for e in entries)
            self.dids.extend(e[1] for e in entries)
            columns = deal_invoice_columns(entries)
            self.pages.append((start, len(self.crids),
                               {name: pa.array(values, type=DETAIL_TYPES[name]) for name, values in columns.items()}))
        self.is_read = True
        return self


DEAL_KEYS = ("title", "clid", "clientTitle", "iduser")


def deal_pages(client: SalesmanClient, params: dict, parallel: int = 1) -> Iterator[dict]:
    """Every page of ``deal/list`` (200 deals a page, 0-based ``offset``) with ``params``, in order: the first
    says how many there are, the others come ``parallel`` at a time. ``active: false`` means *all* deals:
    the server compares loosely and inverts true/false."""
    def page(offset: int) -> dict:
        return client.call("deal/list", {"offset": offset, "active": False, **params})

    first = page(0)
    yield first
    pageall = int((first.get("params") or {}).get("pageall") or 0)
    if len(first.get("data") or []) >= DEAL_PAGE_SIZE and pageall > 1:
        yield from parallel_map(page, range(1, pageall), parallel)


class ListRepair:
    """Reads the rows a scan of ``invoice/list`` lacks, cheapest narrow query first, and stops as soon as
    the scan holds ``count`` distinct rows:

    1. each tie group that came twice (a row on two pages means its group lost one): ``dateCreateStart`` =
       ``dateCreateEnd`` = its creation time (both given: ``BETWEEN``, exact to the second, in the database
       server's zone like the list's own times), ordered by amount, so even a group larger than a page is
       cut by amount rather than at random;
    2. the deals of rows loaded by an earlier run that this scan lacks (``did``; a deal's rows fit a page);
    3. the deals of every row ``deal/list`` knows and the scan lacks.

    A row none of these show is not listed at all (its deal is owned by ``iduser=0``): see :func:`hidden_rows`.
    """

    def __init__(self, client: SalesmanClient, index: DealIndex, known_deals: dict[int, int], parallel: int = 1):
        self.client, self.index, self.known_deals, self.parallel = client, index, known_deals, parallel
        self.requests = 0
        self.deals_read: set[int] = set()

    def __call__(self, seen: set[int], count: int, ties: set[str]) -> Iterator[list[dict]]:
        groups = [{"dateCreateStart": t, "dateCreateEnd": t, "order": "summa", "first": "old"} for t in sorted(ties)]
        yield from self._read(groups)
        if len(seen) >= count:
            return
        yield from self._read_deals({did for crid, did in self.known_deals.items() if crid not in seen}, seen)
        if len(seen) >= count:
            return
        missing = set(self.index.lacking(seen).values())
        yield from self._read_deals(missing, seen)

    def verify(self, ids: set[int]) -> bool:
        """False when a row the complete-looking read lacks is still listed: a row loaded before (the read
        would mark it deleted) or one ``deal/list`` has (when the run read it). A deletion in a page already
        read moves a row from a later page into it, which an insertion elsewhere can hide from the count;
        the row's own deal, read alone, shows it."""
        suspects = {crid for crid in self.known_deals if crid not in ids}
        if len({self.known_deals[crid] for crid in suspects}) > VERIFY_DEALS_BEFORE_INDEX:
            self.index.read()  # many deletions: the rows deal/list no longer has are gone, no need to ask
        if self.index.is_read:
            suspects = self.index.having(suspects)
        dids = {self.known_deals[crid] for crid in suspects}
        if self.index.is_read:
            lacking = self.index.lacking(ids)
            suspects |= set(lacking)
            dids |= set(lacking.values())
        if not suspects:
            return True
        listed = {int(row["crid"]) for rows in self._read([{**INVOICE_LIST_ORDER, "did": did} for did in sorted(dids)])
                  for row in rows}
        return not (listed & suspects)

    def _read_deals(self, dids: set[int], seen: set[int]) -> Iterator[list[dict]]:
        dids = sorted(dids - self.deals_read)
        self.deals_read.update(dids)
        yield from self._read([{**INVOICE_LIST_ORDER, "did": did} for did in dids])

    def _read(self, queries: list[dict]) -> Iterator[list[dict]]:
        def rows_of(params: dict) -> tuple[int, list[dict]]:
            out, calls = [], 0
            for _no, body in read_pages(self.client, params):
                calls += 1
                out.extend(body.get("data") or [])
            return calls, out

        for calls, rows in parallel_map(rows_of, queries, self.parallel):
            self.requests += calls
            yield rows


def hidden_rows(client: SalesmanClient, index: DealIndex, live: set[int],
                parallel: int = 1) -> dict[int, tuple[dict, dict]]:
    """Rows that exist but ``invoice/list`` does not show (their deal is owned by ``iduser=0``), as
    ``crid -> (invoice/info data, deal)``: every row of the deal index that the complete list lacks, read
    through ``invoice/info`` (deal/list lacks the planned date; a row deleted since answers ``crid: 0``)."""
    wanted = index.lacking(live)
    found: dict[int, tuple[dict, dict]] = {}
    infos = parallel_map(lambda crid: client.call("invoice/info", {"id": crid}).get("data") or {}, sorted(wanted),
                         parallel)
    for crid, data in zip(sorted(wanted), infos, strict=True):
        if data.get("crid"):
            found[crid] = (data, index.deal(wanted[crid]))
    return found


def hidden_list_row(data: dict, deal: dict, zone: str, db_zone: str | None) -> dict:
    """An ``invoice/list``-shaped row for a row the list never shows, from its ``invoice/info`` (creation
    time moved from the account's zone to the database server's, as the list renders it) and its deal."""
    created = data.get("datum")
    if created and db_zone and db_zone != zone:
        created = pendulum.parse(created, tz=zone, strict=False).in_timezone(db_zone).format("YYYY-MM-DD HH:mm:ss")
    paid = data.get("do") == "on"
    return {"crid": data["crid"], "did": data.get("did"), "clid": data.get("clid"),
            "client": deal.get("clientTitle"), "pid": data.get("pid"), "person": None, "deal": deal.get("title"),
            "invoice": data.get("invoice"), "contract": data.get("contractnum"), "summa": data.get("summa"),
            "date_create": created, "date_plan": data.get("datum_credit"), "date_fact": data.get("invoice_date"),
            "color": None if paid else "redbg-sublite", "mc": None, "company": None}


def fetch_details(client: SalesmanClient, stale: dict[int, str], deals: int, zone: str, index: DealIndex,
                  parallel: int = 1, batch: int = 500) -> Iterator[dict[str, pa.Array]]:
    """Details of the rows in ``stale`` (crid -> list fingerprint), the cheaper way, in batches given column
    by column (name -> Arrow array).

    One ``invoice/info`` per row costs len(stale) requests (also gives the deal's display currency);
    ``deal/list`` with ``invoice: true`` returns every invoice of 200 deals per request, so a first load or
    a large change costs about deals/200 requests instead (none when the run read it already).
    """
    if not stale:
        return
    bulk_pages = -(-deals // DEAL_PAGE_SIZE)
    left = dict(stale)
    if len(stale) > 2 * bulk_pages + BULK_DETAILS_MIN_ROWS:
        parts, rows = [], 0
        index.read()
        for start, end, columns in index.pages:
            crids = index.crids[start:end]
            mask = [crid in left for crid in crids]
            if not any(mask):
                continue
            chosen = pa.array(mask) if not all(mask) else None
            part = {name: values if chosen is None else values.filter(chosen) for name, values in columns.items()}
            part["_list_fingerprint"] = pa.array([left.pop(c) for c, m in zip(crids, mask, strict=True) if m],
                                                 type=pa.string())
            parts.append(part)
            rows += len(part["crid"])
            if rows >= batch:
                yield _concat(parts)
                parts, rows = [], 0
        if parts:
            yield _concat(parts)
    crids = list(left)  # few rows, or rows deal/list did not show
    for start in range(0, len(crids), batch):
        chunk = crids[start:start + batch]
        infos = parallel_map(lambda crid: client.call("invoice/info", {"id": crid}).get("data") or {}, chunk,
                             parallel)
        # crid 0: deleted between the list and this call; the next snapshot marks it
        out = [info_record(data, zone, left[crid]) for crid, data in zip(chunk, infos, strict=True)
               if data.get("crid")]
        if out:
            yield detail_arrays(out)


def detail_arrays(records: list[dict]) -> dict[str, pa.Array]:
    """Details records (``info_record``) as Arrow arrays, a column each."""
    return {name: pa.array(values, type=DETAIL_TYPES[name]) for name, values in records_columns(records, INFO_FIELDS).items()}


def _concat(parts: list[dict[str, pa.Array]]) -> dict[str, pa.Array]:
    return {name: pa.concat_arrays([part[name] for part in parts]) for name in parts[0]}
