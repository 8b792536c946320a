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
from bisect import bisect_left
from collections import deque
from collections.abc import Container, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import pendulum
import pyarrow as pa
import pyarrow.compute as pc

from ..arrow import arrow_schema
from .client import SalesmanClient
from .helpers import INFO_FIELDS, deal_invoice_columns, info_record, read_pages
from .memo import NO_DEAL, hex_fp
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


def as_arrow(values: array) -> pa.Array:
    """An ``array('q')`` / ``array('Q')`` as an Arrow int64 / uint64 array (one copy of its bytes, no Python
    object per value)."""
    kind = pa.uint64() if values.typecode == "Q" else pa.int64()
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values.tobytes())])


def as_array(values: pa.Array, typecode: str = "q") -> array:
    """An Arrow int64 / uint64 array without nulls as an ``array``, the reverse of :func:`as_arrow`."""
    out = array(typecode)
    if len(values):
        start = values.offset * out.itemsize
        out.frombytes(memoryview(values.buffers()[1])[start:start + len(values) * out.itemsize])
    return out


class ListedRows:
    """Id, list fingerprint and deal of every list row a run yields, in order, as arrays (a row may come
    more than once: each scan yields its rows, and the latest version is the one the table keeps)."""

    def __init__(self):
        self.crids, self.fps, self.dids = array("q"), array("Q"), array("q")

    def add(self, crids: list[int], fps: list[str], dids: list[int | None]) -> None:
        self.crids.extend(crids)
        self.fps.extend(int(fp, 16) for fp in fps)
        self.dids.extend(NO_DEAL if d is None else d for d in dids)

    def latest(self) -> dict[str, pa.Array]:
        """Each row once, its latest version, ascending by crid: ``crid``, ``fp`` (uint64), ``did`` (int64,
        ``NO_DEAL`` for None). The rows added are forgotten."""
        crids, fps, dids = as_arrow(self.crids), as_arrow(self.fps), as_arrow(self.dids)
        self.__init__()
        n = len(crids)
        order = pc.sort_indices(pa.table({"crid": crids, "pos": pa.array(range(n), pa.int64())}),
                                sort_keys=[("crid", "ascending"), ("pos", "descending")])
        ordered = crids.take(order)
        first = pa.concat_arrays([pa.array([True]), pc.not_equal(ordered[1:], ordered[:-1])]) if n else pa.array([], pa.bool_())
        chosen = order.filter(first)
        return {"crid": crids.take(chosen), "fp": fps.take(chosen), "did": dids.take(chosen)}


class Stale:
    """The rows whose details a run reads: ids (ascending) and list fingerprints (numbers), as arrays."""

    def __init__(self, crids: pa.Array, fps: pa.Array):
        self.arrow = crids
        self.crids, self.fps = as_array(crids, "q"), as_array(fps, "Q")

    @classmethod
    def of(cls, fingerprints: dict[int, str]) -> Stale:
        """From crid -> fingerprint (hex)."""
        crids = sorted(fingerprints)
        return cls(pa.array(crids, pa.int64()), pa.array([int(fingerprints[c], 16) for c in crids], pa.uint64()))

    def __len__(self) -> int:
        return len(self.crids)

    def positions(self, crids: pa.Array) -> list[int | None]:
        """Where each of ``crids`` is in this set (None: not in it)."""
        return pc.index_in(crids, value_set=self.arrow).to_pylist()

    def pop(self, crids: Iterable[int]) -> dict[int, str]:
        """crid -> fingerprint (hex) of those of ``crids`` in the set, taken out of it."""
        wanted = pa.array(sorted(set(crids)), pa.int64())
        found = {c: hex_fp(self.fps[p]) for c, p in zip(wanted.to_pylist(), self.positions(wanted), strict=True)
                 if p is not None}
        if found:
            rest = pc.invert(pc.is_in(self.arrow, value_set=wanted))
            self.__init__(self.arrow.filter(rest), as_arrow(self.fps).filter(rest))
        return found


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
        # (start, end) in crids, the rows' details: an Arrow array per column, a scalar for a column of one value
        self.pages: list[tuple[int, int, dict[str, pa.Array | pa.Scalar]]] = []
        self._deals: dict[int, tuple] = {}

    def deal(self, did: int) -> dict:
        """A deal's names and owner (``{}`` when deal/list did not have it)."""
        values = self._deals.get(did)
        return dict(zip(DEAL_KEYS, values, strict=True)) if values else {}

    def lacking(self, ids: Container[int] | pa.Array) -> dict[int, int]:
        """crid -> did of every row the index has and ``ids`` (a container, or an Arrow array of ids) lacks."""
        if isinstance(ids, pa.Array):
            absent = pc.invert(pc.is_in(as_arrow(self.read().crids), value_set=ids))
            return dict(zip(as_arrow(self.crids).filter(absent).to_pylist(),
                            as_arrow(self.dids).filter(absent).to_pylist(), strict=True))
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
            self.pages.append((start, len(self.crids), {name: _compact(values, DETAIL_TYPES[name])
                                                        for name, values in columns.items()}))
        self.is_read = True
        return self

    def release(self) -> None:
        """Drop the rows' details (the bulk details were read); ids and deals stay."""
        self.pages = [(start, end, {}) for start, end, _columns in self.pages]

    def page_details(self, no: int) -> dict[str, pa.Array]:
        """The details of page ``no``'s rows, a full Arrow array per column."""
        start, end, columns = self.pages[no]
        return {name: pa.repeat(values, end - start) if isinstance(values, pa.Scalar) else values
                for name, values in columns.items()}


def _compact(values: list, kind: pa.DataType) -> pa.Array | pa.Scalar:
    # a column of one value (all null, or deal/list's own name) is kept as that value, not once per row
    if values and all(v is values[0] for v in values):
        return pa.scalar(values[0], type=kind)
    return pa.array(values, type=kind)


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

    def __init__(self, client: SalesmanClient, index: DealIndex, known_deals: dict[int, int] | tuple[array, array],
                 parallel: int = 1):
        """``known_deals``: the deal of every row loaded before, as crid -> did or as two arrays (crids
        ascending, dids with ``NO_DEAL`` for None)."""
        self.client, self.index, self.parallel = client, index, parallel
        if isinstance(known_deals, dict):
            crids = sorted(known_deals)
            known_deals = (array("q", crids), array("q", (NO_DEAL if (d := known_deals[c]) is None else d
                                                           for c in crids)))
        self.known_crids, self.known_dids = known_deals
        self.requests = 0
        self.deals_read: set[int] = set()

    def _did(self, crid: int) -> int | None:
        did = self.known_dids[bisect_left(self.known_crids, crid)]
        return None if did == NO_DEAL else did

    def __call__(self, seen: set[int], count: int, ties: set[str]) -> Iterator[list[dict]]:
        groups = [{"dateCreateStart": t, "dateCreateEnd": t, "order": "summa", "first": "old"} for t in sorted(ties)]
        yield from self._read(groups)
        if len(seen) >= count:
            return
        yield from self._read_deals({None if did == NO_DEAL else did
                                     for crid, did in zip(self.known_crids, self.known_dids, strict=True)
                                     if crid not in seen}, seen)
        if len(seen) >= count:
            return
        missing = set(self.index.lacking(seen).values())
        yield from self._read_deals(missing, seen)

    def verify(self, ids: set[int]) -> bool:
        """False when a row the complete-looking read lacks is still listed: a row loaded before (the read
        would mark it deleted) or one ``deal/list`` has (when the run read it). A deletion in a page already
        read moves a row from a later page into it, which an insertion elsewhere can hide from the count;
        the row's own deal, read alone, shows it."""
        suspects = {crid for crid in self.known_crids if crid not in ids}
        if len({self._did(crid) for crid in suspects}) > VERIFY_DEALS_BEFORE_INDEX:
            self.index.read()  # many deletions: the rows deal/list no longer has are gone, no need to ask
        if self.index.is_read:
            suspects = self.index.having(suspects)
        dids = {self._did(crid) for crid in suspects}
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


def hidden_rows(client: SalesmanClient, index: DealIndex, live: Container[int] | pa.Array,
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


def fetch_details(client: SalesmanClient, stale: dict[int, str] | Stale, deals: int, zone: str, index: DealIndex,
                  parallel: int = 1, batch: int = 500) -> Iterator[dict[str, pa.Array]]:
    """Details of the rows in ``stale`` (crid -> list fingerprint, or a :class:`Stale`), the cheaper way, in
    batches given column by column (name -> Arrow array).

    One ``invoice/info`` per row costs len(stale) requests (also gives the deal's display currency);
    ``deal/list`` with ``invoice: true`` returns every invoice of 200 deals per request, so a first load or
    a large change costs about deals/200 requests instead (none when the run read it already).
    """
    if isinstance(stale, dict):
        stale = Stale.of(stale)
    if not len(stale):
        return
    bulk_pages = -(-deals // DEAL_PAGE_SIZE)
    taken = bytearray(len(stale))  # 1: the row's details came from deal/list
    if len(stale) > 2 * bulk_pages + BULK_DETAILS_MIN_ROWS:
        parts, rows = [], 0
        index.read()
        where = pc.index_in(as_arrow(index.crids), value_set=stale.arrow)  # each row's place in stale (or null)
        for no, (start, end, _columns) in enumerate(index.pages):
            mask, fps = [], []
            for p in where[start:end].to_pylist():
                chosen = p is not None and not taken[p]
                mask.append(chosen)
                if chosen:
                    taken[p] = 1
                    fps.append(hex_fp(stale.fps[p]))
            if not fps:
                continue
            chosen = pa.array(mask) if len(fps) < len(mask) else None
            part = {name: values if chosen is None else values.filter(chosen)
                    for name, values in index.page_details(no).items()}
            part["_list_fingerprint"] = pa.array(fps, type=pa.string())
            parts.append(part)
            rows += len(fps)
            if rows >= batch:
                yield _concat(parts)
                parts, rows = [], 0
        if parts:
            yield _concat(parts)
    left = [p for p in range(len(stale)) if not taken[p]]  # few rows, or rows deal/list did not show
    for start in range(0, len(left), batch):
        chunk = [(stale.crids[p], hex_fp(stale.fps[p])) for p in left[start:start + batch]]
        infos = parallel_map(lambda row: client.call("invoice/info", {"id": row[0]}).get("data") or {}, chunk,
                             parallel)
        # crid 0: deleted between the list and this call; the next snapshot marks it
        out = [info_record(data, zone, fp) for (_crid, fp), data in zip(chunk, infos, strict=True) if data.get("crid")]
        if out:
            yield detail_arrays(out)


def detail_arrays(records: list[dict]) -> dict[str, pa.Array]:
    """Details records (``info_record``) as Arrow arrays, a column each."""
    return {name: pa.array(values, type=DETAIL_TYPES[name]) for name, values in records_columns(records, INFO_FIELDS).items()}


def _concat(parts: list[dict[str, pa.Array]]) -> dict[str, pa.Array]:
    return {name: pa.concat_arrays([part[name] for part in parts]) for name in parts[0]}
