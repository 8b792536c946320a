"""Bitrix24 source: smart invoices (entity 31) and legacy invoices (``crm.invoice.*``), their product rows
and payments, invoice stages with their semantics, recurring templates, and a currency snapshot per run.

Every list is exported by id (``order id ASC``, ``filter >id``, ``start=-1``: no counting), 50 pages chained
in one ``batch`` request, under a client-side leaky bucket that keeps a normal run below the portal's limit.
One opening batch carries the dictionaries and the first pages of every list (helpers.Run). Invoices are read
incrementally on ``updatedTime`` / ``DATE_UPDATE`` with an overlap window and merged on id; smart invoices'
product rows and payments are re-read for those that changed or are still open (a payment does not always
touch the invoice), in shared batches; an id sweep on every run marks invoices that vanished as deleted.
See README.md.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from datetime import timedelta
from itertools import chain as chain_answers
from pathlib import Path
from typing import Optional

import dlt
import pendulum
from dlt.sources import DltResource

from ..common import RATE, SourceError, make_session, resolve_credentials
from . import records as rec
from .auth import Bitrix24OAuth, TokenStore, WebhookAuth
from .client import Bitrix24Client, MethodUnavailable
from .commands import Command, page_rows
from .credentials import DEFAULT_TOKEN_URL, KINDS, Bitrix24WebhookCredentials
from .helpers import GONE, Run, deletions
from .settings import (
    ENV,
    PRODUCT_ROW_OWNERS_PER_CALL,
    SMART_INVOICE,
    SOURCE_NAME,
)
from .tables import to_table

DELETION_COLUMNS = {"account": {"data_type": "text"}, "kind": {"data_type": "text", "nullable": False}, "id": {"data_type": "bigint", "nullable": False},
                    "is_deleted": {"data_type": "bool"}, "detected_at": {"data_type": "timestamp"}}


# Rows per Arrow table handed to dlt: few large tables cost dlt less per row than many small ones, and a
# bounded number keeps memory flat however large the portal.
ARROW_ROWS = 5000
# What a resource keeps of each changed invoice until its end (the cursor, the open set, the templates): not
# the whole row, so memory does not grow with every field of every invoice.
KEPT = ("updated_at", "stage_id", "is_recurring")
ROWS_METHOD = "crm.item.productrow.list"


def _marks(rows: list[dict]):
    """Deletion marks: few rows, through dlt's JSON path, with the table's own hints (a table variant: hints
    given to the resource itself would be copied into every table it writes)."""
    hints = dlt.mark.make_hints(table_name="invoice_deletions", write_disposition="merge", primary_key=["kind", "id"],
                                columns={k: dict(v) for k, v in DELETION_COLUMNS.items()})
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)


def _default_token_store() -> Path:
    return Path(os.environ.get("CRM_INVOICES_DATA_DIR", "data")).resolve() / "secrets" / "bitrix24_oauth.json"


def _make_auth(explicit: dict, token_store, timeout, max_attempts, backoff_factor):
    """The webhook when one is configured, else the OAuth app: both resolved by dlt (the arguments first)."""
    found = resolve_credentials(
        SOURCE_NAME, KINDS, explicit,
        "no credentials configured (neither an inbound webhook nor a complete OAuth app).",
        f"set {ENV}WEBHOOK_URL=https://PORTAL/rest/USER_ID/SECRET/, or {ENV}PORTAL_URL, {ENV}CLIENT_ID, "
        f"{ENV}CLIENT_SECRET and {ENV}REFRESH_TOKEN.")
    credentials = found[0]
    if isinstance(credentials, Bitrix24WebhookCredentials):
        return WebhookAuth(credentials.webhook_url)
    session = make_session(timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor)
    store = TokenStore(Path(token_store) if token_store else _default_token_store())
    return Bitrix24OAuth(credentials.portal_url, credentials.client_id, credentials.client_secret,
                         credentials.refresh_token, credentials.oauth_token_url or DEFAULT_TOKEN_URL, store, session)


NO_CONTEXT: dict = {}


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
        batch_chain: pages chained in one batch request (at most 50).
    """
    auth = _make_auth(dict(webhook_url=webhook_url, portal_url=portal_url, client_id=client_id,
                           client_secret=client_secret, refresh_token=refresh_token, oauth_token_url=oauth_token_url),
                      token_store, request_timeout, request_max_attempts, request_backoff_factor)
    client = Bitrix24Client(auth, requests_per_second=requests_per_second, burst=burst, timeout=request_timeout,
                            max_attempts=request_max_attempts, backoff_factor=request_backoff_factor,
                            rate_limit_retries=rate_limit_retries, max_operation_wait=max_operation_wait)
    chain = max(1, min(50, batch_chain))
    run_at = pendulum.now("UTC")
    context = {"account": account or auth.host, "_extracted_at": run_at}
    # the Arrow tables take the context as constants: the records leave it out
    portal = Run(client, dlt.current.resource_state, timedelta(seconds=overlap_seconds), chain,
                 {"account": context["account"]})

    @dlt.resource(name="stages", write_disposition="replace", columns={"semantics": {"data_type": "text"}})
    def stages() -> Iterator[list[dict]]:
        yield portal.stages()

    @dlt.resource(name="currencies", write_disposition="merge", primary_key=("account", "currency", "snapshot_date"),
                  columns={"amount": dict(RATE), "rate_to_base": dict(RATE), "snapshot_date": {"data_type": "date"}})
    def currencies() -> Iterator[list[dict]]:
        # Bitrix24 keeps only today's rates: a snapshot per run date is the only history there will be
        out = []
        for c in portal.currencies():
            nominal = rec.amount(c.get("AMOUNT_CNT"), "AMOUNT_CNT") or 1
            value = rec.amount(c.get("AMOUNT"), "AMOUNT")
            out.append({"currency": c["CURRENCY"], "amount": value, "amount_cnt": int(nominal),
                        "rate_to_base": None if value is None else value / nominal, "is_base": c.get("BASE") == "Y",
                        "snapshot_date": run_at.date(), "snapshot_at": run_at, **context})
        yield out

    @dlt.resource(name="recurring_templates", write_disposition="replace",
                  columns={"next_execution": {"data_type": "date"}, "start_date": {"data_type": "date"}})
    def recurring_templates() -> Iterator[list[dict]]:
        out = {}  # by id: offset pages shift when a setting is added meanwhile, so a row may come twice
        try:
            for page in portal.recurring():
                out |= {int(r["ID"]): {"id": int(r["ID"]), "template_invoice_id": int(r["INVOICE_ID"]),
                         "active": r.get("ACTIVE") == "Y",
                         "next_execution": rec.business_date(r.get("NEXT_EXECUTION"), "NEXT_EXECUTION"),
                         "start_date": rec.business_date(r.get("START_DATE"), "START_DATE"), **context}
                        for r in page}
        except MethodUnavailable:
            return  # a portal without legacy invoices has no recurring templates either
        if out:
            yield list(out.values())

    @dlt.resource(name="companies", write_disposition="merge", primary_key=("account", "id"),
                  columns={"title": {"data_type": "text"}})
    def companies() -> Iterator[list[dict]]:
        # the client names invoices point at (companyId / UF_COMPANY_ID); read whole, 2,500 per request
        state, count = dlt.current.resource_state(), 0
        for page in portal.rows("co"):
            count += len(page)
            yield [{"id": int(c["ID"]), "title": c.get("TITLE"), "company_type": c.get("COMPANY_TYPE"), **context}
                   for c in page]
        state["count"] = count  # sizes the next opening batch

    def read_changed(key: str, parse, changed: dict[int, dict]) -> Iterator[object]:
        table = "smart_invoices" if key == "si" else "legacy_invoices"
        rows: list[dict] = []
        for page in portal.rows(key):
            parsed = [parse(row, NO_CONTEXT) for row in page]
            changed.update((r["id"], {k: r[k] for k in KEPT if k in r}) for r in parsed)
            rows += parsed
            if len(rows) >= ARROW_ROWS:
                yield to_table(table, rows, context)
                rows = []
        if rows:
            yield to_table(table, rows, context)

    def live_ids(state: dict, changed_key: str, sweep_key: str, changed: dict) -> set[int]:
        """A first run's complete export is the live set; a rerun sweeps (in the opening batch, or again if
        the changed read went on after it)."""
        if state.get("cursor") is None:
            return set(changed)
        return portal.sweep(sweep_key, fresh=not portal.first_done[changed_key])

    def finish(state: dict, changed: dict[int, dict]) -> None:
        """Advance the cursor (from the portal's clock). State is committed with the load package, so none of
        this survives a failed run."""
        stamps = [r["updated_at"] for r in changed.values() if r["updated_at"] is not None]
        if stamps:
            latest = max(stamps)
            if state.get("cursor") is None or latest > pendulum.parse(state["cursor"]):
                state["cursor"] = latest.isoformat()

    # no primary key on the resource: each table it writes names its own keys (tables.to_table, _marks), and a
    # table variant inherits the resource's key, which would make the child rows' id one again
    @dlt.resource(name="smart_invoices", write_disposition="merge")
    def smart_invoices() -> Iterator[object]:
        state = dlt.current.resource_state()
        changed: dict[int, dict] = {}
        yield from read_changed("si", rec.smart_invoice, changed)
        live = live_ids(state, "si", "ss", changed)
        closed = portal.closed("SMART_INVOICE_STAGE_")
        # rows and payments of what changed and of what is still open and alive (a payment does not always
        # move updatedTime); product rows of 20 invoices a command, payments one a command, in shared batches
        refresh = sorted(set(changed) | (set(state.get("open_ids", [])) & live))
        # made as the batches take them: a large portal's commands are never all in memory at once
        commands = chain_answers(
            (Command(ROWS_METHOD, {
                "filter": {"=ownerType": "SI", "=ownerId": refresh[i:i + PRODUCT_ROW_OWNERS_PER_CALL]},
                "order": {"id": "ASC"}, "start": 0}) for i in range(0, len(refresh), PRODUCT_ROW_OWNERS_PER_CALL)),
            # payments the opening batch already read (invoices open since the last run) are not asked again
            (Command("crm.item.payment.list", {"entityId": i, "entityTypeId": SMART_INVOICE}, i)
             for i in refresh if i not in portal.payments and i not in portal.gone["pay"]))
        wanted = set(refresh)
        read = {i: r for i, r in portal.payments.items() if i in wanted}
        pending: deque[Command] = deque()  # the next pages of product rows
        rows: list[dict] = []
        payments: list[dict] = []
        answers = chain_answers(((Command("crm.item.payment.list", {}, i), r, None) for i, r in read.items()),
                                client.pump(pending, frozenset({"NOT_FOUND"}), commands))
        for command, result, nxt in answers:
            if command.method == ROWS_METHOD:  # product rows; tag: the row ids the group's earlier pages gave
                page = [rec.smart_product_row(r, NO_CONTEXT) for r in page_rows(command, result, "productRows",
                                                                              client.fail)]
                seen = command.tag
                if seen:  # a row added meanwhile shifts the offsets: the row before it comes again
                    page = [r for r in page if r["id"] not in seen]
                rows += page
                if nxt:
                    pending.append(Command(command.method, {**command.params, "start": nxt},
                                           (seen or set()) | {r["id"] for r in page}))
            elif result is not None:  # None: the invoice vanished after the list; the sweep marks it
                if not isinstance(result, list):
                    raise SourceError(SOURCE_NAME, f"crm.item.payment.list for invoice {command.tag} returned "
                                      f"{type(result).__name__}, not a list.", "report it.")
                payments += [rec.smart_payment(p, command.tag, NO_CONTEXT) for p in result]
            if len(rows) >= ARROW_ROWS:
                yield to_table("smart_invoice_product_rows", rows, context)
                rows = []
            if len(payments) >= ARROW_ROWS:
                yield to_table("smart_invoice_payments", payments, context)
                payments = []
        if rows:
            yield to_table("smart_invoice_product_rows", rows, context)
        if payments:
            yield to_table("smart_invoice_payments", payments, context)
        finish(state, changed)
        open_ids = (set(state.get("open_ids", [])) - set(changed)) | {
            i for i, r in changed.items() if r["stage_id"] not in closed}
        state["open_ids"] = sorted(open_ids & live)
        marks = deletions(state, "smart", set(changed), live, run_at, context["account"])
        if marks:
            yield _marks(marks)

    @dlt.resource(name="legacy_invoices", write_disposition="merge")
    def legacy_invoices() -> Iterator[object]:
        state = dlt.current.resource_state()
        portal.open()
        if not portal.legacy_available:
            return  # newer portals switch the legacy invoices off: nothing to read, not an error
        changed: dict[int, dict] = {}
        yield from read_changed("li", rec.legacy_invoice, changed)
        live = live_ids(state, "li", "ls", changed)
        # PRODUCT_ROWS only come with crm.invoice.get, one call per invoice, 50 to a batch; templates skipped.
        # Only for invoices that changed: a legacy invoice is a sale order, whose rows and payment (the status
        # P) are saved with it, moving DATE_UPDATE; nothing changes it behind its back, unlike a smart
        # invoice's payments.
        refresh = sorted(i for i, r in changed.items() if not r["is_recurring"])
        # the opening batch read the first of them already
        ask = [i for i in refresh if i not in portal.legacy_gets and i not in portal.gone["lg"]]
        read = [(i, portal.legacy_gets[i]) for i in refresh if i in portal.legacy_gets]
        rows: list[dict] = []
        for invoice_id, result in chain_answers(read, client.per_item("crm.invoice.get", lambda i: {"id": i}, ask,
                                                                      missing_ok=GONE)):
            product_rows = (result or {}).get("PRODUCT_ROWS") if isinstance(result, dict) else None
            if not isinstance(product_rows, list):
                raise SourceError(SOURCE_NAME, f"crm.invoice.get for invoice {invoice_id} has no PRODUCT_ROWS list.",
                                  "check the webhook's/app's crm scope; report it if it persists.")
            rows += [rec.legacy_product_row(r, invoice_id, n, NO_CONTEXT) for n, r in enumerate(product_rows, start=1)]
            if len(rows) >= ARROW_ROWS:
                yield to_table("legacy_invoice_product_rows", rows, context)
                rows = []
        if rows:
            yield to_table("legacy_invoice_product_rows", rows, context)
        finish(state, changed)
        state.pop("open_ids", None)  # kept by earlier versions, which re-read open legacy invoices
        marks = deletions(state, "legacy", set(changed), live, run_at, context["account"])
        if marks:
            yield _marks(marks)

    return (stages, currencies, recurring_templates, companies, smart_invoices, legacy_invoices)
