"""ONLYOFFICE wire plumbing: exact JSON bodies, what to retry, the cloud's rate limit, errors users can act on."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any

import requests as _requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from ..common import MalformedBody, SourceError, is_malformed, reason, response_json
from .settings import API_PREFIX, ENV, SOURCE_NAME

log = logging.getLogger(__name__)

# Retried by dlt's session as failures. 429 and 503 are retried there too when they carry no Retry-After
# (should_retry); with one, the portal is throttling and RateLimitGate waits as long as it asks.
RETRY_STATUSES = (502, 504)
THROTTLE_STATUSES = (429, 503)
PACE_MARGIN = 1.02  # the paced window is 2 % longer than the portal's: 10.2 s for its 10 s
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is waited in steps, each one counted
NOTHING_LOADED = "the run loaded nothing and the next run starts from the same state"


def fail(cause: str, fix: str) -> SourceError:
    return SourceError(SOURCE_NAME, cause, fix)


def what_of(url: str) -> str:
    """``crm/invoice/filter`` for error messages: the API path without host, prefix and query."""
    path = _requests.utils.urlparse(url).path
    return path.split(API_PREFIX, 1)[-1]


# ---- bodies ------------------------------------------------------------------------------------------------
def envelope_error(resp) -> str | None:
    """``error.message`` of the portal's ``{status: 1, error: {...}}`` envelope, or None when it is not one."""
    try:
        body = response_json(resp)
    except MalformedBody:
        return None
    if isinstance(body, dict) and body.get("status") == 1 and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or "")
    return None


# ---- parallel calls ------------------------------------------------------------------------------------------
def in_parallel(call: Callable[[Any], Any], items: Sequence, workers: int) -> list:
    """``[call(item) for item in items]`` on up to ``workers`` threads, each taking the next item: one task
    per thread, not a future per item (those cost ~0.05 ms of the ~0.4 ms a detail call costs the client).
    The first error stops every thread before its next item (the items not taken yet are dropped) and is
    raised once all have stopped."""
    results: list = [None] * len(items)
    queue = iter(enumerate(items))
    lock, stop = threading.Lock(), threading.Event()

    def work() -> None:
        while not stop.is_set():
            with lock:
                taken = next(queue, None)
            if taken is None:
                return
            try:
                results[taken[0]] = call(taken[1])
            except BaseException:
                stop.set()
                raise

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        tasks = [pool.submit(work) for _ in range(min(max(1, workers), len(items)))]
    for task in tasks:
        task.result()
    return results


# ---- retries -----------------------------------------------------------------------------------------------
def retry_after(resp) -> float | None:
    """Seconds a throttled answer (429/503 with ``Retry-After``) asks to wait; None when it is not one."""
    if resp is None or resp.status_code not in THROTTLE_STATUSES:
        return None
    header = (resp.headers.get("Retry-After") or "").strip()
    if not header:
        return None
    if header.isdigit():
        seconds = int(header)
    else:
        try:
            seconds = parsedate_to_datetime(header).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def should_retry(resp, exc) -> bool:
    """Beyond 502/504 and connection errors (dlt's defaults): 429/503 without ``Retry-After``, a 500 that is
    not the portal's own error envelope (a proxy's page), and a 200 whose body is not complete JSON. A 500
    *with* an envelope is an exception the portal reported (a wrong password, a bug): the same request fails
    the same way again, and on the login endpoint every retry counts towards the brute-force lock."""
    if resp is None:
        return False
    status = resp.status_code
    if status in THROTTLE_STATUSES:
        return retry_after(resp) is None
    if status == 500:
        return envelope_error(resp) is None
    return status == 200 and bool(resp.content.strip()) and is_malformed(resp)


class RateLimitGate:
    """The cloud allows 500 requests per 10 s per IP and account and answers 503 with ``Retry-After`` above.
    A throttled answer is not a failure: the request waits as long as the portal asks and goes again, without
    using up the attempts meant for failures. Every thread waits, not only the one that was told: the others
    would only prolong the storm.

    From the first throttled answer on, the gate also paces every thread to the window itself (a sliding
    window of the last ``limit`` send times, shared by all threads): a request goes out only when fewer than
    ``limit`` went out in the last ``window`` seconds, so the portal is not run into again and no request
    waits a whole rounded-up ``Retry-After``. Not before: a self-hosted portal has no such limit, and pacing
    it would cap every load at 50 requests a second. The window is kept a little longer than the portal's
    (``PACE_MARGIN``): a request reaches the portal some milliseconds after it was sent, and not every one
    equally late. ``limit`` 0 turns pacing off (only ``Retry-After`` is then waited out)."""

    def __init__(self, max_waits: int, limit: int = 500, window: float = 10.0):
        self.max_waits = max(0, max_waits)
        self.waits = 0
        self.limit, self.window = max(0, limit), window * PACE_MARGIN
        self.pacing = False
        # send times, oldest first; room beyond the limit for requests in flight, whose time is taken out
        # again when the portal refuses them
        self._sent: deque[float] = deque(maxlen=self.limit + 64)
        self._resume_at = 0.0
        self._lock = threading.Lock()

    def send(self, attempt: Callable[[], Any]) -> Any:
        for n in range(self.max_waits + 1):
            sent_at = self._wait_turn()
            resp = attempt()
            delay = retry_after(resp)
            if delay is None or n == self.max_waits:
                return resp  # a response still throttled after max_waits is reported by response_of
            with self._lock:
                self.waits += 1
                self.pacing = self.limit > 0
                try:
                    self._sent.remove(sent_at)  # the portal does not count a refused request
                except ValueError:
                    pass
                resume_at = time.monotonic() + delay
                if resume_at > self._resume_at:
                    if self._resume_at < time.monotonic():  # say it once per pause, not once per thread
                        log.warning("ONLYOFFICE: the portal is rate-limiting (HTTP %s); waiting %.0f s as its "
                                    "Retry-After asks", resp.status_code, delay)
                    self._resume_at = resume_at
        raise AssertionError("unreachable")

    def _wait_turn(self) -> float:
        """Block until this request may go; returns the send time it was counted under."""
        while True:
            with self._lock:
                now = time.monotonic()
                pause = self._resume_at - now
                sent = self._sent
                while sent and sent[0] <= now - self.window:
                    sent.popleft()  # out of the window
                if pause <= 0 and self.pacing and len(sent) >= self.limit:
                    pause = sent[-self.limit] + self.window - now  # until the limit-th latest leaves
                if pause <= 0:
                    sent.append(now)
                    return now
            time.sleep(pause)


class Transport:
    """Every request, the login included: dlt's retrying session (one per thread), the rate-limit gate, and
    transport errors turned into messages that say what happened and what to change."""

    def __init__(self, retrying, gate: RateLimitGate, timeout: float, max_attempts: int):
        self.retrying, self.gate = retrying, gate
        self.timeout, self.max_attempts = timeout, max_attempts

    @property
    def session(self):
        return self.retrying.session

    def send(self, attempt: Callable[[], Any], url: str) -> Any:
        try:
            return self.gate.send(attempt)
        except _requests.RequestException as exc:
            raise self.failure(exc, url) from None

    def failure(self, exc: _requests.RequestException, url: str) -> SourceError:
        cause = exc.args[0] if exc.args else None
        cause = getattr(cause, "reason", None) or cause  # urllib3's MaxRetryError wraps the cause
        tried = f"{self.max_attempts} attempt{'s' if self.max_attempts != 1 else ''}"
        if isinstance(exc, _requests.ConnectTimeout) or not (
                isinstance(exc, (_requests.Timeout, _requests.exceptions.ChunkedEncodingError))
                or isinstance(cause, (ReadTimeoutError, ProtocolError))):
            return fail(f"cannot reach the portal at {url} ({type(exc).__name__}: {reason(exc)}).",
                        f"check {ENV}BASE_URL and that the portal is up; {NOTHING_LOADED}.")
        if isinstance(exc, _requests.Timeout) or isinstance(cause, ReadTimeoutError):
            return fail(f"{what_of(url)} did not answer within {self.timeout:g} s ({tried}).",
                        f"raise {ENV}REQUEST_TIMEOUT if the portal is only slow, or retry later; {NOTHING_LOADED}.")
        return fail(f"the connection broke while {what_of(url)} was being read ({tried}; "
                    f"{type(exc).__name__}: {reason(exc)}).",
                    f"the portal or a proxy in front of it drops connections; retry later ({NOTHING_LOADED}).")


def response_of(resp, what: str, max_attempts: int) -> Any:
    """``response`` of a successful envelope, or a SourceError that says what to do (401 and the 404 of a
    single object are the caller's: only it knows what they mean there)."""
    status = resp.status_code
    message = envelope_error(resp)
    if status in (402, 403):
        raise fail(f"{what} answered HTTP {status} ({message or resp.reason}).",
                   "the API user must be a CRM administrator with access to the CRM module, on a paid portal "
                   f"({ENV}USERNAME / {ENV}TOKEN).")
    wait = retry_after(resp)
    if wait is not None:
        raise fail(f"{what} was still rate-limited (HTTP {status}, Retry-After {wait:g} s) after waiting "
                   "as often as allowed.",
                   f"lower {ENV}DETAIL_WORKERS, raise {ENV}RATE_LIMIT_WAITS, or run when the portal is less "
                   "busy; nothing from this run was loaded.")
    if message is not None or status >= 400:
        retried = f" after {max_attempts} attempts" if status in (*RETRY_STATUSES, *THROTTLE_STATUSES, 500) else ""
        raise fail(f"{what} failed with HTTP {status}{retried}: {message or resp.reason}.",
                   "retry later; if it persists, check the portal's logs. Nothing from this run was loaded.")
    try:
        body = response_json(resp)
    except MalformedBody as exc:
        retried = f" on all {max_attempts} attempts" if status == 200 and resp.content.strip() else ""
        raise fail(f"{what} returned a malformed page (HTTP {status}, {exc}){retried}.",
                   "this is a server-side error; retry later. Nothing from this run was loaded.") from None
    if not isinstance(body, dict) or body.get("status") != 0 or "response" not in body:
        keys = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise fail(f"{what} returned an unexpected envelope (keys {keys}).",
                   f"check that {ENV}BASE_URL is the portal's root URL (the API lives at <base_url>/api/2.0/).")
    return body["response"]
