"""What one run reads before the resources split up: a single opening batch that carries the dictionaries
(invoice pipelines and stages, currencies, recurring templates) and the first pages of every list (changed
smart and legacy invoices, companies) and, on reruns, of both id sweeps; then each resource goes on from
where its list stopped. A rerun that finds a few changes is one request plus the per-invoice reads."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..common import deletion_marks
from . import records as rec
from .client import Bitrix24Client, MethodUnavailable
from .commands import BatchResult, IdExport, error_code
from .settings import LEGACY_SELECT, MAX_BATCH, PAGE_SIZE, SMART_INVOICE, SMART_SELECT, SOURCE_NAME

# Invoice pipelines whose stages ride in the opening batch, each by a reference to the category list
# (``$result[cats][categories][n][id]``): portals have one to a few. More cost one more batch.
CATEGORY_SLOTS = 5
# Room the lists leave in the opening batch is filled with per-invoice reads known or guessable before it:
# crm.invoice.get of the first changed legacy invoices (by reference to the changed page) and the payments
# of invoices still open. On a rerun that often saves the request those reads would start.
LEGACY_GET_SLOTS = 10
GONE = frozenset({"", "NOT_FOUND"})  # the item vanished between the list and the call (old family: "")
LEGACY_METHODS = frozenset({"crm.invoice.list", "crm.invoice.recurring.list"})  # newer portals switch them off


def allocate(wants: dict[str, int], capacity: int) -> dict[str, int]:
    """Pages per list in the opening batch: what each wants if it fits, else shares of the capacity (at least
    one page each while there is room). A list that does not finish there goes on in batches of its own."""
    if sum(wants.values()) <= capacity:
        return dict(wants)
    total, least = sum(wants.values()), 1 if capacity >= len(wants) else 0
    sizes = {k: max(least, math.floor(w * max(0, capacity) / total)) for k, w in wants.items()}
    while sum(sizes.values()) > capacity:
        biggest = max(sizes, key=sizes.get)
        sizes[biggest] -= 1
    return sizes


class Run:
    """The opening batch of one run and what each resource takes from it. States are the resources' own
    (``dlt.current.resource_state``), read once when the first resource asks."""

    def __init__(self, client: Bitrix24Client, states, overlap, chain: int, context: dict):
        self.client, self.states, self.overlap, self.chain = client, states, overlap, chain
        self.context = context  # account only: dictionaries carry no extraction time
        self.exports: dict[str, IdExport] = {}
        self.pages: dict[str, list[list[dict]]] = {}
        self.first_done: dict[str, bool] = {}  # list key -> it ended inside the opening batch
        self._opened: BatchResult | None = None
        self._stages: list[dict] | None = None
        self.legacy_available = True
        self.legacy_gets: dict[int, object] = {}  # invoice id -> crm.invoice.get result read in the opening batch
        self.payments: dict[int, object] = {}  # invoice id -> crm.item.payment.list result, likewise
        self.gone: dict[str, set[int]] = {"lg": set(), "pay": set()}  # ids those reads found vanished

    # ---- the opening batch ----------------------------------------------------------------------------
    def _changed(self, state: dict, method: str, params: dict, id_field: str, wrapper, cursor_field: str):
        cursor = state.get("cursor")
        flt = {f">={cursor_field}": (rec.instant(cursor) - self.overlap).isoformat()} if cursor else {}
        return IdExport(method, {**params, "filter": flt}, id_field, wrapper)

    def open(self) -> BatchResult:
        if self._opened is not None:
            return self._opened
        smart, legacy, companies = (self.states(n) for n in ("smart_invoices", "legacy_invoices", "companies"))
        self.exports = {
            "si": self._changed(smart, "crm.item.list", {"entityTypeId": SMART_INVOICE, "select": SMART_SELECT},
                                "id", "items", "updatedTime"),
            "li": self._changed(legacy, "crm.invoice.list", {"select": LEGACY_SELECT}, "ID", None, "DATE_UPDATE"),
            "co": IdExport("crm.company.list", {"select": ["ID", "TITLE", "COMPANY_TYPE"]}, "ID", None),
        }

        def pages_for(known: int) -> int:
            return known // PAGE_SIZE + 1  # one more than the known rows fill: the page that ends the list

        # an incremental read usually finds a few changes; a first one reads everything
        wants = {"si": 2 if smart.get("cursor") else 28, "li": 2 if legacy.get("cursor") else 10,
                 "co": pages_for(companies.get("count", 0))}
        # the id sweeps, on reruns: placed after the changed reads, so a row created between the two is never
        # taken for deleted (it is in the sweep, and the next run's overlap loads it)
        if smart.get("cursor"):
            self.exports["ss"] = IdExport("crm.item.list", {"entityTypeId": SMART_INVOICE, "select": ["id"]},
                                          "id", "items")
            wants["ss"] = pages_for(len(smart.get("known_ids", [])))
        if legacy.get("cursor"):
            self.exports["ls"] = IdExport("crm.invoice.list", {"select": ["ID"]}, "ID", None)
            wants["ls"] = pages_for(len(legacy.get("known_ids", [])))
        commands: dict[str, tuple[str, dict]] = {"cats": ("crm.category.list", {"entityTypeId": SMART_INVOICE})}
        for n in range(CATEGORY_SLOTS):
            ref = f"SMART_INVOICE_STAGE_$result[cats][categories][{n}][id]"
            commands[f"st{n}"] = ("crm.status.list", {"filter": {"ENTITY_ID": ref}})
        commands["stI"] = ("crm.status.list", {"filter": {"ENTITY_ID": "INVOICE_STATUS"}})
        commands["cur"] = ("crm.currency.list", {"order": {"SORT": "ASC"}})
        commands["rec"] = ("crm.invoice.recurring.list", {"order": {"ID": "ASC"}, "select": ["*"], "start": 0})
        wants = {k: min(w, self.chain) for k, w in wants.items()}
        # the changed reads first: one that does not end here would make the sweep read after it stale
        first = {k: wants.pop(k) for k in ("si", "li")}
        room = MAX_BATCH - len(commands)
        sizes = allocate(first, room)
        sizes |= allocate(wants, room - sum(sizes.values()))
        for key, export in self.exports.items():
            commands.update(export.commands(key, sizes[key]))
        guesses = {}
        if legacy.get("cursor"):
            for n in range(min(LEGACY_GET_SLOTS, MAX_BATCH - len(commands))):
                guesses[f"lg{n}"] = ("crm.invoice.get", {"id": f"$result[li0][{n}][ID]"})
        spare = MAX_BATCH - len(commands) - len(guesses)
        for i in sorted(smart.get("open_ids", []))[:max(0, spare)]:
            guesses[f"pay{i}"] = ("crm.item.payment.list", {"entityId": i, "entityTypeId": SMART_INVOICE})
        commands.update(guesses)
        res = self.client.batch(commands, optional=LEGACY_METHODS, tolerate=frozenset(guesses))
        # a portal without the legacy family: its list (and so its sweep) and the templates are not offered
        self.legacy_available = not any(k.startswith(("li", "ls")) for k in res.unavailable)
        for key, export in self.exports.items():
            if key in ("li", "ls") and not self.legacy_available:
                continue
            self.pages[key] = export.take(res, key, sizes[key], self.client.fail)
            self.first_done[key] = export.done
        self._guessed(res, guesses)
        self._opened = res
        return res

    def _guessed(self, res: BatchResult, guesses: dict) -> None:
        """Keep the per-invoice reads of the opening batch. A guess past the end of the changed page had no
        invoice to read (its reference resolved to nothing): its error means nothing."""
        changed_legacy = (self.pages.get("li") or [[]])[0]
        for key, (method, params) in guesses.items():
            if key.startswith("lg"):
                n = int(key[2:])
                if n >= len(changed_legacy):
                    continue
                invoice_id = int(changed_legacy[n]["ID"])
            else:
                invoice_id = int(params["entityId"])
            if key in res.errors and error_code(res.errors[key]) not in GONE:
                raise self.client.command_failure(key, method, res.errors[key])
            if key in res.errors:
                self.gone[key[:2] if key.startswith("lg") else "pay"].add(invoice_id)
            elif key.startswith("lg"):
                self.legacy_gets[invoice_id] = res.result.get(key)
            else:
                self.payments[invoice_id] = res.result.get(key)

    def rows(self, key: str) -> Iterator[list[dict]]:
        """Every page of one list: those the opening batch read, then the rest in batches of their own."""
        self.open()
        yield from self.pages.pop(key, [])
        export = self.exports[key]
        while not export.done:
            res = self.client.batch(export.commands("p", self.chain))
            yield from export.take(res, "p", self.chain, self.client.fail)

    def sweep(self, key: str, fresh: bool) -> set[int]:
        """The ids alive now. ``fresh``: the changed read went on past the opening batch, so the sweep read
        there is older than some loaded rows; read it again."""
        export = self.exports[key]
        if fresh:
            self.pages.pop(key, None)
            self.exports[key] = IdExport(export.method, export.params, export.id_field, export.wrapper)
        return {int(r[export.id_field]) for page in self.rows(key) for r in page}

    # ---- dictionaries ------------------------------------------------------------------------------------
    def stages(self) -> list[dict]:
        if self._stages is not None:
            return self._stages
        res = self.open()
        cats = [int(c["id"]) for c in (res.result.get("cats") or {}).get("categories") or []]
        statuses = [s for n in range(CATEGORY_SLOTS) for s in res.result.get(f"st{n}") or []]
        if len(cats) > CATEGORY_SLOTS:  # more pipelines than the opening batch had room for
            more = self.client.batch({f"s{c}": ("crm.status.list", {"filter": {"ENTITY_ID": f"SMART_INVOICE_STAGE_{c}"}})
                                      for c in cats[CATEGORY_SLOTS:]})
            statuses += [s for c in cats[CATEGORY_SLOTS:] for s in more.result.get(f"s{c}") or []]
        by_entity: dict[str, list[dict]] = {f"SMART_INVOICE_STAGE_{c}": [] for c in cats}
        for s in statuses:
            by_entity.setdefault(s["ENTITY_ID"], []).append(s)
        by_entity["INVOICE_STATUS"] = list(res.result.get("stI") or [])
        rows = []
        for entity, entity_statuses in by_entity.items():
            if entity == "INVOICE_STATUS":
                # the legacy dictionary carries no semantics: P is the only success, whatever sorts after
                # it is a failure, the rest is in progress (the CRM's own rule)
                p_sort = next((int(s["SORT"]) for s in entity_statuses if s["STATUS_ID"] == "P"), None)
                for s in entity_statuses:
                    s["SEMANTICS"] = ("S" if s["STATUS_ID"] == "P" else
                                      "F" if p_sort is not None and int(s["SORT"]) > p_sort else None)
            first = min((int(s["SORT"]) for s in entity_statuses), default=None)
            rows += [{"entity_id": entity, "status_id": s["STATUS_ID"], "name": s.get("NAME"),
                      "sort": int(s["SORT"]), "category_id": rec.integer(s.get("CATEGORY_ID")),
                      "semantics": s.get("SEMANTICS") or None, "is_first": int(s["SORT"]) == first,
                      **self.context} for s in entity_statuses]
        self._stages = rows
        return rows

    def closed(self, entity_prefix: str) -> set[str]:
        return {s["status_id"] for s in self.stages() if s["entity_id"].startswith(entity_prefix)
                and s["semantics"] in ("S", "F")}

    def currencies(self) -> list[dict]:
        return list(self.open().result.get("cur") or [])

    def recurring(self) -> Iterator[list[dict]]:
        """Recurring settings, paged by offset (the method has no id export). The first page's total gives
        every other page's offset up front: they go 50 to a batch; ``next`` covers rows added meanwhile."""
        res = self.open()
        if "rec" in res.unavailable:
            raise MethodUnavailable(SOURCE_NAME, "the portal does not offer crm.invoice.recurring.list.",
                                    "nothing to do: a portal without legacy invoices has no recurring templates.")
        method, params = "crm.invoice.recurring.list", {"order": {"ID": "ASC"}, "select": ["*"]}
        yield list(res.result.get("rec") or [])
        start, total = res.next.get("rec"), int(res.total.get("rec") or 0)
        offsets = list(range(int(start), total, PAGE_SIZE)) if start else []
        for i in range(0, len(offsets), MAX_BATCH):
            part = offsets[i:i + MAX_BATCH]
            more = self.client.batch({f"r{o}": (method, {**params, "start": o}) for o in part})
            for o in part:
                yield list(more.result.get(f"r{o}") or [])
            start = more.next.get(f"r{part[-1]}")
        if start:  # rows added while the batches were read: the method's own start/next paging
            yield from self.client.pages(method, params, int(start))


def deletions(state: dict, kind: str, seen: set[int], live: set[int], at, account: str) -> list[dict]:
    """Marks for invoices that vanished (loaded before, or read earlier in this run, and not in the sweep)
    and for those back from the recycle bin; the state keeps the sweep as the ids now known."""
    marks, vanished = deletion_marks("id", set(state.get("known_ids", [])), set(state.get("deleted_ids", [])),
                                     seen, live, at)
    state["deleted_ids"] = sorted(vanished)
    state["known_ids"] = sorted(live)
    return [{"account": account, "kind": kind, "id": m["id"], "is_deleted": m["is_deleted"], "detected_at": at}
            for m in marks]
