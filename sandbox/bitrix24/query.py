"""Filters, order and select as the list methods apply them (prefixes ``>=``, ``@``, ``!`` ...)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from .wire import BitrixError


def parse_dt(value: object, zone: ZoneInfo) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)  # no offset: the server's zone


SMART_FIELDS = {"id": int, "updatedTime": "dt", "createdTime": "dt", "categoryId": int, "stageId": str,
                 "currencyId": str, "companyId": int, "accountNumber": str}
LEGACY_FIELDS = {"ID": int, "DATE_UPDATE": "dt", "DATE_INSERT": "dt", "STATUS_ID": str, "IS_RECURRING": str,
                  "CURRENCY": str, "ACCOUNT_NUMBER": str, "RECURRING_ID": int}
OPS = (">=", "<=", "!@", "!=", ">", "<", "@", "=", "!")


def coerce(value: object, kind, zone: ZoneInfo):
    if kind == "dt":
        return parse_dt(value, zone)
    if kind is int:
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    return None if value is None else str(value)


def filter_rows(rows: list[dict], flt: object, fields: dict, zone: ZoneInfo) -> list[dict]:
    if not flt:
        return rows
    if not isinstance(flt, dict):
        raise BitrixError("", "Parameter 'filter' must be array.", 400)
    for key, raw in flt.items():
        op = next((o for o in OPS if key.startswith(o)), "")
        name = key[len(op):]
        if name not in fields:
            raise BitrixError("INVALID_ARG_VALUE", f"Invalid filter: field '{name}' is not allowed in filter", 400)
        kind = fields[name]
        if raw == "" and op in (">", ">=", "<", "<="):
            continue  # an empty bound (an unresolved batch reference) filters nothing
        if op in ("@", "!@"):
            wanted = {coerce(v, kind, zone) for v in (raw if isinstance(raw, list) else [raw])}
            rows = [r for r in rows if (coerce(r.get(name), kind, zone) in wanted) == (op == "@")]
            continue
        value = coerce(raw, kind, zone)
        out = []
        for r in rows:
            have = coerce(r.get(name), kind, zone)
            if op in ("", "="):
                ok = have == value
            elif op in ("!", "!="):
                ok = have != value
            elif have is None or value is None:
                ok = False
            else:
                ok = {">": have > value, ">=": have >= value, "<": have < value, "<=": have <= value}[op]
            if ok:
                out.append(r)
        rows = out
    return rows


def order_rows(rows: list[dict], order: object, fields: dict) -> list[dict]:
    if not isinstance(order, dict):
        return rows
    for name, direction in reversed(list(order.items())):
        kind = fields.get(name, str)
        if name not in fields and name not in ("id",):
            raise BitrixError("INVALID_ARG_VALUE", f"Invalid order: field '{name}'", 400)
        rows = sorted(rows, key=lambda r: (r.get(name) is None, coerce(r.get(name), kind, UTC) or 0
                                           if kind is int else str(r.get(name) or "")),
                      reverse=str(direction).upper() == "DESC")
    return rows


def select_fields(row: dict, select: object, id_field: str) -> dict:
    if not isinstance(select, list) or not select or "*" in select:
        return row
    keep = set(select) | {id_field}
    return {k: v for k, v in row.items() if k in keep}
