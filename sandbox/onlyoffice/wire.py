"""ONLYOFFICE's wire format: the ApiStandartResponce envelope, JSON.NET decimals and ApiDateTime strings."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..server import Response

_DEC = "\u0001D"
_DEC_RE = re.compile(r'"\\u0001D(-?[0-9.]+)"')


def _mark(obj):
    if isinstance(obj, Decimal):
        return f"{_DEC}{obj}"
    if isinstance(obj, dict):
        return {k: _mark(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_mark(v) for v in obj]
    return obj


def dumps(obj) -> str:
    """JSON.NET output: decimals as numbers keeping their scale (``7.70``), ``/`` escaped as ``\\/``."""
    text = json.dumps(_mark(obj), ensure_ascii=False, separators=(",", ":"))
    return _DEC_RE.sub(r"\1", text).replace("/", "\\/")


def envelope(response, *, status_code: int = 200, count: int | None = None, start_index: int = 0,
             next_index: int | None = None, total: int | None = None) -> Response:
    """Keys in ``Order``; every key but ``status`` is omitted when it holds its default (0 or null)."""
    if count is None:
        count = len(response) if isinstance(response, list) else 1
    body: dict = {}
    if count:
        body["count"] = count
    if start_index:
        body["startIndex"] = start_index
    if next_index is not None:
        body["nextIndex"] = next_index
    if total is not None:
        body["total"] = total
    body["status"] = 0
    body["statusCode"] = status_code
    if response is not None:
        body["response"] = response
    return Response(status_code, dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})


def error(status_code: int, message: str) -> Response:
    body = {"status": 1, "statusCode": status_code,
            "error": {"message": message, "hresult": -2146233088, "data": {}}}
    return Response(status_code, dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})


def unauthorized(with_challenge: bool) -> Response:
    headers = {"Content-Type": "text/html"}
    if with_challenge:
        headers["WWW-Authenticate"] = 'Bearer Realm="crm_invoices.sandbox.onlyoffice"'
    return Response(401, b"Unauthorized", headers)


def api_datetime(moment: datetime, zone: ZoneInfo) -> str:
    """Portal wall time with the portal's offset at that instant, 7 fractional digits, ``Z`` for UTC."""
    local = moment.astimezone(zone)
    offset = local.utcoffset()
    text = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0"
    if not offset:
        return text + "Z"
    sign = "-" if offset.total_seconds() < 0 else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def api_date(day: date, zone: ZoneInfo) -> str:
    """A business date: local midnight in the portal zone."""
    return api_datetime(datetime.combine(day, time(), tzinfo=zone), zone)


def parse_api_datetime(text: str, zone: ZoneInfo) -> datetime:
    """What ApiDateTime accepts: round trip, ``yyyy-MM-ddTHH-mm-ss.fffK`` (URL form), or a date; no offset =
    portal time."""
    text = text.strip()
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})(\.\d+)?(.*)", text)
    if m:
        text = f"{m[1]}T{m[2]}:{m[3]}:{m[4]}{m[5] or ''}{m[6]}"
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text) if "T" in text else datetime.combine(date.fromisoformat(text), time())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)
