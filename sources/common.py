"""What every CRM source shares: the error users see, exact money parsing, secret redaction, HTTP sessions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation

from dlt.sources.helpers import requests as dlt_requests


class SourceError(Exception):
    """A failure a user can act on: which source, what went wrong, and what to change.

    The CLI prints ``str(error)`` as is, so the message must never contain a secret.
    """

    def __init__(self, source: str, cause: str, fix: str, *, retryable: bool = False):
        self.source, self.cause, self.fix, self.retryable = source, cause, fix, retryable
        super().__init__(f"{source}: {cause} Fix: {fix}")


def causes(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during (``__cause__``, else ``__context__``), once each:
    what a user must be told is often a few links down a dlt ``PipelineStepFailed``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def loads_exact(content: bytes | str) -> object:
    """JSON with every non-integer number as ``Decimal``: money never passes through a float."""
    return json.loads(content, parse_float=Decimal)


def money(value: object) -> Decimal | None:
    """A wire amount (JSON int, Decimal from :func:`loads_exact`, or numeric string) as an exact Decimal."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError(f"not an amount: {value!r}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        text = value.replace("\u00a0", "").replace(" ", "").replace(",", ".")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
    raise TypeError(f"amounts must arrive as JSON numbers parsed exactly or strings, got {type(value).__name__}")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each secret (and of its URL-encoded form) with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
            text = text.replace(re.sub(r"[^A-Za-z0-9_.~-]", lambda m: f"%{ord(m.group()):02X}", secret), "***")
    return text


def looks_like_json_object(response) -> bool:
    """Cheap check that a body is a complete JSON object: catches HTML error pages and cut-off bodies
    without parsing megabytes twice."""
    body = response.content.strip()
    return body.startswith(b"{") and body.endswith(b"}")


def make_session(
    *,
    timeout: float,
    max_attempts: int,
    backoff_factor: float,
    retry_condition: Callable | None = None,
    status_codes: tuple[int, ...] = (429, 500, 502, 503, 504),
) -> dlt_requests.Client:
    """dlt's retrying requests client: connection errors, timeouts and the given statuses are retried with
    exponential backoff (and ``Retry-After`` honoured); ``retry_condition`` adds body-level checks."""
    return dlt_requests.Client(
        request_timeout=timeout,
        raise_for_status=False,
        status_codes=status_codes,
        request_max_attempts=max(1, max_attempts),
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=60,
        retry_condition=retry_condition,
    )


def deletion_marks(key: str, previously: set[int], deleted: set[int], seen: set[int], live: set[int],
                   at: object) -> tuple[list[dict], set[int]]:
    """Deletes of a source that only offers full snapshots: ids loaded before (``previously``) or seen earlier
    in this run (``seen``) that the final, complete snapshot (``live``) lacks are marked deleted; ids marked
    before that are back are marked live again. Returns the marks and the ids now deleted (for the state)."""
    vanished = (previously | deleted | seen) - live
    marks = [{key: i, "is_deleted": True, "deleted_at": at} for i in sorted(vanished - deleted)]
    marks += [{key: i, "is_deleted": False, "deleted_at": None} for i in sorted(deleted & live)]
    return marks, vanished
