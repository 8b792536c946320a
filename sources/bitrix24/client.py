"""Bitrix24 REST plumbing: the client-side leaky bucket, calls with Bitrix24's error semantics, ``batch``,
and the two list strategies (id windows chained inside a batch; per-invoice calls packed 50 to a batch)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import quote

import requests as _requests
from requests.adapters import HTTPAdapter

from ..common import (
    MalformedBody,
    SourceError,
    is_malformed,
    make_session,
    redact,
    redact_webhooks,
    response_json,
)
from .settings import (
    AUTH_ERRORS,
    ENV,
    MAX_BATCH,
    OPERATION_LIMIT_ERRORS,
    PAGE_SIZE,
    RATE_LIMIT_ERRORS,
    SOURCE_NAME,
)


class MethodUnavailable(SourceError):
    """``ERROR_METHOD_NOT_FOUND``: the portal does not offer the method (newer portals switch the legacy
    invoices off). Callers reading optional families catch it; anywhere else it is a plain SourceError."""


class LeakyBucket:
    """The portal's own model (each request adds 1, the level drains at ``rate`` per second, above ``burst``
    the portal answers 503), kept on the client so a normal run never reaches the server's limit."""

    def __init__(self, rate: float, burst: int):
        # Headroom of ~5 % (at least one request): the portal measures at arrival, we at departure, and
        # network jitter can bunch requests closer together than we sent them.
        self.rate, self.burst = rate, max(1.0, burst - max(1.0, burst * 0.05))
        self.level, self.stamp = 0.0, time.monotonic()
        self.waited = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
            self.stamp = now
            wait = (self.level + 1 - self.burst) / self.rate if self.level + 1 > self.burst else 0.0
            self.level += 1
        if wait > 0:
            self.waited += wait
            time.sleep(wait)

    def fill(self) -> None:
        """The server says its bucket is full (another app shares it): wait as if ours were."""
        with self._lock:
            self.level, self.stamp = self.burst, time.monotonic()


class _ThrottledAdapter(HTTPAdapter):
    """Every HTTP attempt, retries by dlt's client included, passes the bucket."""

    def __init__(self, bucket: LeakyBucket, **kwargs):
        super().__init__(**kwargs)
        self.bucket = bucket

    def send(self, request, *args, **kwargs):
        self.bucket.acquire()
        response = super().send(request, *args, **kwargs)
        if response.status_code == 503:
            self.bucket.fill()
        return response


@dataclass
class BatchResult:
    result: dict = field(default_factory=dict)
    next: dict = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)  # keys of optional methods the portal does not offer
    errors: dict[str, object] = field(default_factory=dict)  # tolerated keys' errors, as the portal sent them
    total: dict = field(default_factory=dict)  # result_total: rows behind paged commands (start >= 0)


REF = re.compile(r"(\$result\[[^\]]+\](?:\[[^\]]*\])*)")


def php_query(params: dict, prefix: str = "") -> list[str]:
    """``{"filter": {">id": 5}}`` as ``filter[>id]=5``: how a batch command carries nested params. Batch
    references (``$result[...]``) stay unencoded: the portal substitutes them in the raw command string."""
    out: list[str] = []
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list, tuple)):
            out += php_query(value if not isinstance(value, tuple) else list(value), name)
        else:
            text = "" if value is None else str(value)
            # the portal substitutes references in the raw command string, before decoding it
            encoded = "".join(part if n % 2 else quote(part, safe="") for n, part in enumerate(REF.split(text)))
            out.append(f"{quote(name, safe='[]')}={encoded}")
    return out


def _describe(err: object) -> str:
    return str(err.get("error_description", "")) if isinstance(err, dict) else ""


def error_code(err: object) -> object:
    return err.get("error") if isinstance(err, dict) else err


def _as_map(value: object) -> dict:
    """Empty maps arrive as ``[]`` (PHP's json_encode)."""
    return value if isinstance(value, dict) else {}


class Bitrix24Client:
    def __init__(self, auth, *, requests_per_second: float, burst: int, timeout: float, max_attempts: int,
                 backoff_factor: float, rate_limit_retries: int = 30, max_operation_wait: float = 660):
        self.auth = auth
        self.bucket = LeakyBucket(requests_per_second, burst)
        # 503 (rate limit) and 429 (operation limit) are left to this client, not dlt's retry: both need their
        # own waits (the bucket's drain, the method's reset time) and must not use up the attempts meant for
        # real server failures. A PHP error page or a cut-off body with HTTP 200 is retried like a 5xx.
        http = make_session(
            timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor,
            status_codes=(500, 502, 504),
            retry_condition=lambda resp, exc: resp is not None and resp.status_code == 200 and is_malformed(resp))
        # dlt's Client wraps its session's send() with the retry; mounting the throttled adapter on that
        # session (public requests API) puts every attempt, retries included, through the bucket. The session
        # is kept: dlt's Client hands each thread a new one, which would not carry the mount.
        self.session = http.session
        throttled = _ThrottledAdapter(self.bucket, pool_maxsize=4)
        self.session.mount("http://", throttled)
        self.session.mount("https://", throttled)
        self.rate_limit_retries, self.max_operation_wait = rate_limit_retries, max_operation_wait
        self.timeout, self.max_attempts = timeout, max(1, max_attempts)
        self.requests_made = 0
        self.rate_limited = 0  # 503 QUERY_LIMIT_EXCEEDED answers seen
        self.operation_waits = 0
        self.operating_reset_at: float | None = None

    # ---- one call --------------------------------------------------------------------------------------
    def fail(self, cause: str, fix: str) -> SourceError:
        return SourceError(SOURCE_NAME, redact(redact_webhooks(cause), self.auth.secrets), fix)

    def call(self, method: str, params: dict | None = None) -> dict:
        params = params or {}
        rate_limited = refreshed = 0
        while True:
            failure = None
            try:
                signed = self.auth.sign(params)
                self.requests_made += 1
                resp = self.session.post(self.auth.url_for(method), data=json.dumps(signed),
                                      headers={"Content-Type": "application/json", "Accept": "application/json",
                                               "User-Agent": "crm-invoices"})
            except _requests.RequestException as exc:
                # built outside the except block: the exception (its message holds the URL) must not ride
                # along as __context__ into dlt's trace
                failure = self._transport_failure(method, exc)
            if failure is not None:
                raise self.fail(*failure)
            if resp.status_code == 503:  # QUERY_LIMIT_EXCEEDED, or a proxy's page for an overloaded portal
                body = {"error": "QUERY_LIMIT_EXCEEDED"}
            else:
                body = self._parse(method, resp)
            if isinstance(body, dict) and isinstance(body.get("time"), dict):
                reset = body["time"].get("operating_reset_at")
                if reset:
                    # a unix time in seconds (Decimal from the exact parser): seconds, not money
                    self.operating_reset_at = int(Decimal(str(reset)))
            if resp.status_code == 200 and isinstance(body, dict) and "error" not in body:
                return body
            code = body.get("error") if isinstance(body, dict) else None
            text = str(body.get("error_description", "")) if isinstance(body, dict) else ""
            if code in RATE_LIMIT_ERRORS or resp.status_code == 503:
                self.rate_limited += 1
                rate_limited += 1
                if rate_limited <= self.rate_limit_retries:
                    continue  # the adapter filled the bucket: the next attempt waits for it to drain
                raise self.fail(f"{method}: the portal kept answering 503 {code or ''} (too many requests) "
                                 f"after {self.rate_limit_retries} waits.",
                                 f"another application shares this portal's request limit; run later or lower "
                                 f"{ENV}REQUESTS_PER_SECOND.")
            if code == "expired_token" and not refreshed:
                refreshed = 1
                self.auth.refresh()
                continue
            if code in OPERATION_LIMIT_ERRORS or resp.status_code == 429:
                self._wait_operation_limit(method)
                continue
            if code == "ERROR_METHOD_NOT_FOUND":
                raise MethodUnavailable(SOURCE_NAME, f"the portal does not offer {method} ({text}).",
                                        "check the portal's plan and modules; report it if the method should exist.")
            if code in AUTH_ERRORS or code == "expired_token" or resp.status_code in (401, 403):
                raise self.fail(f"the portal rejected the credentials ({code}: {text}).",
                                 self.auth.fix_for_rejection())
            raise self.fail(f"{method} failed with HTTP {resp.status_code} {code!r}: {text}.",
                             "check the request; if it persists this is a bug, please report it. Nothing from "
                             "this run was loaded.")

    def _transport_failure(self, method: str, exc: Exception) -> tuple[str, str]:
        """What a user reads when every attempt failed below HTTP: no answer in time, a body cut off by a
        reset connection, or no connection at all."""
        kind, timeout = type(exc).__name__, self.timeout
        after = f"after {self.max_attempts} attempts"
        if isinstance(exc, _requests.Timeout):
            return (f"{method}: the portal at {self.auth.describe(method)} did not answer within {timeout:g} s "
                    f"{after} ({kind}).",
                    f"retry later; if the portal is just slow, raise {ENV}REQUEST_TIMEOUT. Nothing from this run "
                    "was loaded and the next run starts from the same state.")
        if isinstance(exc, _requests.exceptions.ChunkedEncodingError):
            return (f"{method}: the portal at {self.auth.describe(method)} broke off its answers mid-body "
                    f"{after} ({kind}).",
                    "retry later (a proxy or the network resets connections). Nothing from this run was loaded "
                    "and the next run starts from the same state.")
        return (f"cannot reach the portal at {self.auth.describe(method)} ({kind}).",
                f"check {ENV}WEBHOOK_URL (or {ENV}PORTAL_URL) and that the portal is up; nothing "
                "from this run was loaded and the next run starts from the same state.")

    def _parse(self, method: str, resp) -> object:
        try:
            return response_json(resp)
        except MalformedBody as exc:
            if resp.status_code >= 500:
                raise self.fail(f"{method} answered HTTP {resp.status_code} after retries.",
                                "the portal is failing; retry later. Nothing from this run was loaded.") from None
            raise self.fail(f"{method} returned a malformed page (HTTP {resp.status_code}, {exc}).",
                            "a proxy or the portal returned an error page; retry later. Nothing from this run "
                            "was loaded.") from None

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
            errors = _as_map(errors)
            codes = {k: error_code(e) for k, e in errors.items()}
            if "expired_token" in codes.values() and not refreshed and self.auth.refresh():
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
                                            f"({_describe(err)}).", "check the portal's plan and modules.")
                raise self.command_failure(key, method, err, len(errors), len(commands))
            return BatchResult(_as_map(inner.get("result")), _as_map(inner.get("result_next")), unavailable,
                               judged, _as_map(inner.get("result_total")))
        raise self.fail("batch commands kept hitting the portal's limits.", "run later.")

    def command_failure(self, key: str, method: str, err: object, failed: int = 1, total: int = 1) -> SourceError:
        code, text = error_code(err), _describe(err)
        if code in AUTH_ERRORS or code == "expired_token":
            return self.fail(f"the portal refused {method} inside a batch ({code}: {text}).",
                             self.auth.fix_for_rejection())
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

    def pump(self, pending: deque[Command], missing_ok: frozenset[str] = frozenset()
             ) -> Iterator[tuple[Command, object, int | None]]:
        """The batch engine: sends the queued commands 50 to a batch, whatever their methods, and yields
        ``(command, result, next)`` for each. The consumer may queue more while iterating (the next page of a
        paged command). Commands whose item vanished (``missing_ok``) yield ``None``."""
        while pending:
            take = [pending.popleft() for _ in range(min(MAX_BATCH, len(pending)))]
            res = self.batch({f"c{n}": (c.method, c.params) for n, c in enumerate(take)}, missing_ok=missing_ok)
            for n, command in enumerate(take):
                nxt = res.next.get(f"c{n}")
                yield command, res.result.get(f"c{n}"), int(nxt) if nxt else None

    def per_item(self, method: str, make_params: Callable[[int], dict], ids: list[int],
                 chunk: int = MAX_BATCH, missing_ok: frozenset[str] = frozenset()) -> Iterator[tuple[int, object]]:
        """One call per item (``crm.item.payment.list``, ``crm.invoice.get``), packed 50 to a batch.
        Items that vanished in between (an error code in ``missing_ok``) are skipped: the id sweep marks them."""
        pending = deque(Command(method, make_params(i), i) for i in ids)
        for command, result, _next in self.pump(pending, missing_ok):
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


@dataclass
class Command:
    """One command of a batch; ``tag`` is the caller's (the invoice id, the params to page on)."""

    method: str
    params: dict
    tag: object = None


def page_rows(command: Command, page: object, wrapper: str, fail) -> list[dict]:
    rows = page.get(wrapper) if isinstance(page, dict) else None
    if not isinstance(rows, list):
        raise fail(f"{command.method} page has no result.{wrapper} list.", "retry later.")
    return rows


class IdExport:
    """One list read by id windows (see :meth:`Bitrix24Client.list_by_id`), in pieces that can share a batch
    with other commands: :meth:`commands` gives the next ``size`` chained pages under a key prefix,
    :meth:`take` checks and returns what they read and remembers where the list goes on."""

    def __init__(self, method: str, params: dict, id_field: str, wrapper: str | None, last_id: int = 0):
        self.method, self.params, self.id_field, self.wrapper = method, params, id_field, wrapper
        self.last_id, self.done = last_id, False
        self.base_filter = dict(params.get("filter") or {})

    def commands(self, prefix: str, size: int) -> dict[str, tuple[str, dict]]:
        path = f"[{self.wrapper}]" if self.wrapper else ""
        cmds = {}
        for i in range(size):
            bound = self.last_id if i == 0 else f"$result[{prefix}{i - 1}]{path}[{PAGE_SIZE - 1}][{self.id_field}]"
            cmds[f"{prefix}{i}"] = (self.method, {**self.params, "order": {self.id_field: "ASC"},
                                                  "filter": {**self.base_filter, f">{self.id_field}": bound},
                                                  "start": -1})
        return cmds

    def take(self, res: BatchResult, prefix: str, size: int, fail) -> list[list[dict]]:
        pages = []
        for i in range(size):
            page = res.result.get(f"{prefix}{i}")
            rows = page.get(self.wrapper) if self.wrapper and isinstance(page, dict) else page
            if not isinstance(rows, list):
                raise fail(f"{self.method} page has no {'result.' + self.wrapper if self.wrapper else 'result'} "
                           f"list (got {type(page).__name__}).",
                           "check that the URL points at a Bitrix24 portal's REST API.")
            if len(rows) > PAGE_SIZE:
                raise fail(f"{self.method} returned {len(rows)} rows on one page; pages hold {PAGE_SIZE}.",
                           "report it: the id export relies on the page size.")
            ids = [int(r[self.id_field]) for r in rows]
            if ids and (ids[0] <= self.last_id or ids != sorted(set(ids))):
                raise fail(f"{self.method} returned ids out of order (after id {self.last_id}).",
                           "report it: the id export relies on order by id ascending.")
            if rows:
                pages.append(rows)
            if len(rows) < PAGE_SIZE:
                self.done = True
                break
            self.last_id = ids[-1]
        return pages
