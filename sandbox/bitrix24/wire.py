"""The portal's wire dialect: its error, PHP's ``$_REQUEST`` from bracketed params, batch references."""

from __future__ import annotations

import re

REF = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]*\])*)")


class BitrixError(Exception):
    def __init__(self, code: object, description: str, status: int = 400):
        super().__init__(description)
        self.code, self.description, self.status = code, description, status


def php_params(pairs: list[tuple[str, str]]) -> dict:
    """PHP's ``$_REQUEST`` from ``a[b][]=1`` style pairs; ``[]`` appends, digit-keyed maps become lists."""
    out: dict = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + (re.findall(r"\[([^\]]*)\]", "[" + rest) if rest else [])
        cur = out
        for i, part in enumerate(parts):
            if part == "":
                part = str(len(cur))
            if i == len(parts) - 1:
                cur[part] = value
            else:
                nxt = cur.get(part)
                if not isinstance(nxt, dict):
                    nxt = cur[part] = {}
                cur = nxt
    return _listify(out)


def _listify(obj):
    if isinstance(obj, dict):
        obj = {k: _listify(v) for k, v in obj.items()}
        if obj and all(k.isdigit() for k in obj) and sorted(int(k) for k in obj) == list(range(len(obj))):
            return [obj[str(i)] for i in range(len(obj))]
    return obj


def resolve(value: str, results: dict) -> str:
    """``$result[cmd][items][49][id]``: a missing path resolves to an empty string (inference: the
    server does not fail the command, it substitutes nothing)."""
    def sub(m: re.Match) -> str:
        cur = results.get(m.group(1))
        for part in re.findall(r"\[([^\]]*)\]", m.group(2)):
            if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                cur = cur[int(part)]
            elif isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                return ""
        return "" if isinstance(cur, (dict, list)) or cur is None else str(cur)
    return REF.sub(sub, value)
