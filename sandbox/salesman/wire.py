"""SalesMan's wire format, as its PHP writes and reads it: numbers, formatted amounts, escaped slashes,
PHP's ``$_REQUEST`` arrays and ``Cleaner()``, and how ``Invoice::list()`` builds its creation-date filter."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from ..world import q2


def php_number(x: Decimal | int) -> int | float:
    """How PHP's json_encode prints a DOUBLE: whole values as ints, others shortest round trip."""
    d = Decimal(x)
    return int(d) if d == d.to_integral_value() else float(d)


def num_format(x: Decimal) -> str:
    whole, frac = f"{q2(x):.2f}".split(".")
    sign = "-" if whole.startswith("-") else ""
    whole = whole.lstrip("-")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return f"{sign}{' '.join(groups)},{frac}"


def php_json(obj: object) -> str:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/")


def brackets(pairs: dict[str, list[str]]) -> dict:
    """PHP's $_REQUEST: ``pay[on]=1`` becomes {"pay": {"on": "1"}}."""
    out: dict = {}
    for key, values in pairs.items():
        value = values[-1]
        if "[" in key and key.endswith("]"):
            head, rest = key.split("[", 1)
            out.setdefault(head, {})
            if isinstance(out[head], dict):
                out[head][rest[:-1]] = value
        else:
            out[key] = value
    return out


def _wall(text: object) -> datetime | None:
    """A date filter value as MySQL reads it: a date alone is that day's 00:00:00."""
    text = str(text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text if " " in text or "T" in text else f"{text} 00:00:00")
    except ValueError:
        return None


def created_filter(start: object, end: object) -> tuple[datetime | None, datetime] | None:
    """``dateCreateStart``/``End`` as Invoice::list() builds them: both -> ``datum BETWEEN S AND E``;
    End alone -> ``datum < E``; Start alone compares with an empty variable and filters nothing."""
    low, high = _wall(start), _wall(end)
    if high is None:
        return None
    return low, high


def clean(params: dict) -> dict:
    """``Cleaner()`` on form params: quotes become typographic ones."""
    def fix(v):
        if isinstance(v, str):
            return v.replace('"', "\u201d").replace("'", "&acute;")
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v
    return {k: fix(v) for k, v in params.items()}
