"""ONLYOFFICE CRM (Workspace / CommunityServer API 2.0) source: invoices, their lines, taxes, catalog items,
the portal default currency and currency rates.

Invoices have no modification time the API exposes and are deleted hard, so every run reads the whole
``invoice/filter`` list (a snapshot, sorted by id), merges it on the invoice id, and records ids that vanished
in ``invoice_deletions``. Lines only come with ``invoice/{id}``: they are fetched for new invoices, drafts
(the only editable status) and invoices whose list row changed, judged by a fingerprint kept in dlt state,
which is committed together with the data, so a failed run re-fetches next time. That is also why there is
no ``dlt.sources.incremental`` here: there is no cursor to keep. Taxes, catalog items, the default currency
and currency rates are small and change retroactively (a tax rate edit changes the cost of old invoices), so
they are snapshotted on every run under the run date.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import dlt
import pendulum
import pyarrow as pa
from dlt.sources import DltResource

from ..common import MONEY, PERCENT, QUANTITY, RATE, deletion_marks, money, resolve_credentials
from .client import NotFound, OnlyofficeClient
from .credentials import KINDS, OnlyofficePasswordCredentials, OnlyofficeTokenCredentials
from .helpers import fail, in_parallel
from .paging import scan
from .records import invoice_record, item_record, line_records, tax_record
from .settings import (
    CREDENTIALS_FIX,
    ENV,
    MAX_PAGE_SIZE,
    SORT_BY_ID,
    SOURCE_NAME,
    STATUS_DRAFT,
    VAT_TAX_PATTERN,
)
from .tables import DELETIONS, INVOICE_HINTS, INVOICES, LINES, batch, hints


def _columns(**hints: dict) -> dict:
    # a fresh dict per column: dlt mutates column schemas, a shared dict would leak hints between columns
    return {name: dict(hint) for name, hint in hints.items()}


TEXT, DATE, TS, BIGINT = {"data_type": "text"}, {"data_type": "date"}, {"data_type": "timestamp"}, {"data_type": "bigint"}


def _deletion_marks(marks: list[dict]):
    """Deletion marks of the invoices (from the list) or of the lines transformer (a 404 on the detail call).
    A table variant starts from the resource's own hints, so the lines' merge key is dropped and their
    not-null ``invoice_id`` relaxed: neither belongs there."""
    made = dlt.mark.make_hints(table_name="invoice_deletions", write_disposition="merge", primary_key="id",
                               merge_key="", columns=hints(DELETIONS))
    return dlt.mark.with_hints(marks, made, create_table_variant=True)


@dlt.source(name="onlyoffice", max_table_nesting=0)
def onlyoffice_source(
    base_url: str = dlt.config.value,
    token: str | None = dlt.secrets.value,
    username: str | None = dlt.config.value,
    password: str | None = dlt.secrets.value,
    account: str | None = None,
    sort_by: str = SORT_BY_ID,
    page_size: int = MAX_PAGE_SIZE,
    detail_workers: int = 4,
    vat_tax_pattern: str = VAT_TAX_PATTERN,
    max_scan_attempts: int = 3,
    request_timeout: float = 60,
    request_max_attempts: int = 5,
    request_backoff_factor: float = 1.0,
    rate_limit_waits: int = 30,
    rate_limit: int = 500,
    rate_window: float = 10.0,
) -> Iterator[DltResource]:
    """Args:
        base_url: the portal's root URL, e.g. ``https://crm.example.com`` (the API is at ``/api/2.0/``).
        token: an API token (``Authorization`` header value); wins over username/password.
        username, password: a CRM administrator without 2FA; a token is requested once per run.
        account: a name for this portal in the warehouse; defaults to the host of ``base_url``.
        sort_by: ``id`` (12.7+); ``number`` for older servers (detected and switched automatically too).
        page_size: rows per list page, at most 1000 (the portal caps larger values silently).
        detail_workers: parallel ``invoice/{id}`` calls (the cloud allows 500 requests per 10 s).
        vat_tax_pattern: regular expression on tax names that marks a tax as VAT.
        rate_limit_waits: how often one request may wait out a 503 with Retry-After (the cloud's rate limit)
            before the run gives up; these waits do not count as failed attempts.
        rate_limit, rate_window: the portal's limit (the cloud: 500 requests per 10 s); from its first 503 on,
            every request is paced to it. ``rate_limit`` 0: no pacing, only ``Retry-After`` waited out.
    """
    found = resolve_credentials(SOURCE_NAME, KINDS, {"token": token, "username": username, "password": password},
                                "no credentials are configured.", CREDENTIALS_FIX + ".")
    token = next((c.token for c in found if isinstance(c, OnlyofficeTokenCredentials)), None)
    login = next((c for c in found if isinstance(c, OnlyofficePasswordCredentials)), None)
    username, password = (login.username, login.password) if login else (None, None)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise fail(f"page_size {page_size} is outside 1..{MAX_PAGE_SIZE}.", f"set {ENV}PAGE_SIZE to at most 1000.")
    try:
        vat_pattern = re.compile(vat_tax_pattern)
    except re.error as exc:
        raise fail(f"vat_tax_pattern is not a regular expression ({exc}).", f"fix {ENV}VAT_TAX_PATTERN.") from None
    client = OnlyofficeClient(base_url, token=token, username=username, password=password,
                              timeout=request_timeout, max_attempts=request_max_attempts,
                              backoff_factor=request_backoff_factor, rate_limit_waits=rate_limit_waits,
                              rate_limit=rate_limit, rate_window=rate_window)
    account_name = account or urlsplit(base_url).hostname or base_url
    run_at = pendulum.now("UTC")
    context = {"account": account_name}
    snapshot = {"snapshot_date": run_at.date(), **context}
    stamp = {**context, "_extracted_at": run_at}  # the columns every invoice and line row gets
    fetched: set[int] = set()  # invoice ids whose details this run already read
    gone: set[int] = set()  # invoice ids whose details answered 404: deleted after the list was read

    @dlt.resource(name="invoices", write_disposition="merge", primary_key="id", columns=hints(INVOICES, INVOICE_HINTS))
    def invoices() -> Iterator[list[dict]]:
        state = dlt.current.resource_state()
        known: set[int] = set(state.get("known_ids", []))
        deleted: set[int] = set(state.get("deleted_ids", []))
        result: dict = {}
        for scan_no, rows in scan(client, "invoice/filter", page_size, sort_by, max_scan_attempts, result):
            yield batch("invoices", [invoice_record(r, scan_no) for r in rows], stamp)
        live: set[int] = result["ids"] - gone
        marks, vanished = deletion_marks("id", known, deleted, result["yielded"], live, run_at)
        if marks:
            yield _deletion_marks([dict(m, **context) for m in marks])
        state["known_ids"] = sorted(live)
        state["deleted_ids"] = sorted(vanished)
        state["last_scan"] = {k: v for k, v in result.items() if k not in ("ids", "yielded")}

    # merge_key invoice_id: a refetched invoice replaces *all* its old lines (a draft may lose lines)
    @dlt.transformer(name="invoice_lines", write_disposition="merge", primary_key="id", merge_key="invoice_id",
                     columns=hints(LINES))
    def invoice_lines(page) -> Iterator[object]:
        if not isinstance(page, pa.Table):
            return  # deletion marks travel down the same pipe
        seen: dict = dlt.current.resource_state().setdefault("fingerprints", {})
        rows = page.select(["id", "status_id", "_fingerprint"]).to_pylist()
        todo = [r for r in rows if r["id"] not in fetched  # a list read again after a shift repeats rows
                and (r["status_id"] == STATUS_DRAFT or seen.get(str(r["id"])) != r["_fingerprint"])]
        fetched.update(r["id"] for r in todo)

        def detail(row: dict) -> tuple[dict, list[dict] | None]:
            try:
                return row, line_records(client.fetch_one(f"invoice/{row['id']}"))
            except NotFound:
                return row, None  # deleted between the list and this call

        # After a failure the calls still queued are dropped: each would go through every retry, and after a
        # revoked login each would count towards the brute-force lock, before the error is reported.
        results = in_parallel(detail, todo, detail_workers)
        out = []
        for row, lines in results:
            if lines is not None:
                out.extend(lines)
                seen[str(row["id"])] = row["_fingerprint"]
        if out:
            yield batch("invoice_lines", out, stamp)
        vanished = {row["id"] for row, lines in results if lines is None} - gone
        if vanished:
            # Deleted between the list and the detail call: marked now, not one run late. The list may have
            # been finished and its state written already (dlt interleaves the two), so that state is fixed
            # up here too; if not, the list leaves these ids out itself.
            gone.update(vanished)
            listed = dlt.current.resource_state("invoices")
            listed["known_ids"] = sorted(set(listed.get("known_ids", [])) - vanished)
            listed["deleted_ids"] = sorted(set(listed.get("deleted_ids", [])) | vanished)
            yield _deletion_marks([{"id": i, "is_deleted": True, "deleted_at": run_at, **context} for i in sorted(vanished)])

    @dlt.resource(name="taxes", write_disposition="merge", primary_key=("id", "snapshot_date"),
                  columns=_columns(rate=PERCENT, snapshot_date=DATE, description=TEXT))
    def taxes() -> Iterator[list[dict]]:
        yield [dict(tax_record(t, vat_pattern), **snapshot) for t in client.fetch("invoice/tax")]

    @dlt.resource(name="invoice_items", write_disposition="merge", primary_key=("id", "snapshot_date"),
                  columns=_columns(price=MONEY, stock_quantity=QUANTITY, snapshot_date=DATE, created_at=TS,
                                   description=TEXT, sku=TEXT, tax1_id=BIGINT, tax2_id=BIGINT))
    def invoice_items() -> Iterator[list[dict]]:
        for _scan, rows in scan(client, "invoiceitem/filter", page_size, SORT_BY_ID, max_scan_attempts, {}):
            yield [dict(item_record(r), **snapshot) for r in rows]

    @dlt.resource(name="portal", write_disposition="merge", primary_key="snapshot_date",
                  columns=_columns(snapshot_date=DATE))
    def portal() -> Iterator[dict]:
        sample = client.fetch("invoice/sample")
        currency = (sample.get("currency") or {}).get("abbreviation") if isinstance(sample, dict) else None
        if not currency:
            raise fail("invoice/sample has no currency.abbreviation (the portal default currency).",
                       "check that the API user is a CRM administrator; nothing from this run was loaded.")
        yield {"default_currency": currency, "language": sample.get("language"), **snapshot}

    @dlt.resource(name="currency_rates", write_disposition="merge", primary_key=("id", "snapshot_date"),
                  columns=_columns(rate=RATE, snapshot_date=DATE))
    def currency_rates() -> Iterator[list[dict]]:
        rows = client.fetch("currency/rates")
        if rows:
            yield [{"id": r["id"], "from_currency": r.get("fromCurrency"), "to_currency": r.get("toCurrency"),
                    "rate": money(r.get("rate")), **snapshot} for r in rows]

    return (invoices, invoices | invoice_lines, taxes, invoice_items, portal, currency_rates)
