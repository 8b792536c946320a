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

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pendulum

from .client import SalesmanClient
from .helpers import deal_invoice_record, info_record, read_pages
from .settings import BULK_DETAILS_MIN_ROWS, DEAL_PAGE_SIZE, INVOICE_LIST_ORDER, VERIFY_DEALS_BEFORE_INDEX


def parallel_map(fn, items: Iterable, parallel: int) -> Iterator:
    """``map(fn, items)`` with up to ``parallel`` calls in flight, results in input order."""
    items = list(items)
    if parallel <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="salesman") as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


class DealIndex:
    """Every invoice row of every deal, from ``deal/list`` with ``invoice: true`` (200 deals a page),
    read at most once per run and only when something needs it.

    ``active: false`` means *all* deals: the server compares loosely and inverts true/false. Only what the
    run uses is kept: each row's deal and its ``deal/list`` entry, and each deal's names and owner.
    """

    def __init__(self, client: SalesmanClient, parallel: int = 1):
        self.client, self.parallel = client, parallel
        self.rows: dict[int, tuple[int, dict]] | None = None  # crid -> (did, invoice entry)
        self.deals: dict[int, dict] = {}

    @property
    def is_read(self) -> bool:
        return self.rows is not None

    def read(self) -> DealIndex:
        if self.rows is not None:
            return self
        rows: dict[int, tuple[int, dict]] = {}

        def page(offset: int) -> dict:
            return self.client.call("deal/list", {"offset": offset, "active": False, "invoice": True})

        first = page(0)
        pageall = int((first.get("params") or {}).get("pageall") or 0)
        bodies = [first]
        if len(first.get("data") or []) >= DEAL_PAGE_SIZE and pageall > 1:
            bodies += parallel_map(page, range(1, pageall), self.parallel)
        for body in bodies:
            for deal in body.get("data") or []:
                did = int(deal["did"])
                self.deals[did] = {k: deal.get(k) for k in ("title", "clid", "clientTitle", "iduser")}
                for item in deal.get("invoice") or []:
                    rows[int(item["id"])] = (did, item)
        self.rows = rows
        return self


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
        missing = {did for crid, (did, _item) in self.index.read().rows.items() if crid not in seen}
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
            suspects = {crid for crid in suspects if crid in self.index.rows}
        dids = {self.known_deals[crid] for crid in suspects}
        if self.index.is_read:
            lacking = {crid: did for crid, (did, _item) in self.index.rows.items() if crid not in ids}
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
    wanted = {crid: did for crid, (did, _item) in index.read().rows.items() if crid not in live}
    found: dict[int, tuple[dict, dict]] = {}
    infos = parallel_map(lambda crid: client.call("invoice/info", {"id": crid}).get("data") or {}, sorted(wanted),
                         parallel)
    for crid, data in zip(sorted(wanted), infos, strict=True):
        if data.get("crid"):
            found[crid] = (data, index.deals.get(wanted[crid]) or {})
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
                  parallel: int = 1, batch: int = 500) -> Iterator[list[dict]]:
    """Details of the rows in ``stale`` (crid -> list fingerprint), the cheaper way.

    One ``invoice/info`` per row costs len(stale) requests (also gives the deal's display currency);
    ``deal/list`` with ``invoice: true`` returns every invoice of 200 deals per request, so a first load or
    a large change costs about deals/200 requests instead (none when the run read it already).
    """
    if not stale:
        return
    bulk_pages = -(-deals // DEAL_PAGE_SIZE)
    left = dict(stale)
    if len(stale) > 2 * bulk_pages + BULK_DETAILS_MIN_ROWS:
        out = []
        for crid, (did, item) in index.read().rows.items():
            if crid in left:
                out.append(deal_invoice_record(item, did, left.pop(crid)))
                if len(out) >= batch:
                    yield out
                    out = []
        if out:
            yield out
    crids = list(left)  # few rows, or rows deal/list did not show
    for start in range(0, len(crids), batch):
        chunk = crids[start:start + batch]
        infos = parallel_map(lambda crid: client.call("invoice/info", {"id": crid}).get("data") or {}, chunk,
                             parallel)
        # crid 0: deleted between the list and this call; the next snapshot marks it
        out = [info_record(data, zone, left[crid]) for crid, data in zip(chunk, infos, strict=True)
               if data.get("crid")]
        if out:
            yield out
