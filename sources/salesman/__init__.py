"""SalesMan CRM (API v3) source: invoice rows, their details, deals, bank accounts and currencies.

Invoices have no modification time and are deleted hard, so every run reads the whole invoice list (a
snapshot), merges it on the row id ``crid``, and records rows that vanished in ``invoice_row_deletions``.
``invoice/info`` (VAT, the raw paid flag, type, bank account, deal currency) is called only for rows that
are new or whose list row changed since the last successful load (a fingerprint kept in dlt state, which
is committed together with the data, so a failed run re-fetches next time).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import dlt
import pendulum
from dlt.sources import DltResource

from ..common import money as _m
from .helpers import SalesmanClient, info_record, list_row_record, parse_date, scan_invoice_list
from .settings import DEAL_PAGE_SIZE, MONEY, RATE

ROW_COLUMNS = {
    "crid": {"data_type": "bigint", "nullable": False},
    "summa": dict(MONEY),
    "created_at": {"data_type": "timestamp"},
    # the wall-clock text as the server sent it: its date part is the business date
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
}


@dlt.source(name="salesman", max_table_nesting=0)
def salesman_source(
    base_url: str = dlt.config.value,
    login: str = dlt.config.value,
    api_key: str = dlt.secrets.value,
    timezone: str = dlt.config.value,
    currency: str = "RUB",
    account: str | None = None,
    max_scan_attempts: int = 4,
    request_timeout: float = 60,
    request_max_attempts: int = 5,
    request_backoff_factor: float = 1.0,
) -> Iterator[DltResource]:
    """Args:
        base_url: the CRM's root URL (the API is at ``<base_url>/developer/v3/``).
        login: the API user's login; use a dedicated user with an all-seeing role and tzone 0.
        api_key: the account's API key (Настройки → API).
        timezone: IANA zone of the account (and of its database server), for ``date_create``.
        currency: ISO 4217 code of the account's base currency (SalesMan only keeps a label such as "р.").
        account: a name for this CRM account in the warehouse; defaults to the host of ``base_url``.
        max_scan_attempts: how many times to re-read the invoice list when it changes during the read.
    """
    pendulum.timezone(timezone)  # fail early and clearly on an unknown zone
    client = SalesmanClient(base_url, login, api_key, timeout=request_timeout,
                            max_attempts=request_max_attempts, backoff_factor=request_backoff_factor)
    account_name = account or urlsplit(base_url).hostname or base_url
    run_at = pendulum.now("UTC")
    context = {"account": account_name, "currency": currency.upper(), "timezone": timezone}

    @dlt.resource(name="invoice_rows", write_disposition="merge", primary_key="crid", columns=ROW_COLUMNS)
    def invoice_rows() -> Iterator[list[dict]]:
        state = dlt.current.resource_state()
        known: set[int] = set(state.get("known_ids", []))
        deleted: set[int] = set(state.get("deleted_ids", []))
        result: dict = {}
        for scan, rows in scan_invoice_list(client, max_scan_attempts, result):
            yield [dict(list_row_record(r, timezone, scan), **context, _extracted_at=run_at) for r in rows]
        live: set[int] = result["ids"]
        vanished = (known | deleted) - live
        marks = [{"crid": crid, "is_deleted": True, "deleted_at": run_at, **context}
                 for crid in sorted(vanished - deleted)]
        marks += [{"crid": crid, "is_deleted": False, "deleted_at": None, **context}
                  for crid in sorted(deleted & live)]
        if marks:
            yield dlt.mark.with_table_name(marks, "invoice_row_deletions")
        state["known_ids"] = sorted(live)
        state["deleted_ids"] = sorted(vanished)
        state["last_scan"] = {k: v for k, v in result.items() if k != "ids"}

    @dlt.transformer(name="invoice_details", write_disposition="merge", primary_key="crid",
                     columns=DETAIL_COLUMNS)
    def invoice_details(rows: list[dict]) -> Iterator[list[dict]]:
        seen: dict = dlt.current.resource_state().setdefault("fingerprints", {})
        out = []
        for row in rows:
            if "_fingerprint" not in row:
                continue  # deletion marks travel down the same pipe; they have no details to fetch
            key = str(row["crid"])
            if seen.get(key) == row["_fingerprint"]:
                continue
            body = client.call("invoice/info", {"id": row["crid"]})
            data = body.get("data") or {}
            if not data.get("crid"):
                continue  # deleted between the list and this call: the next snapshot marks it
            out.append(dict(info_record(data, timezone, row["_fingerprint"]), **context, _extracted_at=run_at))
            seen[key] = row["_fingerprint"]
        if out:
            yield out

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
                        "kol": (d.get("kol") if d.get("kol") is None else _m(d["kol"])),
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
                "nds_default": _m(a.get("ndsDefault")), "name": a.get("compNameRs"), **context}
               for a in body.get("data") or []]

    @dlt.resource(name="currencies", write_disposition="merge", primary_key=("id", "snapshot_date"),
                  columns={"course": dict(RATE), "snapshot_date": {"data_type": "date"}})
    def currencies() -> Iterator[list[dict]]:
        body = client.call("currency/list")
        data = body.get("data") or {}
        items = data.values() if isinstance(data, dict) else data  # an object keyed by id; [] when empty
        yield [{"id": c["id"], "code": c.get("code"), "name": c.get("name"), "course": _m(c.get("course")),
                "datum": c.get("datum"), "snapshot_date": run_at.date(), **context} for c in items]

    return (invoice_rows, invoice_rows | invoice_details, deals, bank_accounts, currencies)

