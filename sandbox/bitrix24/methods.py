"""The portal's REST methods over the world's invoices: ``crm.item.*`` (smart invoices, their product rows and
payments), ``crm.invoice.*`` (the legacy family, recurring templates), the dictionaries (stages, pipelines,
currencies, companies), with paging by ``start`` and the id export (``start=-1``)."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ..world import Invoice
from . import render as R
from .options import PAGE
from .query import LEGACY_FIELDS, SMART_FIELDS, filter_rows, order_rows, select_fields
from .wire import BitrixError


class CrmMethods:
    """Mixed into the provider, which supplies ``world``, ``zone``, ``portal``, ``failing``, ``subcalls``,
    ``recurring``, ``invoice()`` and ``now()``."""

    def _call(self, method: str, params: dict) -> dict:
        self.subcalls[method] = self.subcalls.get(method, 0) + 1
        if method in self.failing:
            raise BitrixError(*self.failing[method])
        handler = {
            "crm.item.list": self._item_list, "crm.item.productrow.list": self._productrow_list,
            "crm.item.payment.list": self._payment_list, "crm.status.list": self._status_list,
            "crm.category.list": self._category_list, "crm.currency.list": self._currency_list,
            "crm.invoice.list": self._invoice_list, "crm.invoice.get": self._invoice_get,
            "crm.invoice.recurring.list": self._recurring_list, "crm.invoice.recurring.expose": self._expose,
            "crm.company.list": self._company_list,
        }.get(method)
        if handler is None:
            raise BitrixError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        return handler(params)

    def _live(self, kinds: tuple[str, ...]) -> list[Invoice]:
        return [i for i in self.world.invoices["bitrix24"] if not i.deleted and i.kind in kinds]

    # The emulator must not be the benchmark's bottleneck: invoices are found by id through an index and
    # rendered once per version, and id-ordered exports (start=-1) skip to the lower id bound.

    def _by_id(self, world_id: int, kinds: tuple[str, ...]) -> Invoice | None:
        invoices = self.world.invoices["bitrix24"]
        if len(getattr(self, "_index", ())) != len(invoices):
            self._index = {i.id: i for i in invoices}
        inv = self._index.get(world_id)
        return inv if inv is not None and not inv.deleted and inv.kind in kinds else None

    def _render(self, inv: Invoice) -> dict:
        cache = self.__dict__.setdefault("_rendered", {})
        version = (inv.kind, inv.status, inv.updated_at, inv.deleted, inv.extra.get("b24_recurring_id"),
                   tuple((p.amount, p.via) for p in inv.payments))
        hit = cache.get(inv.id)
        if hit is None or hit[0] != version:
            row = (R.smart_item(inv, self.zone) if inv.kind == "smart" else
                   R.legacy_invoice(inv, self.zone, inv.extra.get("b24_recurring_id"), False))
            hit = cache[inv.id] = (version, row)
        return hit[1]

    def _list(self, kinds: tuple[str, ...], params: dict, fields: dict, id_field: str,
              default_order: dict) -> dict:
        flt = params.get("filter")
        order = params.get("order") or default_order
        try:
            fast = int(params.get("start", 0) or 0) < 0 and order == {id_field: "ASC"}
        except (TypeError, ValueError):
            fast = False
        if fast and (flt is None or isinstance(flt, dict)):
            rest = dict(flt or {})
            bound = rest.pop(f">{id_field}", "")
            ordered, ids = self._by_id_order()
            # an export page starts right after its lower bound: no pass over the whole portal per page
            first = bisect_right(ids, int(bound)) if str(bound).lstrip("-").isdigit() else 0
            rows: list[dict] = []
            for inv in (ordered[n] for n in range(first, len(ordered))):
                if inv.deleted or inv.kind not in kinds:
                    continue
                row = self._render(inv)
                if not rest or filter_rows([row], rest, fields, self.zone):
                    rows.append(row)
                    if len(rows) == PAGE:
                        break
            return {"rows": rows, "total": 0}
        invoices = sorted(self._live(kinds), key=lambda i: i.id)
        rows = filter_rows([self._render(i) for i in invoices], flt, fields, self.zone)
        return self._page(order_rows(rows, order, fields), params)

    def _by_id_order(self) -> tuple[list[Invoice], list[int]]:
        """Every invoice (deleted ones too) by id, with the ids for bisecting; sorted again only when
        invoices were added (ids never change; deletion is a flag checked per row)."""
        invoices = self.world.invoices["bitrix24"]
        key = (id(invoices), len(invoices))
        if getattr(self, "_order_key", None) != key:
            self._ordered = sorted(invoices, key=lambda i: i.id)
            self._ordered_ids = [i.id for i in self._ordered]
            self._order_key = key
        return self._ordered, self._ordered_ids

    def _page(self, rows: list, params: dict) -> dict:
        try:
            start = int(params.get("start", 0) or 0)
        except (TypeError, ValueError):
            start = 0
        if start < 0:  # no counting: the fast path for exports
            return {"rows": rows[:PAGE], "total": 0}
        out = {"rows": rows[start:start + PAGE], "total": len(rows)}
        if start + PAGE < len(rows):
            out["next"] = start + PAGE
        return out

    def _entity(self, params: dict) -> None:
        if str(params.get("entityTypeId", "")) != "31":
            raise BitrixError("ENTITY_TYPE_NOT_SUPPORTED", "Entity type is not supported", 400)

    def _item_list(self, params: dict) -> dict:
        self._entity(params)
        page = self._list(("smart",), params, SMART_FIELDS, "id", {"id": "ASC"})
        select = params.get("select")
        rows = [select_fields(r, select, "id") for r in page.pop("rows")]
        return {"result": {"items": rows}, **page}

    def _productrow_list(self, params: dict) -> dict:
        flt = params.get("filter")
        if not isinstance(flt, dict) or "=ownerType" not in flt or "=ownerId" not in flt:
            raise BitrixError("INVALID_ARG_VALUE", "Required fields: ownerType, ownerId", 400)
        if flt["=ownerType"] != "SI":
            return {"result": {"productRows": []}, "total": 0}
        owners = flt["=ownerId"] if isinstance(flt["=ownerId"], list) else [flt["=ownerId"]]
        wanted = {int(o) for o in owners if str(o).isdigit()}
        rows = [r for w in sorted(wanted) if (i := self._by_id(w, ("smart",))) for r in R.smart_product_rows(i)]
        rows = order_rows(rows, params.get("order") or {"id": "ASC"}, {"id": int})
        page = self._page(rows, params)
        return {"result": {"productRows": page.pop("rows")}, **page}

    def _payment_list(self, params: dict) -> dict:
        if str(params.get("entityTypeId", "")) not in ("2", "31") or not str(params.get("entityId", "")).isdigit():
            raise BitrixError(0, "Недостаточно прав", 400)
        if str(params["entityTypeId"]) != "31":
            return {"result": []}
        inv = self._by_id(int(params["entityId"]), ("smart",))
        if inv is None:
            raise BitrixError("NOT_FOUND", "Элемент не найден", 400)
        return {"result": R.smart_payments(inv, self.zone)}  # a bare array: no items wrapper, no total

    def _status_list(self, params: dict) -> dict:
        entity = ((params.get("filter") or {}).get("ENTITY_ID") if isinstance(params.get("filter"), dict) else None)
        rows = []
        for cat in R.SMART_CATEGORIES:
            for s in R.smart_stages(cat):
                rows.append({"ID": str(len(rows) + 1), "ENTITY_ID": f"SMART_INVOICE_STAGE_{cat}",
                             "STATUS_ID": s.status_id, "NAME": s.name, "NAME_INIT": s.name, "SORT": str(s.sort),
                             "SYSTEM": "Y", "CATEGORY_ID": str(cat), "COLOR": "#39A8EF", "SEMANTICS": s.semantics,
                             "EXTRA": []})  # EXTRA.SEMANTICS is empty for invoices
        for s in R.LEGACY_STATUSES:
            rows.append({"ID": str(len(rows) + 1), "ENTITY_ID": "INVOICE_STATUS", "STATUS_ID": s.status_id,
                         "NAME": s.name, "NAME_INIT": s.name, "SORT": str(s.sort), "SYSTEM": "Y",
                         "CATEGORY_ID": None, "COLOR": "#39A8EF", "SEMANTICS": None, "EXTRA": []})
        if entity:
            rows = [r for r in rows if r["ENTITY_ID"] == entity]
        return {"result": rows, "total": len(rows)}

    def _category_list(self, params: dict) -> dict:
        self._entity(params)
        cats = [{"id": cid, "name": name, "sort": 100 * n, "entityTypeId": 31, "isDefault": "Y" if default else "N"}
                for n, (cid, (name, default)) in enumerate(R.SMART_CATEGORIES.items(), start=1)]
        return {"result": {"categories": cats}, "total": len(cats)}

    def _currency_list(self, params: dict) -> dict:
        rows = []
        for n, code in enumerate(R.portal_currencies(self.world), start=1):
            nominal = R.CURRENCY_NOMINAL[code]
            amount = self.world.rate(code, self.world.today) * nominal
            base = code == self.portal.base_currency
            rows.append({"CURRENCY": code, "AMOUNT_CNT": nominal, "AMOUNT": R.num(Decimal(1) if base else amount),
                         "SORT": n * 100, "BASE": "Y" if base else "N", "FULL_NAME": code, "LID": "ru",
                         "FORMAT_STRING": "# " + code, "DEC_POINT": ".", "THOUSANDS_SEP": " ", "DECIMALS": 2,
                         "DATE_UPDATE": R.iso(self.now(), self.zone)})
        return {"result": rows, "total": len(rows)}

    def _invoice_list(self, params: dict) -> dict:
        page = self._list(("legacy", "template"), params, LEGACY_FIELDS, "ID", {"ID": "DESC"})  # CORE default
        select = params.get("select")
        return {"result": [select_fields(r, select, "ID") for r in page.pop("rows")], **page}

    def _company_list(self, params: dict) -> dict:
        """Clients as CRM companies, in the old UPPER_CASE family (ids as strings)."""
        rows = [{"ID": str(c.id), "TITLE": c.name, "COMPANY_TYPE": "CUSTOMER", "INDUSTRY": "IT",
                 "DATE_CREATE": R.iso(datetime(2025, 1, 1, 9, tzinfo=UTC), self.zone),
                 "DATE_MODIFY": R.iso(datetime(2025, 1, 1, 9, tzinfo=UTC), self.zone)} for c in self.world.clients]
        rows = filter_rows(rows, params.get("filter"), {"ID": int, "DATE_MODIFY": "dt"}, self.zone)
        rows = order_rows(rows, params.get("order") or {"ID": "ASC"}, {"ID": int, "DATE_MODIFY": "dt"})
        page = self._page(rows, params)
        return {"result": [select_fields(r, params.get("select"), "ID") for r in page.pop("rows")], **page}

    def _invoice_get(self, params: dict) -> dict:
        try:
            wanted = int(params.get("id") or params.get("ID") or 0)
        except (TypeError, ValueError):
            wanted = 0
        inv = self._by_id(wanted, ("legacy", "template"))
        if inv is None:
            raise BitrixError("", "Invoice is not found.", 400)  # the old family's empty error code
        return {"result": R.legacy_invoice(inv, self.zone, inv.extra.get("b24_recurring_id"), True)}

    def _recurring_list(self, params: dict) -> dict:
        rows = []
        for rid, tid in sorted(self.recurring.items()):
            tpl = self.invoice(tid)
            if tpl.deleted:
                continue
            rows.append({"ID": str(rid), "INVOICE_ID": str(tid), "ACTIVE": "Y",
                         "NEXT_EXECUTION": R.iso_date(self.world.today + timedelta(days=30), self.zone),
                         "LAST_EXECUTION": None, "COUNTER_REPEAT": "0", "START_DATE": R.iso_date(tpl.issue_date, self.zone),
                         "SEND_BILL": "N", "EMAIL_ID": None, "IS_LIMIT": "N", "LIMIT_REPEAT": None, "LIMIT_DATE": None,
                         "PARAMS": {"PERIOD": "month", "INTERVAL": 1, "DATE_PAY_BEFORE_OFFSET_TYPE": "day",
                                    "DATE_PAY_BEFORE_OFFSET_VALUE": 10}})
        page = self._page(rows, params)
        return {"result": page.pop("rows"), **page}

    def _expose(self, params: dict) -> dict:
        """A write: a new legacy invoice from the template of recurring setting ``id``."""
        try:
            rid = int(params.get("id") or 0)
        except (TypeError, ValueError):
            rid = 0
        tid = self.recurring.get(rid)
        if tid is None or self.invoice(tid).deleted:
            raise BitrixError("", "Recurring invoice is not found.", 400)
        tpl = self.invoice(tid)
        now = self.now()
        inv = Invoice("bitrix24", self.world.next_invoice_id("bitrix24"), f"R-{tid}-{len(self.world.invoices['bitrix24'])}",
                      tpl.client_id, tpl.deal_id, now, self.world.today, self.world.today + timedelta(days=10),
                      tpl.currency, [R.Line(ln.name, ln.quantity, ln.unit_price, ln.vat_rate, ln.vat_included)
                                     for ln in tpl.lines], kind="legacy")
        inv.updated_at = now
        inv.extra["b24_recurring_id"] = tid
        self.world.invoices["bitrix24"].append(inv)
        return {"result": {"ID": inv.id}}
