"""SalesMan CRM (API v3) source: invoice rows, their details, deals, bank accounts and currencies.

Invoices have no modification time and are deleted hard, so every run reads the whole invoice list (a
snapshot), merges it on the row id ``crid``, and records rows that vanished in ``invoice_row_deletions``.
Details the list lacks (VAT, the raw paid flag, type, bank account) are read only for rows that are new or
whose list row changed since the last successful load (a fingerprint kept in dlt state, which is committed
together with the data, so a failed run re-reads them next time): one ``invoice/info`` per row when few
changed (it also gives the deal's display currency), ``deal/list`` with ``invoice: true`` in bulk when many.
Rows the list's paging loses (ties ordered per LIMIT/OFFSET) are read back through narrow queries, and rows
it never shows (deals owned by ``iduser=0``) through ``deal/list``: see ``listing.py`` and ``README.md``.
List pages and detail calls go ``parallel_requests`` at a time.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from urllib.parse import urlsplit

import dlt
import pendulum
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.configuration import configspec
from dlt.sources import DltResource

from ..arrow import arrow_columns, arrow_schema, arrow_table
from ..common import PERCENT, RATE, deletion_marks, money
from .client import SalesmanClient, SalesmanCredentials
from .helpers import deal_record, info_record, list_row_columns, scan_invoice_list
from .listing import (
    DealIndex,
    ListedRows,
    ListRepair,
    Stale,
    as_array,
    as_arrow,
    deal_pages,
    detail_arrays,
    fetch_details,
    hidden_list_row,
    hidden_rows,
)
from .memo import NO_DEAL, Memory, remember_rows, remembered_rows
from .tables import (
    CONTEXT,
    DATE,
    DEALS,
    INVOICE_DETAILS,
    INVOICE_ROW_DELETIONS,
    INVOICE_ROW_HINTS,
    INVOICE_ROWS,
    hints,
    records_columns,
)

ROW_COLUMNS = hints(INVOICE_ROWS, INVOICE_ROW_HINTS)
# the list snapshot goes to dlt in batches of this many rows
ARROW_BATCH_ROWS = 5000
ROW_SCHEMA = arrow_schema(INVOICE_ROWS)
DETAIL_COLUMNS = hints(INVOICE_DETAILS)
DETAIL_SCHEMA = arrow_schema(INVOICE_DETAILS, dlt_columns=True)
DELETION_COLUMNS = hints(INVOICE_ROW_DELETIONS)
DELETION_SCHEMA = arrow_schema(INVOICE_ROW_DELETIONS, dlt_columns=True)
# the columns the source fills (the others are the run's constants and dlt's own)
DELETION_FIELDS = [name for name in INVOICE_ROW_DELETIONS if name not in CONTEXT and name != "_extracted_at"]
DEAL_SCHEMA = arrow_schema(DEALS, dlt_columns=True)


@configspec
class SalesmanConfiguration(SalesmanCredentials):
    """Every setting of the source (``sources.salesman.<name>``): where and who (:class:`SalesmanCredentials`),
    then the account's zones, currency and name, and how to read."""

    timezone: str = None
    db_timezone: str | None = None
    currency: str = "RUB"
    account: str | None = None
    max_scan_attempts: int = 4
    request_timeout: float = 60
    request_max_attempts: int = 5
    request_backoff_factor: float = 1.0
    parallel_requests: int = 4


@dlt.source(name="salesman", max_table_nesting=0, spec=SalesmanConfiguration)
def salesman_source(
    base_url: str = dlt.config.value,
    login: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    timezone: str = dlt.config.value,
    db_timezone: str | None = None,
    currency: str = "RUB",
    account: str | None = None,
    max_scan_attempts: int = 4,
    request_timeout: float = 60,
    request_max_attempts: int = 5,
    request_backoff_factor: float = 1.0,
    parallel_requests: int = 4,
) -> Iterator[DltResource]:
    """Args:
        base_url: the CRM's root URL (the API is at ``<base_url>/developer/v3/``).
        login: the API user's login; use a dedicated user with an all-seeing role and tzone 0.
        api_key: the account's API key (Настройки → API).
        timezone: IANA zone of the account: creation times are its wall time, business dates its dates.
        db_timezone: IANA zone of the CRM's database server when it differs from the account's (the invoice
            list renders creation times in it); default: the account's zone.
        currency: ISO 4217 code of the account's base currency (SalesMan only keeps a label such as "р.").
        account: a name for this CRM account in the warehouse; defaults to the host of ``base_url``.
        max_scan_attempts: how many times to re-read the invoice list when it changes during the read.
        request_timeout: seconds to wait for an answer before the request is retried.
        request_max_attempts: attempts per request (transport errors, HTTP 5xx, PHP error pages).
        request_backoff_factor: base of the exponential wait between attempts, in seconds.
        parallel_requests: list pages and detail calls in flight at once (1 reads one after another).
    """
    parallel_requests = max(1, int(parallel_requests))
    for zone in (timezone, db_timezone or timezone):
        pendulum.timezone(zone)  # fail early and clearly on an unknown zone
    credentials = SalesmanCredentials(base_url=base_url, login=login, api_key=api_key)
    client = SalesmanClient(credentials, timeout=request_timeout, max_attempts=request_max_attempts,
                            backoff_factor=request_backoff_factor)
    account_name = account or urlsplit(base_url).hostname or base_url
    run_at = pendulum.now("UTC")
    context = {"account": account_name, "currency": currency.upper(), "timezone": timezone}
    constants = {**context, "_extracted_at": run_at}  # columns with one value in a run

    @dlt.resource(name="invoice_rows", write_disposition="merge", primary_key="crid", columns=ROW_COLUMNS)
    def invoice_rows() -> Iterator[object]:
        """The list snapshot; then, into their own tables, the details of new or changed rows and the
        marks of rows that vanished. All of it happens in one resource because both depend on the whole
        snapshot: which rows changed, how many (per-row or bulk details), and which ids are gone."""
        state = dlt.current.resource_state()
        # every per-row set of a run is an array (8 bytes a value; a million rows must fit in memory)
        known = remembered_rows(state)  # the rows loaded before: crid, fingerprint, did
        known_hidden = {int(c): d for c, d in state.get("hidden", {}).items()}
        deleted: set[int] = set(state.get("deleted_ids", []))
        index = DealIndex(client, parallel_requests)
        repair = ListRepair(client, index, _listed_deals(known, known_hidden), parallel_requests)
        result: dict = {}
        listed = ListedRows()  # crid, fingerprint and did of every row yielded
        buffer: list[dict] = []  # list rows as the server sent them, shaped column by column per batch
        scans: list[int] = []

        def rows_table() -> pa.Table:
            columns = list_row_columns(buffer, scans[:], timezone, db_timezone)
            listed.add(columns["crid"], columns["_fingerprint"], columns["did"])
            buffer.clear()
            scans.clear()
            return arrow_columns(columns, len(columns["crid"]), ROW_SCHEMA, constants)

        for scan, rows in scan_invoice_list(client, max_scan_attempts, result, parallel=parallel_requests,
                                            repair=repair, verify=repair.verify):
            buffer += rows
            scans += [scan] * len(rows)
            if len(buffer) >= ARROW_BATCH_ROWS:
                yield rows_table()
        ids = result.pop("ids")
        live = pa.array(sorted(ids), pa.int64())
        del ids

        # Rows invoice/list never shows (deal owned by iduser=0) are in deal/list only. It is read on a first
        # load (bulk details need it anyway), on every run of an account known to have such rows, and when
        # new ids leave a hole that no listed row fills (a new hidden row, or one created and deleted since).
        yielded, known_ids = as_arrow(listed.crids), as_arrow(known.crids)
        newest = max(pc.max(live).as_py() or 0, pc.max(yielded).as_py() or 0)
        if not len(known) or known_hidden or not _covered(
                state.get("max_crid", 0) + 1, newest,
                [live, yielded, known_ids, pa.array(sorted(deleted | set(known_hidden)), pa.int64())]):
            index.read()
        del yielded
        hidden = hidden_rows(client, index, live, parallel_requests) if index.is_read else {}
        hidden_info: dict[int, dict] = {}
        for crid, (data, deal) in sorted(hidden.items()):
            buffer.append(hidden_list_row(data, deal, timezone, db_timezone))
            scans.append(result["scans"])
            hidden_info[crid] = data
        if buffer:
            yield rows_table()
        if hidden:
            live = pa.concat_arrays([live, pa.array(sorted(hidden), pa.int64())])

        current = listed.latest()  # each row yielded once, its latest version, ascending by crid
        crids = current["crid"]
        in_live = pc.is_in(crids, value_set=live)
        known_fps = as_arrow(known.fps).take(pc.index_in(crids, value_set=known_ids))
        changed = pc.fill_null(pc.not_equal(known_fps, current["fp"]), True)  # new, or its list row changed
        stale_mask = pc.and_(in_live, changed)
        stale = Stale(crids.filter(stale_mask), current["fp"].filter(stale_mask))
        del known_fps, changed
        fetched: list[pa.Array] = []
        parts: list[dict[str, pa.Array]] = []  # batches of details, columns as Arrow arrays

        def details_table() -> object:
            columns = {name: pa.concat_arrays([part[name] for part in parts]) for name in parts[0]}
            parts.clear()
            fetched.append(columns["crid"])
            return _table(columns, len(columns["crid"]), "invoice_details", DETAIL_COLUMNS, DETAIL_SCHEMA, constants)

        # a hidden row's invoice/info is its details already
        own_fps = stale.pop(hidden_info)
        own = [info_record(hidden_info[c], timezone, own_fps[c]) for c in sorted(own_fps)]
        deals_count = pc.count_distinct(current["did"]).as_py()
        batches = fetch_details(client, stale, deals_count, timezone, index, parallel_requests)
        for batch in itertools.chain([detail_arrays(own)] if own else [], batches):
            parts.append(batch)
            if sum(len(part["crid"]) for part in parts) >= ARROW_BATCH_ROWS:
                yield details_table()
        if parts:
            yield details_table()
        index.release()
        del stale

        # ids loaded before or yielded in this run that the final snapshot lacks, and marked ones that are back
        gone = {c for ids_ in (known_ids, crids) for c in ids_.filter(pc.invert(pc.is_in(ids_, value_set=live)))
                .to_pylist()}
        marked = pa.array(sorted(deleted), pa.int64())
        back = set(marked.filter(pc.is_in(marked, value_set=live)).to_pylist())
        marks, vanished = deletion_marks("crid", gone, deleted, set(), back, run_at)
        if marks:
            yield _table(records_columns(marks, DELETION_FIELDS), len(marks), "invoice_row_deletions",
                         DELETION_COLUMNS, DELETION_SCHEMA, constants)
        # a row whose details could not be read (deleted in between) keeps no fingerprint: retried next run
        was_read = pc.is_in(crids, value_set=pa.concat_arrays(fetched) if fetched else pa.array([], pa.int64()))
        keep = pc.and_(in_live, pc.or_(pc.invert(stale_mask), was_read))
        remember_rows(state, *(as_array(current[name].filter(keep), code) for name, code in (("crid", "q"), ("did", "q"),
                                                                                             ("fp", "Q"))))
        del keep, was_read
        hidden_deals = _deals_of(current, sorted(hidden))
        state["hidden"] = {str(c): hidden_deals[c] for c in sorted(hidden)}
        state["max_crid"] = max(newest, state.get("max_crid", 0))
        state["deleted_ids"] = sorted(vanished)
        state["last_scan"] = {**result, "repair_requests": repair.requests, "hidden": len(hidden),
                              "deals_read": index.is_read}
        state.pop("known_ids", None)

    @dlt.resource(name="deals", write_disposition="merge", primary_key="did", columns=hints(DEALS))
    def deals() -> Iterator[pa.Table]:
        buffer = []
        for body in deal_pages(client, {"order": "datum"}, parallel_requests):
            buffer += map(deal_record, body.get("data") or [])
            if len(buffer) >= ARROW_BATCH_ROWS:
                yield arrow_table(buffer, DEAL_SCHEMA, context)
                buffer = []
        if buffer:
            yield arrow_table(buffer, DEAL_SCHEMA, context)

    @dlt.resource(name="bank_accounts", write_disposition="replace", columns={"nds_default": dict(PERCENT)})
    def bank_accounts() -> Iterator[list[dict]]:
        body = client.call("guides/company.bank")
        yield [{"id": a["id"], "mcid": a.get("mcid"), "tip": a.get("tip"), "is_default": a.get("isDefault") == "yes",
                "nds_default": money(a.get("ndsDefault")), "name": a.get("compNameRs"), **context}
               for a in body.get("data") or []]

    @dlt.resource(name="currencies", write_disposition="merge", primary_key=("id", "snapshot_date"),
                  columns={"course": dict(RATE), "snapshot_date": dict(DATE)})
    def currencies() -> Iterator[list[dict]]:
        body = client.call("currency/list")
        data = body.get("data") or {}
        items = data.values() if isinstance(data, dict) else data  # an object keyed by id; [] when empty
        yield [{"id": c["id"], "code": c.get("code"), "name": c.get("name"), "course": money(c.get("course")),
                "datum": c.get("datum"), "snapshot_date": run_at.date(), **context} for c in items]

    return (invoice_rows, deals, bank_accounts, currencies)


def _table(items: dict[str, list], n: int, table: str, columns: dict, schema: pa.Schema, constants: dict) -> object:
    """Route ``n`` rows given column by column to their own table with its own keys and column types."""
    hints_ = dlt.mark.make_hints(table_name=table, write_disposition="merge", primary_key="crid", columns=columns)
    return dlt.mark.with_hints(arrow_columns(items, n, schema, constants), hints_, create_table_variant=True)


def _listed_deals(known: Memory, hidden: dict[int, object]) -> tuple[array, array]:
    """crid and did of the rows loaded before that invoice/list shows (``hidden`` ones it never shows)."""
    if not hidden:
        return known.deal_crids, known.dids
    keep = [i for i, crid in enumerate(known.deal_crids) if crid not in hidden]
    return array("q", (known.deal_crids[i] for i in keep)), array("q", (known.dids[i] for i in keep))


def _covered(low: int, high: int, ids: list[pa.Array]) -> bool:
    """Whether every id from ``low`` to ``high`` is among ``ids`` (several arrays, repeats allowed)."""
    if high < low:
        return True
    within = [a.filter(pc.and_(pc.greater_equal(a, low), pc.less_equal(a, high))) for a in ids]
    return pc.count_distinct(pa.concat_arrays(within)).as_py() == high - low + 1


def _deals_of(current: dict[str, pa.Array], crids: list[int]) -> dict[int, int | None]:
    """crid -> did (None for none) of ``crids`` in ``current`` (each row once, ascending by crid)."""
    if not crids:
        return {}
    positions = pc.index_in(pa.array(crids, pa.int64()), value_set=current["crid"])
    dids = current["did"].take(positions).to_pylist()
    return {c: None if d == NO_DEAL else d for c, d in zip(crids, dids, strict=True)}
