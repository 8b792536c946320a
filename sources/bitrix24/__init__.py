"""Bitrix24 source: smart invoices (entity 31) and legacy invoices (``crm.invoice.*``), their product rows
and payments, invoice stages with their semantics, recurring templates, and a currency snapshot per run.

Every list is exported by id (``order id ASC``, ``filter >id``, ``start=-1``: no counting), 50 pages chained
in one ``batch`` request, under a client-side leaky bucket that keeps a normal run below the portal's limit.
Invoices are read incrementally on ``updatedTime`` / ``DATE_UPDATE`` with an overlap window and merged on id;
product rows and payments are re-read for invoices that changed or are still open (a payment does not always
touch the invoice); a periodic id sweep marks invoices that vanished as deleted. See README.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Optional

import dlt
import pendulum
from dlt.sources import DltResource

from ..common import SourceError, make_session
from . import records as rec
from .auth import OAuthAuth, TokenStore, WebhookAuth
from .client import Bitrix24Client, MethodUnavailable
from .settings import (
    ENV,
    LEGACY_SELECT,
    MONEY,
    PERCENT,
    PRODUCT_ROW_OWNERS_PER_CALL,
    QUANTITY,
    RATE,
    SMART_INVOICE,
    SMART_SELECT,
    SOURCE_NAME,
)

DEFAULT_TOKEN_URL = "https://oauth.bitrix24.tech/oauth/token/"

INVOICE_COMMON = {
    "id": {"data_type": "bigint", "nullable": False},
    "account_number": {"data_type": "text"},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp"},
}
SMART_COLUMNS = {**INVOICE_COMMON, "opportunity": dict(MONEY), "tax_value": dict(MONEY),
                 "begindate": {"data_type": "date"}, "closedate": {"data_type": "date"},
                 "moved_at": {"data_type": "timestamp"}, "stage_id": {"data_type": "text"},
                 "previous_stage_id": {"data_type": "text"}, "title": {"data_type": "text"}}
LEGACY_COLUMNS = {**INVOICE_COMMON, "price": dict(MONEY), "tax_value": dict(MONEY),
                  "date_bill": {"data_type": "date"}, "date_pay_before": {"data_type": "date"},
                  "pay_voucher_date": {"data_type": "date"}, "pay_voucher_num": {"data_type": "text"},
                  "paid_date": {"data_type": "date"},
                  "status_changed_at": {"data_type": "timestamp"}, "paid_at": {"data_type": "timestamp"},
                  "recurring_template_id": {"data_type": "bigint"}, "order_topic": {"data_type": "text"}}
ROW_COLUMNS = {"id": {"data_type": "bigint", "nullable": False}, "invoice_id": {"data_type": "bigint"},
               "price": dict(MONEY), "price_exclusive": dict(MONEY), "price_netto": dict(MONEY),
               "price_brutto": dict(MONEY), "discount_sum": dict(MONEY), "discount_rate": dict(PERCENT),
               "discount_price": dict(MONEY), "quantity": dict(QUANTITY), "tax_rate": dict(PERCENT),
               "vat_rate_coefficient": {"data_type": "decimal", "precision": 9, "scale": 6},
               "unit_price": dict(MONEY), "amount_net": dict(MONEY), "vat_amount": dict(MONEY),
               "amount_gross": dict(MONEY), "product_name": {"data_type": "text"}}
PAYMENT_COLUMNS = {"id": {"data_type": "bigint", "nullable": False}, "invoice_id": {"data_type": "bigint"},
                   "amount": dict(MONEY), "paid_at": {"data_type": "timestamp"}, "paid_date": {"data_type": "date"},
                   "account_number": {"data_type": "text"}}
DELETION_COLUMNS = {"kind": {"data_type": "text", "nullable": False}, "id": {"data_type": "bigint", "nullable": False},
                    "is_deleted": {"data_type": "bool"}, "detected_at": {"data_type": "timestamp"}}


# table -> (column hints, primary key, merge key). Child rows merge on their parent (merge_key): re-reading
# an invoice's rows replaces them all, so a row removed in the CRM disappears here too.
TABLES = {
    "smart_invoices": (SMART_COLUMNS, "id", None),
    "legacy_invoices": (LEGACY_COLUMNS, "id", None),
    "smart_invoice_product_rows": (ROW_COLUMNS, "id", "invoice_id"),
    "legacy_invoice_product_rows": (ROW_COLUMNS, "id", "invoice_id"),
    "smart_invoice_payments": (PAYMENT_COLUMNS, "id", "invoice_id"),
    "invoice_deletions": (DELETION_COLUMNS, ["kind", "id"], None),
}


def _to(table: str, rows: list[dict]):
    """Rows for one table with that table's own hints (a table variant): hints given to the resource itself
    would be copied into every table it writes."""
    columns, primary_key, merge_key = TABLES[table]
    hints = dlt.mark.make_hints(table_name=table, write_disposition="merge", primary_key=primary_key,
                                merge_key=merge_key, columns={k: dict(v) for k, v in columns.items()})
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)


def _default_token_store() -> Path:
    return Path(os.environ.get("CRM_INVOICES_DATA_DIR", "data")).resolve() / "secrets" / "bitrix24_oauth.json"


def _make_auth(webhook_url, portal_url, client_id, client_secret, refresh_token, oauth_token_url, token_store,
               timeout, max_attempts, backoff_factor):
    if webhook_url:
        return WebhookAuth(webhook_url)
    missing = [name for name, value in (("PORTAL_URL", portal_url), ("CLIENT_ID", client_id),
                                        ("CLIENT_SECRET", client_secret), ("REFRESH_TOKEN", refresh_token))
               if not value]
    if missing:
        raise SourceError(SOURCE_NAME, "no credentials configured (neither an inbound webhook nor a complete "
                          f"OAuth app: missing {', '.join(ENV + m for m in missing)}).",
                          f"set {ENV}WEBHOOK_URL=https://PORTAL/rest/USER_ID/SECRET/, or {ENV}PORTAL_URL, "
                          f"{ENV}CLIENT_ID, {ENV}CLIENT_SECRET and {ENV}REFRESH_TOKEN.")
    session = make_session(timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor)
    store = TokenStore(Path(token_store) if token_store else _default_token_store())
    return OAuthAuth(portal_url, client_id, client_secret, refresh_token, oauth_token_url or DEFAULT_TOKEN_URL,
                     store, session)


class _Portal:
    """What several resources need once per run: the stage dictionary with its semantics."""

    def __init__(self, client: Bitrix24Client, context: dict):
        self.client, self.context = client, context
        self._stages: list[dict] | None = None

    def stages(self) -> list[dict]:
        if self._stages is None:
            body = self.client.call("crm.category.list", {"entityTypeId": SMART_INVOICE})
            cats = (body.get("result") or {}).get("categories") or []
            entities = [f"SMART_INVOICE_STAGE_{int(c['id'])}" for c in cats] + ["INVOICE_STATUS"]
            res = self.client.batch({f"s{n}": ("crm.status.list", {"filter": {"ENTITY_ID": e}})
                                     for n, e in enumerate(entities)})
            rows = []
            for n, entity in enumerate(entities):
                statuses = res.result.get(f"s{n}") or []
                if entity == "INVOICE_STATUS":
                    # the legacy dictionary carries no semantics: P is the only success, whatever sorts after
                    # it is a failure, the rest is in progress (the CRM's own rule)
                    p_sort = next((int(s["SORT"]) for s in statuses if s["STATUS_ID"] == "P"), None)
                    for s in statuses:
                        sort = int(s["SORT"])
                        s["SEMANTICS"] = ("S" if s["STATUS_ID"] == "P" else
                                          "F" if p_sort is not None and sort > p_sort else None)
                first = min((int(s["SORT"]) for s in statuses), default=None)
                rows += [{"entity_id": entity, "status_id": s["STATUS_ID"], "name": s.get("NAME"),
                          "sort": int(s["SORT"]), "category_id": rec.integer(s.get("CATEGORY_ID")),
                          "semantics": s.get("SEMANTICS") or None, "is_first": int(s["SORT"]) == first,
                          **self.context} for s in statuses]
            self._stages = rows
        return self._stages

    def closed(self, entity_prefix: str) -> set[str]:
        return {s["status_id"] for s in self.stages() if s["entity_id"].startswith(entity_prefix)
                and s["semantics"] in ("S", "F")}


def _sweep_due(state: dict, hours: float, now: pendulum.DateTime) -> bool:
    last = state.get("last_sweep")
    return hours <= 0 or last is None or now - pendulum.parse(last) >= timedelta(hours=hours)


def _deletions(state: dict, kind: str, live: set[int], now) -> list[dict]:
    known, deleted = set(state.get("known_ids", [])), set(state.get("deleted_ids", []))
    vanished = (known | deleted) - live
    marks = [{"kind": kind, "id": i, "is_deleted": True, "detected_at": now} for i in sorted(vanished - deleted)]
    marks += [{"kind": kind, "id": i, "is_deleted": False, "detected_at": now} for i in sorted(deleted & live)]
    state["deleted_ids"] = sorted(vanished)
    state["known_ids"] = sorted(live)
    return marks


@dlt.source(name="bitrix24", max_table_nesting=0)
def bitrix24_source(
    webhook_url: Optional[str] = dlt.secrets.value,  # noqa: UP045 (dlt reads Optional as "may be missing")
    portal_url: Optional[str] = dlt.config.value,  # noqa: UP045
    client_id: Optional[str] = dlt.config.value,  # noqa: UP045
    client_secret: Optional[str] = dlt.secrets.value,  # noqa: UP045
    refresh_token: Optional[str] = dlt.secrets.value,  # noqa: UP045
    oauth_token_url: str = DEFAULT_TOKEN_URL,
    token_store: Optional[str] = None,  # noqa: UP045
    account: Optional[str] = None,  # noqa: UP045
    requests_per_second: float = 2.0,
    burst: int = 50,
    request_timeout: float = 75,
    request_max_attempts: int = 5,
    request_backoff_factor: float = 1.0,
    rate_limit_retries: int = 30,
    max_operation_wait: float = 660,
    overlap_seconds: int = 300,
    delete_sweep_hours: float = 24,
    batch_chain: int = 50,
) -> Iterator[DltResource]:
    """Args:
        webhook_url: inbound webhook ``https://PORTAL/rest/USER_ID/SECRET/`` (scope crm); or the OAuth app:
        portal_url, client_id, client_secret, refresh_token, oauth_token_url: the rotated refresh token is kept
            in ``token_store`` (default ``<data dir>/secrets/bitrix24_oauth.json``, mode 0600).
        account: the portal's name in the warehouse; defaults to its host.
        requests_per_second, burst: the portal's leaky bucket (2/s and 50 by default; Enterprise 5/s and 250).
        request_timeout: seconds per HTTP request; above the portal's own 60 s cut-off.
        overlap_seconds: how far before the last seen modification time each incremental read starts.
        delete_sweep_hours: how often to read every id to find deleted invoices (0 = every run).
        batch_chain: pages chained in one batch request (at most 50).
    """
    auth = _make_auth(webhook_url, portal_url, client_id, client_secret, refresh_token, oauth_token_url,
                      token_store, request_timeout, request_max_attempts, request_backoff_factor)
    client = Bitrix24Client(auth, requests_per_second=requests_per_second, burst=burst, timeout=request_timeout,
                            max_attempts=request_max_attempts, backoff_factor=request_backoff_factor,
                            rate_limit_retries=rate_limit_retries, max_operation_wait=max_operation_wait)
    chain = max(1, min(50, batch_chain))
    run_at = pendulum.now("UTC")
    context = {"account": account or auth.host, "_extracted_at": run_at}
    portal = _Portal(client, {"account": context["account"]})
    overlap = timedelta(seconds=overlap_seconds)

    @dlt.resource(name="stages", write_disposition="replace", columns={"semantics": {"data_type": "text"}})
    def stages() -> Iterator[list[dict]]:
        yield portal.stages()

    @dlt.resource(name="currencies", write_disposition="merge", primary_key=("account", "currency", "snapshot_date"),
                  columns={"amount": dict(RATE), "rate_to_base": dict(RATE), "snapshot_date": {"data_type": "date"}})
    def currencies() -> Iterator[list[dict]]:
        # Bitrix24 keeps only today's rates: a snapshot per run date is the only history there will be
        body = client.call("crm.currency.list", {"order": {"SORT": "ASC"}})
        out = []
        for c in body.get("result") or []:
            nominal = rec.amount(c.get("AMOUNT_CNT"), "AMOUNT_CNT") or 1
            value = rec.amount(c.get("AMOUNT"), "AMOUNT")
            out.append({"currency": c["CURRENCY"], "amount": value, "amount_cnt": int(nominal),
                        "rate_to_base": None if value is None else value / nominal, "is_base": c.get("BASE") == "Y",
                        "snapshot_date": run_at.date(), "snapshot_at": run_at, **context})
        yield out

    @dlt.resource(name="recurring_templates", write_disposition="replace",
                  columns={"next_execution": {"data_type": "date"}, "start_date": {"data_type": "date"}})
    def recurring_templates() -> Iterator[list[dict]]:
        start, out = 0, []
        while True:
            try:
                body = client.call("crm.invoice.recurring.list",
                                   {"order": {"ID": "ASC"}, "select": ["*"], "start": start})
            except MethodUnavailable:
                return  # a portal without legacy invoices has no recurring templates either
            for r in body.get("result") or []:
                out.append({"id": int(r["ID"]), "template_invoice_id": int(r["INVOICE_ID"]),
                            "active": r.get("ACTIVE") == "Y",
                            "next_execution": rec.business_date(r.get("NEXT_EXECUTION"), "NEXT_EXECUTION"),
                            "start_date": rec.business_date(r.get("START_DATE"), "START_DATE"), **context})
            if not body.get("next"):
                break
            start = int(body["next"])
        if out:
            yield out

    @dlt.resource(name="companies", write_disposition="merge", primary_key=("account", "id"),
                  columns={"title": {"data_type": "text"}})
    def companies() -> Iterator[list[dict]]:
        # the client names invoices point at (companyId / UF_COMPANY_ID); read whole, 2,500 per request
        for page in client.list_by_id("crm.company.list", {"select": ["ID", "TITLE", "COMPANY_TYPE"]}, "ID", None,
                                      chain=chain):
            yield [{"id": int(c["ID"]), "title": c.get("TITLE"), "company_type": c.get("COMPANY_TYPE"), **context}
                   for c in page]

    def read_changed(state: dict, method: str, params: dict, id_field: str, wrapper, cursor_field: str,
                     parse) -> Iterator[list[dict]]:
        cursor = state.get("cursor")
        flt = {f">={cursor_field}": (pendulum.parse(cursor) - overlap).isoformat()} if cursor else {}
        # an incremental read usually finds a few changes: a one-page first batch, then full chains if needed
        for page in client.list_by_id(method, {**params, "filter": flt}, id_field, wrapper, chain=chain,
                                      first_chain=1 if cursor else None):
            yield [parse(row, context) for row in page]

    def finish(state: dict, kind: str, changed: dict[int, dict], closed: set[str], status_field: str,
               live: set[int] | None) -> list[dict]:
        """Advance the cursor and the open/known sets; returns deletion marks when a sweep ran. State is
        committed with the load package, so none of this survives a failed run."""
        stamps = [r["updated_at"] for r in changed.values() if r["updated_at"] is not None]
        if stamps:
            latest = max(stamps)
            if state.get("cursor") is None or latest > pendulum.parse(state["cursor"]):
                state["cursor"] = latest.isoformat()
        open_ids = set(state.get("open_ids", [])) - set(changed)
        open_ids |= {i for i, r in changed.items() if r[status_field] not in closed}
        marks: list[dict] = []
        if live is not None:
            marks = _deletions(state, kind, live, run_at)
            open_ids &= live
            state["last_sweep"] = run_at.isoformat()
        else:
            state["known_ids"] = sorted(set(state.get("known_ids", [])) | set(changed))
        state["open_ids"] = sorted(open_ids)
        return marks

    @dlt.resource(name="smart_invoices", write_disposition="merge", primary_key="id")
    def smart_invoices() -> Iterator[object]:
        state = dlt.current.resource_state()
        first_run = state.get("cursor") is None
        changed: dict[int, dict] = {}
        for page in read_changed(state, "crm.item.list", {"entityTypeId": SMART_INVOICE, "select": SMART_SELECT},
                                 "id", "items", "updatedTime", rec.smart_invoice):
            changed.update((r["id"], r) for r in page)
            yield _to("smart_invoices", page)
        refresh = sorted(set(changed) | set(state.get("open_ids", [])))
        groups = [{"filter": {"=ownerType": "SI", "=ownerId": refresh[i:i + PRODUCT_ROW_OWNERS_PER_CALL]},
                   "order": {"id": "ASC"}}
                  for i in range(0, len(refresh), PRODUCT_ROW_OWNERS_PER_CALL)]
        for rows in client.paged_groups("crm.item.productrow.list", groups, "productRows"):
            yield _to("smart_invoice_product_rows", [rec.smart_product_row(r, context) for r in rows])
        payments: list[dict] = []
        for invoice_id, result in client.per_item(
                "crm.item.payment.list", lambda i: {"entityId": i, "entityTypeId": SMART_INVOICE}, refresh,
                missing_ok=frozenset({"NOT_FOUND"})):
            if not isinstance(result, list):
                raise SourceError(SOURCE_NAME, f"crm.item.payment.list for invoice {invoice_id} returned "
                                  f"{type(result).__name__}, not a list.", "report it.")
            payments += [rec.smart_payment(p, invoice_id, context) for p in result]
            if len(payments) >= 2000:
                yield _to("smart_invoice_payments", payments)
                payments = []
        if payments:
            yield _to("smart_invoice_payments", payments)
        live = None
        if first_run:
            live = set(changed)
        elif _sweep_due(state, delete_sweep_hours, run_at):
            live = {int(r["id"]) for page in client.list_by_id(
                "crm.item.list", {"entityTypeId": SMART_INVOICE, "select": ["id"]}, "id", "items", chain=chain)
                for r in page}
        marks = finish(state, "smart", changed, portal.closed("SMART_INVOICE_STAGE_"), "stage_id", live)
        if marks:
            yield _to("invoice_deletions", marks)

    @dlt.resource(name="legacy_invoices", write_disposition="merge", primary_key="id")
    def legacy_invoices() -> Iterator[object]:
        state = dlt.current.resource_state()
        first_run = state.get("cursor") is None
        changed: dict[int, dict] = {}
        try:
            for page in read_changed(state, "crm.invoice.list", {"select": LEGACY_SELECT}, "ID", None,
                                     "DATE_UPDATE", rec.legacy_invoice):
                changed.update((r["id"], r) for r in page)
                yield _to("legacy_invoices", page)
        except MethodUnavailable:
            if changed:
                raise
            return  # newer portals switch the legacy invoices off: nothing to read, not an error
        templates = {i for i, r in changed.items() if r["is_recurring"]}
        # PRODUCT_ROWS only come with crm.invoice.get: one call per invoice, 50 to a batch; templates skipped
        refresh = sorted((set(changed) | set(state.get("open_ids", []))) - templates)
        rows: list[dict] = []
        for invoice_id, result in client.per_item("crm.invoice.get", lambda i: {"id": i}, refresh,
                                                  missing_ok=frozenset({"", "NOT_FOUND"})):
            product_rows = (result or {}).get("PRODUCT_ROWS") if isinstance(result, dict) else None
            if not isinstance(product_rows, list):
                raise SourceError(SOURCE_NAME, f"crm.invoice.get for invoice {invoice_id} has no PRODUCT_ROWS list.",
                                  "check the webhook's/app's crm scope; report it if it persists.")
            rows += [rec.legacy_product_row(r, invoice_id, n, context) for n, r in enumerate(product_rows, start=1)]
            if len(rows) >= 2000:
                yield _to("legacy_invoice_product_rows", rows)
                rows = []
        if rows:
            yield _to("legacy_invoice_product_rows", rows)
        live = None
        if first_run:
            live = set(changed)
        elif _sweep_due(state, delete_sweep_hours, run_at):
            live = {int(r["ID"]) for page in client.list_by_id("crm.invoice.list", {"select": ["ID"]}, "ID", None,
                                                                chain=chain) for r in page}
        closed = portal.closed("INVOICE_STATUS")
        marks = finish(state, "legacy", changed, closed, "status_id", live)
        state["open_ids"] = sorted(set(state["open_ids"]) - templates)
        if marks:
            yield _to("invoice_deletions", marks)

    return (stages, currencies, recurring_templates, companies, smart_invoices, legacy_invoices)
