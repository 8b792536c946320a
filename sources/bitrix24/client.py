"""Bitrix24 REST calls on dlt's RESTClient: Bitrix24's error semantics, its limits waited out, ``batch``, and
the list strategies (id windows chained inside a batch; per-invoice calls packed 50 to a batch; ``start`` /
``next`` paging of a single method)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from itertools import islice
from urllib.parse import urlsplit

import requests as _requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator

from ..common import (
    MalformedBody,
    SourceError,
    is_malformed,
    make_session,
    redact,
    redact_webhooks,
    response_json,
)
from .commands import BatchResult, Command, IdExport, as_map, describe_error, error_code, page_rows, php_query
from .limits import LeakyBucket, ThrottledAdapter
from .settings import (
    AUTH_ERRORS,
    ENV,
    MAX_BATCH,
    OPERATION_LIMIT_ERRORS,
    RATE_LIMIT_ERRORS,
    SOURCE_NAME,
)

__all__ = ["Bitrix24Client", "LeakyBucket", "MethodUnavailable", "StartNextPaginator", "php_query"]


class _RedactWebhooks(logging.Filter):
    """dlt logs every request's URL (at INFO); a webhook's URL holds its secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_webhooks(record.msg)
        return True


logging.getLogger("dlt").addFilter(_RedactWebhooks())


class MethodUnavailable(SourceError):
    """``ERROR_METHOD_NOT_FOUND``: the portal does not offer the method (newer portals switch the legacy
    invoices off). Callers reading optional families catch it; anywhere else it is a plain SourceError."""


def method_of(url: str) -> str:
    """``crm.item.list`` of ``https://portal/rest/1/SECRET/crm.item.list``: the last segment of the path."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


class StartNextPaginator(BasePaginator):
    """Offset paging of one method: the answer's ``next`` is the ``start`` of the following page (params in the
    JSON body); an answer without ``next`` is the last page. Batch commands page themselves (``result_next``)."""

    def __init__(self, start: int = 0):
        super().__init__()
        self.start: int | None = start

    def init_request(self, request) -> None:
        request.json = {**(request.json or {}), "start": self.start}

    def update_state(self, response, data=None) -> None:
        body = response_json(response)
        nxt = body.get("next") if isinstance(body, dict) else None
        self.start = int(nxt) if nxt else None
        self._has_next_page = self.start is not None  # BasePaginator's documented contract for subclasses

    def update_request(self, request) -> None:
        request.json = {**(request.json or {}), "start": self.start}


class PortalSession(_requests.Session):
    """The session RESTClient sends through. Each request goes out on dlt's retrying session (transport errors,
    5xx and malformed 200s retried there), every attempt behind the leaky bucket; the portal's own limits are
    waited out here and an expired access token refreshed, with the *same* request sent again, which neither
    response hooks nor paginators can do."""

    def __init__(self, client: Bitrix24Client, retrying: _requests.Session):
        super().__init__()
        self.client, self.retrying = client, retrying

    def send(self, request, **kwargs):  # type: ignore[override]
        return self.client.send_within_limits(self.retrying, request, **kwargs)


class Bitrix24Client(RESTClient):
    """dlt's RESTClient with Bitrix24's rules: exact decimals, error envelopes turned into SourceErrors that say
    what to change, 503/429 limits waited out without using up the attempts meant for failures."""

    def __init__(self, access, *, requests_per_second: float, burst: int, timeout: float, max_attempts: int,
                 backoff_factor: float, rate_limit_retries: int = 30, max_operation_wait: float = 660):
        self.access = access  # WebhookAuth or Bitrix24OAuth: where to send, what to redact, what to fix
        self.bucket = LeakyBucket(requests_per_second, burst)
        # 503 (rate limit) and 429 (operation limit) are left to this client, not dlt's retry: both need their
        # own waits (the bucket's drain, the method's reset time) and must not use up the attempts meant for
        # real server failures. A PHP error page or a cut-off body with HTTP 200 is retried like a 5xx.
        retrying = make_session(
            timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor,
            status_codes=(500, 502, 504),
            retry_condition=lambda resp, exc: resp is not None and resp.status_code == 200 and is_malformed(resp))
        # dlt's Client wraps its session's send() with the retry; mounting the throttled adapter on that session
        # (the public requests API) puts every attempt, retries included, through the bucket. The session is
        # kept: dlt's Client hands each thread a new one, which would not carry the mount.
        session = retrying.session
        throttled = ThrottledAdapter(self.bucket, pool_maxsize=4)
        session.mount("http://", throttled)
        session.mount("https://", throttled)
        super().__init__(base_url=access.base_url, auth=access.request_auth,
                         headers={"Accept": "application/json", "User-Agent": "crm-invoices"},
                         session=PortalSession(self, session))
        self.rate_limit_retries, self.max_operation_wait = rate_limit_retries, max_operation_wait
        self.timeout, self.max_attempts = timeout, max(1, max_attempts)
        self.requests_made = 0
        self.rate_limited = 0  # 503 QUERY_LIMIT_EXCEEDED answers seen
        self.operation_waits = 0
        self.operating_reset_at: float | None = None

    # ---- one call --------------------------------------------------------------------------------------
    def fail(self, cause: str, fix: str) -> SourceError:
        return SourceError(SOURCE_NAME, redact(redact_webhooks(cause), self.access.secrets), fix)

    def call(self, method: str, params: dict | None = None) -> dict:
        return self.checked(method, self.post(method, json=params or {}))

    def pages(self, method: str, params: dict, start: int = 0) -> Iterator[list]:
        """Every page of one method paged by ``start`` / ``next`` (``result`` of each answer)."""
        for page in self.paginate(method, method="POST", json=params, paginator=StartNextPaginator(start),
                                  hooks={"response": []}):
            yield list(page)

    def extract_response(self, response, data_selector):
        body = self.checked(method_of(response.request.url), response)
        result = body.get("result")
        return result if isinstance(result, list) else []

    def send_within_limits(self, retrying: _requests.Session, request, **kwargs):
        """One request through dlt's retrying session, sent again while the portal's limits say "wait"
        (503 QUERY_LIMIT_EXCEEDED, 429 OPERATION_TIME_LIMIT) and once after a refreshed access token."""
        method = method_of(request.url)
        rate_limited = refreshed = 0
        while True:
            failure = None
            self.requests_made += 1
            try:
                resp = retrying.send(request, **kwargs)
            except _requests.RequestException as exc:
                # built outside the except block: the exception (its message holds the URL) must not ride
                # along as __context__ into dlt's trace
                failure = self._transport_failure(method, exc)
            if failure is not None:
                raise self.fail(*failure)
            body = self._body(resp)
            if isinstance(body, dict) and isinstance(body.get("time"), dict):
                reset = body["time"].get("operating_reset_at")
                if reset:
                    # a unix time in seconds (Decimal from the exact parser): seconds, not money
                    self.operating_reset_at = int(Decimal(str(reset)))
            code = body.get("error") if isinstance(body, dict) else None
            if code in RATE_LIMIT_ERRORS or resp.status_code == 503:
                self.rate_limited += 1
                rate_limited += 1
                if rate_limited <= self.rate_limit_retries:
                    continue  # the adapter filled the bucket: the next attempt waits for it to drain
                raise self.fail(f"{method}: the portal kept answering 503 {code or ''} (too many requests) "
                                f"after {self.rate_limit_retries} waits.",
                                f"another application shares this portal's request limit; run later or lower "
                                f"{ENV}REQUESTS_PER_SECOND.")
            if code == "expired_token" and not refreshed and self.access.refresh():
                refreshed = 1
                self.access(request)  # the same request, signed with the new token
                continue
            if code in OPERATION_LIMIT_ERRORS or resp.status_code == 429:
                self._wait_operation_limit(method)
                continue
            return resp

    @staticmethod
    def _body(resp) -> object:
        if resp.status_code == 503:  # QUERY_LIMIT_EXCEEDED, or a proxy's page for an overloaded portal
            return {"error": "QUERY_LIMIT_EXCEEDED"}
        try:
            return response_json(resp)
        except MalformedBody:
            return None

    def checked(self, method: str, resp) -> dict:
        """The body of a successful answer, or the SourceError that says what to do."""
        try:
            body = response_json(resp)
        except MalformedBody as exc:
            if resp.status_code >= 500:
                raise self.fail(f"{method} answered HTTP {resp.status_code} after retries.",
                                "the portal is failing; retry later. Nothing from this run was loaded.") from None
            raise self.fail(f"{method} returned a malformed page (HTTP {resp.status_code}, {exc}).",
                            "a proxy or the portal returned an error page; retry later. Nothing from this run "
                            "was loaded.") from None
        if resp.status_code == 200 and isinstance(body, dict) and "error" not in body:
            return body
        code = body.get("error") if isinstance(body, dict) else None
        text = str(body.get("error_description", "")) if isinstance(body, dict) else ""
        if code == "ERROR_METHOD_NOT_FOUND":
            raise MethodUnavailable(SOURCE_NAME, f"the portal does not offer {method} ({text}).",
                                    "check the portal's plan and modules; report it if the method should exist.")
        if code in AUTH_ERRORS or code == "expired_token" or resp.status_code in (401, 403):
            raise self.fail(f"the portal rejected the credentials ({code}: {text}).",
                            self.access.fix_for_rejection())
        raise self.fail(f"{method} failed with HTTP {resp.status_code} {code!r}: {text}.",
                        "check the request; if it persists this is a bug, please report it. Nothing from "
                        "this run was loaded.")

    def _transport_failure(self, method: str, exc: Exception) -> tuple[str, str]:
        """What a user reads when every attempt failed below HTTP: no answer in time, a body cut off by a
        reset connection, or no connection at all."""
        kind, timeout = type(exc).__name__, self.timeout
        after = f"after {self.max_attempts} attempts"
        if isinstance(exc, _requests.Timeout):
            return (f"{method}: the portal at {self.access.describe(method)} did not answer within {timeout:g} s "
                    f"{after} ({kind}).",
                    f"retry later; if the portal is just slow, raise {ENV}REQUEST_TIMEOUT. Nothing from this run "
                    "was loaded and the next run starts from the same state.")
        if isinstance(exc, _requests.exceptions.ChunkedEncodingError):
            return (f"{method}: the portal at {self.access.describe(method)} broke off its answers mid-body "
                    f"{after} ({kind}).",
                    "retry later (a proxy or the network resets connections). Nothing from this run was loaded "
                    "and the next run starts from the same state.")
        return (f"cannot reach the portal at {self.access.describe(method)} ({kind}).",
                f"check {ENV}WEBHOOK_URL (or {ENV}PORTAL_URL) and that the portal is up; nothing "
                "from this run was loaded and the next run starts from the same state.")

    def _wait_operation_limit(self, method: str) -> None:
        """429 OPERATION_TIME_LIMIT blocks one method until the oldest of its ten one-minute buckets drops
        out: ``time.operating_reset_at``. Without one, the documented block is 10 minutes."""
        now = time.time()
        wait = (self.operating_reset_at - now) if self.operating_reset_at and self.operating_reset_at > now else 600
        if wait > self.max_operation_wait:
            raise self.fail(f"{method} is blocked by the portal's operation time limit for {wait:.0f} s.",
                             f"run later, or raise {ENV}MAX_OPERATION_WAIT to wait it out.")
        self.operation_waits += 1
        time.sleep(max(0.0, wait))
        self.operating_reset_at = None

    # ---- batch ------------------------------------------------------------------------------------------
    def batch(self, commands: dict[str, tuple[str, dict]], halt: bool = False,
              missing_ok: frozenset[str] = frozenset(), optional: frozenset[str] = frozenset(),
              tolerate: frozenset[str] = frozenset()) -> BatchResult:
        """Send up to 50 commands in one request. ``missing_ok``: error codes that mean "that item is gone"
        (deleted between the list and this call): the command's result is simply absent. ``optional``:
        methods the portal may not offer (``ERROR_METHOD_NOT_FOUND``): their keys land in ``unavailable``.
        ``tolerate``: keys whose errors the caller judges (``errors``); limits and auth still apply."""
        cmd = {key: f"{method}?{'&'.join(php_query(params))}" for key, (method, params) in commands.items()}
        refreshed = False
        for _attempt in range(self.rate_limit_retries + 1):
            body = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd})
            inner = body.get("result")
            if not isinstance(inner, dict):
                raise self.fail(f"batch returned no result map (got {type(inner).__name__}).", "retry later.")
            errors = inner.get("result_error")
            if errors and not isinstance(errors, dict):
                # errors as a list cannot be matched to their commands: the whole batch is unusable
                raise self.fail(f"batch returned errors that name no command: {str(errors)[:200]}.",
                                 "retry later; if it persists, report it.")
            errors = as_map(errors)
            codes = {k: error_code(e) for k, e in errors.items()}
            if "expired_token" in codes.values() and not refreshed and self.access.refresh():
                # the access token expired while the portal worked through the batch: the commands after
                # that point failed, the ones before it read data; all are reads, so the whole batch goes again
                refreshed = True
                continue
            limited = {k: e for k, e in errors.items() if codes[k] in RATE_LIMIT_ERRORS | OPERATION_LIMIT_ERRORS}
            if limited:
                if any(codes[k] in OPERATION_LIMIT_ERRORS for k in limited):
                    self._wait_operation_limit(commands[next(iter(limited))][0])
                else:
                    self.rate_limited += 1
                    self.bucket.fill()
                continue  # read-only commands: the whole batch is safe to send again
            unavailable = {k for k, code in codes.items()
                           if code == "ERROR_METHOD_NOT_FOUND" and commands.get(k, ("?",))[0] in optional}
            judged = {k: e for k, e in errors.items() if k in tolerate and codes[k] not in AUTH_ERRORS}
            errors = {k: e for k, e in errors.items()
                      if codes[k] not in missing_ok and k not in unavailable and k not in judged}
            if errors:
                key, err = next(iter(errors.items()))
                method = commands.get(key, ("?",))[0]
                if codes[key] == "ERROR_METHOD_NOT_FOUND" and len(errors) == len(commands):
                    raise MethodUnavailable(SOURCE_NAME, f"the portal does not offer {method} "
                                            f"({describe_error(err)}).", "check the portal's plan and modules.")
                raise self.command_failure(key, method, err, len(errors), len(commands))
            return BatchResult(as_map(inner.get("result")), as_map(inner.get("result_next")), unavailable,
                               judged, as_map(inner.get("result_total")))
        raise self.fail("batch commands kept hitting the portal's limits.", "run later.")

    def command_failure(self, key: str, method: str, err: object, failed: int = 1, total: int = 1) -> SourceError:
        code, text = error_code(err), describe_error(err)
        if code in AUTH_ERRORS or code == "expired_token":
            return self.fail(f"the portal refused {method} inside a batch ({code}: {text}).",
                             self.access.fix_for_rejection())
        return self.fail(f"batch command {key} ({method}) failed with {code!r}: {text} "
                         f"({failed} of {total} commands failed).",
                         "check the webhook's/app's scopes (crm) and the portal's settings; nothing from "
                         "this run was loaded.")

    # ---- list strategies ----------------------------------------------------------------------------------
    def list_by_id(self, method: str, params: dict, id_field: str, wrapper: str | None, last_id: int = 0,
                   chain: int = MAX_BATCH, first_chain: int | None = None) -> Iterator[list[dict]]:
        """Export by id: ``order id ASC``, ``filter >id``, ``start=-1`` (no counting). One batch carries
        ``chain`` consecutive pages, each command's lower bound referencing the previous command's last id.
        A short page ends the list; commands after it (their reference unresolved, so they read from the
        start again) are ignored: that costs the portal operating time, not requests. ``first_chain`` sizes the
        first batch smaller when few rows are expected (an incremental read)."""
        export = IdExport(method, params, id_field, wrapper, last_id)
        size = first_chain or chain
        while not export.done:
            res = self.batch(export.commands("p", size))
            yield from export.take(res, "p", size, self.fail)
            size = chain

    def pump(self, pending: deque[Command], missing_ok: frozenset[str] = frozenset(),
             more: Iterable[Command] = ()) -> Iterator[tuple[Command, object, int | None]]:
        """The batch engine: sends the queued commands 50 to a batch, whatever their methods, and yields
        ``(command, result, next)`` for each. The consumer may queue more while iterating (the next page of a
        paged command): those go first, then ``more``, taken lazily (a large portal's per-invoice commands
        are never all in memory at once). Every batch is full while commands remain. Commands whose item
        vanished (``missing_ok``) yield ``None``."""
        more = iter(more)
        while True:
            take = [pending.popleft() for _ in range(min(MAX_BATCH, len(pending)))]
            take += islice(more, MAX_BATCH - len(take))
            if not take:
                return
            res = self.batch({f"c{n}": (c.method, c.params) for n, c in enumerate(take)}, missing_ok=missing_ok)
            for n, command in enumerate(take):
                nxt = res.next.get(f"c{n}")
                yield command, res.result.get(f"c{n}"), int(nxt) if nxt else None

    def per_item(self, method: str, make_params: Callable[[int], dict], ids: list[int],
                 chunk: int = MAX_BATCH, missing_ok: frozenset[str] = frozenset()) -> Iterator[tuple[int, object]]:
        """One call per item (``crm.item.payment.list``, ``crm.invoice.get``), packed 50 to a batch.
        Items that vanished in between (an error code in ``missing_ok``) are skipped: the id sweep marks them."""
        commands = (Command(method, make_params(i), i) for i in ids)
        for command, result, _next in self.pump(deque(), missing_ok, commands):
            if result is not None:
                yield command.tag, result

    def paged_groups(self, method: str, groups: list[dict], wrapper: str) -> Iterator[list[dict]]:
        """Paged calls with different params (product rows of 20 invoices each), 50 per batch; a command
        whose ``result_next`` says there is more is queued again with ``start = next``."""
        pending = deque(Command(method, {**params, "start": 0}, params) for params in groups)
        for command, result, nxt in self.pump(pending):
            rows = page_rows(command, result, wrapper, self.fail)
            if rows:
                yield rows
            if nxt:
                pending.append(Command(method, {**command.tag, "start": nxt}, command.tag))


