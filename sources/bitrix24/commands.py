"""What a ``batch`` request carries and returns: commands as PHP query strings (with ``$result[...]``
references), the batch's result maps, and the id export that chains pages of one list inside a batch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote

from .settings import PAGE_SIZE


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
        elif type(value) is int:  # ids, most of a batch's values: digits need no encoding
            out.append(f"{_name(name)}={value}")
        else:
            text = "" if value is None else str(value)
            # the portal substitutes references in the raw command string, before decoding it
            encoded = "".join(part if n % 2 else quote(part, safe="") for n, part in enumerate(REF.split(text)))
            out.append(f"{_name(name)}={encoded}")
    return out


@lru_cache(maxsize=1024)
def _name(name: str) -> str:
    """A parameter's encoded name: the same few (``filter[=ownerId][3]``) in every command of a run."""
    return quote(name, safe="[]")


def describe_error(err: object) -> str:
    return str(err.get("error_description", "")) if isinstance(err, dict) else ""


def error_code(err: object) -> object:
    return err.get("error") if isinstance(err, dict) else err


def as_map(value: object) -> dict:
    """Empty maps arrive as ``[]`` (PHP's json_encode)."""
    return value if isinstance(value, dict) else {}


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
