"""The portal's ``/rest/`` methods over the world's invoices, and what users do in the UI (test helpers)."""

from __future__ import annotations

import json
import threading
import time as _time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from .. import bitrix24_render as R
from ..server import Faults, Request, Response
from ..world import Invoice, Payment, World
from .batch import BatchEngine
from .limiter import Bucket
from .oauth import OAuthServer
from .options import PAGE, Bitrix24Portal
from .query import LEGACY_FIELDS, SMART_FIELDS, filter_rows, order_rows, select_fields
from .wire import BitrixError, php_params


class Bitrix24Provider(OAuthServer, BatchEngine):
    name = "bitrix24"
    prefix = "/rest/"
    token_path = "/oauth/token/"

    def __init__(self, world: World, **options):
        self.world = world
        self.portal = Bitrix24Portal(**options)
        self.zone = ZoneInfo(self.portal.timezone)
        self.faults = Faults()
        self.bucket = Bucket(self.portal.requests_per_second, self.portal.burst)
        self.rate_limited = 0  # 503 QUERY_LIMIT_EXCEEDED answers, for tests and the benchmark
        self.subcalls: dict[str, int] = {}  # method -> calls, batch sub-calls included
        self.blocked: dict[str, float] = {}  # method -> unix time its OPERATION_TIME_LIMIT block ends
        self.failing: dict[str, tuple[object, str, int]] = {}  # method -> (error, description, HTTP status)
        self.refresh_tokens = {self.portal.refresh_token}
        self.access_tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.refreshes = 0
        self.expire_in_batch_after: int | None = None  # the next batch's token expires after this many commands
        self._lock = threading.Lock()
        R.assign_kinds(world)
        templates = sorted(i.id for i in world.invoices["bitrix24"] if i.kind == "template")
        self.recurring = {500 + n: tid for n, tid in enumerate(templates, start=1)}  # setting id -> template

    # ---- protocol -------------------------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        return path.startswith(self.prefix) or path.startswith(self.token_path)

    def method_key(self, request: Request) -> str:
        if request.path.startswith(self.token_path):
            return "oauth/token"
        method = request.path.rstrip("/").rsplit("/", 1)[-1]
        return method.removesuffix(".json")

    def demo_env(self, base_url: str) -> dict[str, str]:
        return {"SOURCES__BITRIX24__WEBHOOK_URL": self.webhook_url(base_url),
                "SOURCES__BITRIX24__ACCOUNT": "sandbox"}

    def webhook_url(self, base_url: str) -> str:
        return f"{base_url}/rest/{self.portal.webhook_user}/{self.portal.webhook_secret}/"

    def oauth_env(self, base_url: str) -> dict[str, str]:
        return {"SOURCES__BITRIX24__PORTAL_URL": base_url, "SOURCES__BITRIX24__CLIENT_ID": self.portal.client_id,
                "SOURCES__BITRIX24__CLIENT_SECRET": self.portal.client_secret,
                "SOURCES__BITRIX24__REFRESH_TOKEN": self.portal.refresh_token,
                "SOURCES__BITRIX24__OAUTH_TOKEN_URL": f"{base_url}{self.token_path}",
                "SOURCES__BITRIX24__ACCOUNT": "sandbox"}

    # ---- test helpers: what users do in the UI --------------------------------------------------------
    def invoice(self, world_id: int) -> Invoice:
        return next(i for i in self.world.invoices["bitrix24"] if i.id == world_id)

    def now(self) -> datetime:
        """The portal's clock: never behind the latest change already stored (generated data is stamped
        on the world's own calendar)."""
        latest = max((i.updated_at or i.created_at for i in self.world.invoices["bitrix24"]),
                     default=datetime.now(UTC))
        return max(datetime.now(UTC).replace(microsecond=0), latest + timedelta(seconds=1))

    def touch(self, inv: Invoice) -> None:
        inv.updated_at = self.now()

    def delete_invoice(self, world_id: int) -> None:
        self.invoice(world_id).deleted = True

    def pay(self, world_id: int, amount: Decimal, on: date | None = None) -> None:
        """A payment recorded in the UI: the item's ``updatedTime`` moves only when the stage changes."""
        inv = self.invoice(world_id)
        before = R.stage_of(inv)
        inv.payments.append(Payment(on or self.world.today, amount, "ui"))
        if R.stage_of(inv) != before:
            self.touch(inv)

    def add_invoice(self, kind: str = "smart") -> Invoice:
        """A new invoice typed in the UI, issued today, with the lines of an existing one of that kind."""
        like = next(i for i in self.world.invoices["bitrix24"] if i.kind == kind and not i.deleted)
        now = self.now()
        inv = Invoice("bitrix24", self.world.next_invoice_id("bitrix24"), f"N-{len(self.world.invoices['bitrix24'])}",
                      like.client_id, like.deal_id, now, self.world.today, self.world.today + timedelta(days=10),
                      like.currency, [R.Line(ln.name, ln.quantity, ln.unit_price, ln.vat_rate, ln.vat_included)
                                      for ln in like.lines], kind=kind)
        inv.updated_at = now
        inv.extra.update(b24_recurring_id=None, **({"b24_category": like.extra.get("b24_category", 3)}
                                                    if kind == "smart" else {}))
        self.world.invoices["bitrix24"].append(inv)
        return inv

    def rotate_webhook_secret(self, secret: str = "sbxRotated0secret") -> None:
        """An admin edits the inbound webhook: its secret rotates, the old URL answers NO_AUTH_FOUND."""
        self.portal.webhook_secret = secret

    def fail_method(self, method: str, error: object = "ACCESS_DENIED", description: str = "Доступ запрещен",
                    status: int = 403) -> None:
        """Every call of ``method`` fails (inside a batch: that command's ``result_error``)."""
        self.failing[method] = (error, description, status)

    def block_method(self, method: str, seconds: float) -> None:
        self.blocked[method] = _time.time() + seconds

    # ---- HTTP ------------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.path.startswith(self.token_path):
            return self._token(request)
        started = _time.time()
        try:
            params = self._params(request)
            method = self._authenticate(request, params)
            if not self.bucket.admit():
                self.rate_limited += 1
                raise BitrixError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)
            self._check_block(method)
            if method == "batch":
                result = self._batch(params)
                return self._ok({"result": result, "time": self._time(started)})
            return self._ok({**self._call(method, params), "time": self._time(started)})
        except BitrixError as err:
            body: dict = {"error": err.code, "error_description": err.description}
            if err.code == "OPERATION_TIME_LIMIT":
                body["time"] = self._time(started)
            return Response.json(body, status=err.status)

    def _ok(self, payload: dict) -> Response:
        return Response.json(payload, encoder=lambda o: json.dumps(o, ensure_ascii=False))

    def _time(self, started: float) -> dict:
        now = _time.time()
        time_ = {"start": started, "finish": now, "duration": now - started, "processing": now - started,
                 "date_start": datetime.fromtimestamp(started, self.zone).isoformat(timespec="seconds"),
                 "date_finish": datetime.fromtimestamp(now, self.zone).isoformat(timespec="seconds"),
                 "operating": 0}
        until = max(self.blocked.values(), default=0)
        if until > now:
            time_["operating_reset_at"] = int(until) + 1
        return time_

    def _params(self, request: Request) -> dict:
        ctype = (request.header("Content-Type") or "").split(";")[0].strip()
        pairs = [(k, v) for k, vs in request.query.items() for v in vs]
        if ctype == "application/json" and request.body.strip():
            try:
                body = json.loads(request.body)
            except ValueError:
                raise BitrixError("INVALID_REQUEST", "Invalid JSON in request body", 400) from None
            params = php_params(pairs)
            if isinstance(body, dict):
                params.update(body)
            return params
        if request.body:
            pairs += parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
        return php_params(pairs)

    def _check_block(self, method: str) -> None:
        if self.blocked.get(method, 0) > _time.time():
            raise BitrixError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429)

    # ---- methods -------------------------------------------------------------------------------------
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
        invoices = sorted(self._live(kinds), key=lambda i: i.id)
        if fast and (flt is None or isinstance(flt, dict)):
            rest = dict(flt or {})
            bound = rest.pop(f">{id_field}", "")
            if str(bound).lstrip("-").isdigit():
                invoices = [i for i in invoices if i.id > int(bound)]
            rows: list[dict] = []
            for inv in invoices:
                row = self._render(inv)
                if not rest or filter_rows([row], rest, fields, self.zone):
                    rows.append(row)
                    if len(rows) == PAGE:
                        break
            return {"rows": rows, "total": 0}
        rows = filter_rows([self._render(i) for i in invoices], flt, fields, self.zone)
        return self._page(order_rows(rows, order, fields), params)

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
