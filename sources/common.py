"""What every CRM source shares: the error users see, exact money parsing and column hints, the check of a
response body, secret redaction, transport failure reasons, HTTP sessions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import is_optional_type
from dlt.sources.helpers import requests as dlt_requests

# ---- column hints ------------------------------------------------------------------------------------------
# Money in the document's own currency: up to 9,999,999,999,999,999.99, far above what a CRM can hold.
MONEY = {"data_type": "decimal", "precision": 18, "scale": 2}
QUANTITY = {"data_type": "decimal", "precision": 18, "scale": 4}
PERCENT = {"data_type": "decimal", "precision": 9, "scale": 4}
# A rate to the account's base currency, as every API sends it. 8 decimals hold each one exactly: Bitrix24's
# AMOUNT has 4 and its rate_to_base = AMOUNT / AMOUNT_CNT (a nominal of 1 to 10,000) at most 8; SalesMan's
# course has 4; ONLYOFFICE stores DECIMAL(10,2) (at most 99,999,999.99, inside the 10 integer digits). It is
# also what the dbt staging keeps (the fx_rate macro, DECIMAL(18,8)): more decimals here would be cut there,
# fewer (the 6 two sources had) would lose a Bitrix24 rate for a nominal of 100 or more. The DECIMAL(38,12)
# of the marts is the rate to the *reporting* currency, computed in dbt from these.
RATE = {"data_type": "decimal", "precision": 18, "scale": 8}


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


# one decoder for every body: ``json.loads(..., parse_float=...)`` builds a new decoder per call, which a
# load of 20,000 ONLYOFFICE detail bodies paid for 20,000 times
_EXACT = json.JSONDecoder(parse_float=Decimal)


def loads_exact(content: bytes | str) -> object:
    """JSON with every non-integer number as ``Decimal``: money never passes through a float."""
    if isinstance(content, (bytes, bytearray)):
        content = content.decode(json.detect_encoding(content), "surrogatepass")
    return _EXACT.decode(content)


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


# Bitrix24 inbound webhooks carry their secret in the path: https://portal/rest/<user>/<secret>/<method>. Also
# matched JSON-escaped (``\/rest\/1\/...``, as PHP's json_encode writes a URL back); the secret ends at the
# next slash, backslash, quote, blank, query or fragment. The one copy: the CLI's redaction imports it too.
WEBHOOK_PATH = re.compile(r"(\\?/rest\\?/\d+\\?/)[^/\\\s\"'?#]+")


def redact_webhooks(text: str) -> str:
    """Every Bitrix24 webhook secret in ``text`` replaced with ``***``, whoever's portal it is."""
    return WEBHOOK_PATH.sub(r"\1***", text)


def reason(exc: BaseException) -> str:
    """The last clause of a transport error: urllib3 messages repeat the pool and the URL (which may hold a
    secret); the class name and that clause are what a user needs."""
    return str(exc).rsplit(":", 1)[-1].strip(" )'\"") or type(exc).__name__


# ---- response bodies ---------------------------------------------------------------------------------------
class MalformedBody(ValueError):
    """The body is not one complete JSON object; ``str()`` says what it looked like (a snippet of it, or
    where the decode failed), never more than :data:`SNIPPET` characters of it."""


SNIPPET = 120  # characters of a bad body quoted in an error: enough to tell an HTML error page by its title
_DECODED = "_crm_invoices_exact_json"  # where a response keeps its decoded body (see response_json)


def looks_like_json_object(response) -> bool:
    """Cheap check that a body is a complete JSON object: catches HTML error pages and cut-off bodies
    without parsing megabytes twice."""
    body = response.content.strip()
    return body.startswith(b"{") and body.endswith(b"}")


def json_object(content: bytes) -> Any:
    """The one body check: a JSON object (cheap, by its ends: HTML pages and most cut-offs) → else a snippet
    in :class:`MalformedBody` → the exact decode (numbers as ``Decimal``) → a body cut off right after a
    ``}``, or otherwise invalid, raises :class:`MalformedBody` too."""
    body = content.strip()
    if not (body.startswith(b"{") and body.endswith(b"}")):
        snippet = content[:SNIPPET].decode("utf-8", "replace").replace("\n", " ")
        raise MalformedBody(f"not a complete JSON object: {snippet!r}")
    try:
        return loads_exact(body)
    except ValueError as exc:
        raise MalformedBody(f"cut-off or invalid JSON: {exc}") from None


def response_json(response) -> Any:
    """:func:`json_object` of a response's body, decoded once per response: a retry condition and the reader
    share the work."""
    if _DECODED not in response.__dict__:
        try:
            response.__dict__[_DECODED] = (json_object(response.content), None)
        except MalformedBody as exc:
            response.__dict__[_DECODED] = (None, exc)
    value, problem = response.__dict__[_DECODED]
    if problem is not None:
        raise MalformedBody(str(problem))
    return value


def is_malformed(response) -> bool:
    """For retry conditions: the body is not one complete JSON object (an error page, a cut-off body)."""
    try:
        response_json(response)
    except MalformedBody:
        return True
    return False


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


# ---- credentials -------------------------------------------------------------------------------------------
def resolve_credentials(source: str, kinds: Sequence[type[CredentialsConfiguration]], explicit: dict,
                        cause: str, fix: str) -> list[CredentialsConfiguration]:
    """Each kind of credentials (a ``@configspec``) resolved by dlt: the values passed in first, then every
    provider (environment, ``.dlt/secrets.toml``, ``.dlt/config.toml``) in the current config section, i.e.
    ``SOURCES__<CRM>__<FIELD>`` inside a source. Returns the kinds that are complete, in the given order (a
    required field set to an empty string counts as not set). None complete: a :class:`SourceError` of
    ``cause`` and ``fix``, the fix followed by every place dlt looked for each missing setting."""
    found: list[CredentialsConfiguration] = []
    looked: dict[str, list] = {}
    for kind in kinds:
        fields = kind.get_resolvable_fields()
        given = {name: value for name, value in explicit.items() if name in fields and value not in (None, "")}
        try:
            resolved = resolve_configuration(kind(), explicit_value=given or None)
        except ConfigFieldMissingException as exc:
            for name, traces in exc.traces.items():
                looked.setdefault(name, traces)
            continue
        empty = [name for name, hint in fields.items() if not is_optional_type(hint) and getattr(resolved, name) == ""]
        if not empty:
            found.append(resolved)
        for name in empty:
            looked.setdefault(name, [])  # set, but to an empty string
    if not found:
        raise SourceError(source, cause, f"{fix.rstrip('.')}. {_looked_up(looked)}".rstrip())
    return found


def _looked_up(looked: dict[str, list]) -> str:
    """``dlt looked for webhook_url in Environment Variables: SOURCES__BITRIX24__WEBHOOK_URL, ...; secrets.toml:
    sources.bitrix24.webhook_url, ...`` (key names only, never a value)."""
    parts = []
    for name, traces in looked.items():
        if not traces:
            parts.append(f"{name} is set to an empty value.")
            continue
        by_provider: dict[str, list[str]] = {}
        for trace in traces:
            provider, where = getattr(trace, "provider", "?"), getattr(trace, "key", name)  # the full key
            by_provider.setdefault(provider, [])
            if where not in by_provider[provider]:
                by_provider[provider].append(where)
        places = "; ".join(f"{provider}: {', '.join(keys)}" for provider, keys in by_provider.items())
        parts.append(f"dlt looked for {name} in {places}.")
    return " ".join(parts)
