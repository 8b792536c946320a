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

from collections.abc import Iterator
from urllib.parse import urlsplit

import dlt
import pendulum
import pyarrow as pa
from dlt.sources import DltResource

from ..common import deletion_marks, money
from .helpers import SalesmanClient, info_record, list_row_record, parse_date, scan_invoice_list
from .listing import DealIndex, ListRepair, fetch_details, hidden_list_row, hidden_rows
from .settings import DEAL_PAGE_SIZE, MONEY, RATE

ROW_COLUMNS = {
    "crid": {"data_type": "bigint", "nullable": False},
    "summa": dict(MONEY),
    "created_at": {"data_type": "timestamp"},
    "issue_date": {"data_type": "date"},
    # the wall-clock text as the server sent it (in the database server's zone)
    "date_create": {"data_type": "text"},
    "date_plan": {"data_type": "date"},
    "date_fact": {"data_type": "date"},
    "invoice": {"data_type": "text"},
    "contract": {"data_type": "text"},
    "person": {"data_type": "text"},
    "pid": {"data_type": "bigint"},
    "company": {"data_type": "text"},
    "_scan": {"data_type": "bigint", "dedup_sort": "desc"},
}
# The list snapshot is the big table: it goes to dlt as Arrow tables with an explicit schema, which skips
# dlt's row-by-row normalizer (measured: about a quarter of a run's time) and pins every type.
ARROW_BATCH_ROWS = 5000
ROW_SCHEMA = pa.schema([
    ("crid", pa.int64()), ("did", pa.int64()), ("clid", pa.int64()), ("client", pa.string()),
    ("pid", pa.int64()), ("person", pa.string()), ("deal", pa.string()), ("invoice", pa.string()),
    ("contract", pa.string()), ("summa", pa.decimal128(18, 2)), ("date_create", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")), ("issue_date", pa.date32()), ("date_plan", pa.date32()), ("date_fact", pa.date32()),
    ("is_paid_list", pa.bool_()), ("mc", pa.int64()), ("company", pa.string()), ("_fingerprint", pa.string()),
    ("_scan", pa.int64()), ("account", pa.string()), ("currency", pa.string()), ("timezone", pa.string()),
    ("_extracted_at", pa.timestamp("us", tz="UTC")),
])
DETAIL_COLUMNS = {
    "crid": {"data_type": "bigint", "nullable": False},
    "summa": dict(MONEY),
    "nds": dict(MONEY),
    "created_at": {"data_type": "timestamp"},
    "datum": {"data_type": "text"},
    "datum_credit": {"data_type": "date"},
    "invoice_date": {"data_type": "date"},
    "contractnum": {"data_type": "text"},
    "currency_id": {"data_type": "bigint"},
    "currency_code": {"data_type": "text"},
    "currency_course_current": dict(RATE),
    "course_id": {"data_type": "bigint"},
    "course": dict(RATE),
    "course_datum": {"data_type": "text"},
    "template_id": {"data_type": "bigint"},
    "clid": {"data_type": "bigint"},
    "did": {"data_type": "bigint"},
    "iduser": {"data_type": "bigint"},
    "rs": {"data_type": "bigint"},
    "tip": {"data_type": "text"},
    "do": {"data_type": "text"},
    "details_via": {"data_type": "text"},
}
DELETION_COLUMNS = {
    "crid": {"data_type": "bigint", "nullable": False},
    "is_deleted": {"data_type": "bool"},
    "deleted_at": {"data_type": "timestamp"},
}


@dlt.source(name="salesman", max_table_nesting=0)
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
    client = SalesmanClient(base_url, login, api_key, timeout=request_timeout,
                            max_attempts=request_max_attempts, backoff_factor=request_backoff_factor)
    account_name = account or urlsplit(base_url).hostname or base_url
    run_at = pendulum.now("UTC")
    context = {"account": account_name, "currency": currency.upper(), "timezone": timezone}

    @dlt.resource(name="invoice_rows", write_disposition="merge", primary_key="crid", columns=ROW_COLUMNS)
    def invoice_rows() -> Iterator[object]:
        """The list snapshot; then, into their own tables, the details of new or changed rows and the
        marks of rows that vanished. All of it happens in one resource because both depend on the whole
        snapshot: which rows changed, how many (per-row or bulk details), and which ids are gone."""
        state = dlt.current.resource_state()
        known: dict[str, str] = state.get("fingerprints", {})
        known_hidden = {int(c): d for c, d in state.get("hidden", {}).items()}
        known_deals = {int(c): d for c, d in state.get("deals", {}).items() if int(c) not in known_hidden}
        deleted: set[int] = set(state.get("deleted_ids", []))
        index = DealIndex(client, parallel_requests)
        repair = ListRepair(client, index, known_deals, parallel_requests)
        result: dict = {}
        current: dict[int, str] = {}
        deal_of: dict[int, int] = {}
        buffer: list[dict] = []
        for scan, rows in scan_invoice_list(client, max_scan_attempts, result, parallel=parallel_requests,
                                            repair=repair, verify=repair.verify):
            for row in rows:
                rec = list_row_record(row, timezone, scan, db_timezone)
                rec.update(context, _extracted_at=run_at)
                current[rec["crid"]] = rec["_fingerprint"]
                deal_of[rec["crid"]] = rec["did"]
                buffer.append(rec)
            if len(buffer) >= ARROW_BATCH_ROWS:
                yield pa.Table.from_pylist(buffer, schema=ROW_SCHEMA)
                buffer = []
        live: set[int] = set(result["ids"])

        # Rows invoice/list never shows (deal owned by iduser=0) are in deal/list only. It is read on a first
        # load (bulk details need it anyway), on every run of an account known to have such rows, and when
        # new ids leave a hole that no listed row fills (a new hidden row, or one created and deleted since).
        newest = max(live | set(current), default=0)
        everything = live | set(current) | {int(c) for c in known} | deleted | set(known_hidden)
        if not known or known_hidden or any(c not in everything
                                            for c in range(state.get("max_crid", 0) + 1, newest + 1)):
            index.read()
        hidden = hidden_rows(client, index, live, parallel_requests) if index.is_read else {}
        hidden_info: dict[int, dict] = {}
        for crid, (data, deal) in sorted(hidden.items()):
            rec = list_row_record(hidden_list_row(data, deal, timezone, db_timezone), timezone, result["scans"],
                                  db_timezone)
            rec.update(context, _extracted_at=run_at)
            current[crid], deal_of[crid], hidden_info[crid] = rec["_fingerprint"], rec["did"], data
            buffer.append(rec)
        if buffer:
            yield pa.Table.from_pylist(buffer, schema=ROW_SCHEMA)
        live |= set(hidden)

        stale = {crid: current[crid] for crid in sorted(live) if known.get(str(crid)) != current[crid]}
        fetched: set[int] = set()
        # a hidden row's invoice/info is its details already
        ready = [info_record(hidden_info[c], timezone, stale.pop(c)) for c in sorted(hidden_info) if c in stale]
        if ready:
            fetched.update(rec["crid"] for rec in ready)
            yield _table(ready, "invoice_details", DETAIL_COLUMNS, context, run_at)
        for batch in fetch_details(client, stale, len(set(deal_of.values())), timezone, index, parallel_requests):
            fetched.update(rec["crid"] for rec in batch)
            yield _table(batch, "invoice_details", DETAIL_COLUMNS, context, run_at)

        marks, vanished = deletion_marks("crid", {int(c) for c in known}, deleted, set(current), live, run_at)
        if marks:
            yield _table(marks, "invoice_row_deletions", DELETION_COLUMNS, context, run_at)
        # a row whose details could not be read (deleted in between) keeps no fingerprint: retried next run
        keep = {c for c in live if c in fetched or c not in stale}
        state["fingerprints"] = {str(c): current[c] for c in sorted(keep)}
        state["deals"] = {str(c): deal_of[c] for c in sorted(keep)}
        state["hidden"] = {str(c): deal_of[c] for c in sorted(hidden)}
        state["max_crid"] = max(newest, state.get("max_crid", 0))
        state["deleted_ids"] = sorted(vanished)
        state["last_scan"] = {**{k: v for k, v in result.items() if k != "ids"}, "repair_requests": repair.requests,
                              "hidden": len(hidden), "deals_read": index.is_read}
        state.pop("known_ids", None)

    @dlt.resource(name="deals", write_disposition="merge", primary_key="did",
                  columns={"datum": {"data_type": "date"}, "datum_close": {"data_type": "date"}, "kol": dict(MONEY)})
    def deals() -> Iterator[list[dict]]:
        offset = 0
        while True:
            # `active: false` means *all* deals: the server compares loosely and inverts true/false.
            body = client.call("deal/list", {"offset": offset, "active": False, "order": "datum"})
            data = body.get("data") or []
            if data:
                yield [{"did": d["did"], "title": d.get("title"), "clid": d.get("clid"),
                        "client": d.get("clientTitle"), "payer": d.get("payer"), "mcid": d.get("mcid"),
                        "iduser": d.get("iduser"), "datum": parse_date(d.get("datum")),
                        "kol": (d.get("kol") if d.get("kol") is None else money(d["kol"])),
                        "close": d.get("close"), "datum_close": parse_date(d.get("datum_close")),
                        **context} for d in data]
            pageall = int((body.get("params") or {}).get("pageall") or 0)
            if len(data) < DEAL_PAGE_SIZE or offset + 1 >= pageall:
                return
            offset += 1

    @dlt.resource(name="bank_accounts", write_disposition="replace",
                  columns={"nds_default": {"data_type": "decimal", "precision": 5, "scale": 2}})
    def bank_accounts() -> Iterator[list[dict]]:
        body = client.call("guides/company.bank")
        yield [{"id": a["id"], "mcid": a.get("mcid"), "tip": a.get("tip"), "is_default": a.get("isDefault") == "yes",
                "nds_default": money(a.get("ndsDefault")), "name": a.get("compNameRs"), **context}
               for a in body.get("data") or []]

    @dlt.resource(name="currencies", write_disposition="merge", primary_key=("id", "snapshot_date"),
                  columns={"course": dict(RATE), "snapshot_date": {"data_type": "date"}})
    def currencies() -> Iterator[list[dict]]:
        body = client.call("currency/list")
        data = body.get("data") or {}
        items = data.values() if isinstance(data, dict) else data  # an object keyed by id; [] when empty
        yield [{"id": c["id"], "code": c.get("code"), "name": c.get("name"), "course": money(c.get("course")),
                "datum": c.get("datum"), "snapshot_date": run_at.date(), **context} for c in items]

    return (invoice_rows, deals, bank_accounts, currencies)


def _table(items: list[dict], table: str, columns: dict, context: dict, run_at) -> object:
    """Route ``items`` to their own table with its own keys and column types."""
    rows = [dict(item, **context, _extracted_at=run_at) for item in items]
    hints = dlt.mark.make_hints(table_name=table, write_disposition="merge", primary_key="crid", columns=columns)
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)

