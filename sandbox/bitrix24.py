"""Bitrix24 portal emulator (``/rest/``) and its OAuth server (``/oauth/token/``), rendered from the world.

Behaviour follows ``shared/api/bitrix24.md``: inbound webhooks (``/rest/<user>/<secret>/<method>``) and OAuth
(``/rest/<method>`` with ``auth``), params as a JSON body or PHP-style brackets (``filter[>id]=5``),
``crm.item.*`` in camelCase with real JSON numbers and ISO datetimes carrying the portal's offset, the legacy
``crm.invoice.*`` family in UPPER_CASE with strings for numbers and ``ID DESC`` as default order, pages of 50
with ``start=-1`` switching counting off, ``batch`` (at most 50 commands, ``$result[...]`` references,
``result_error`` / ``result_next``, empty maps as ``[]``), a per-portal leaky bucket answering 503
``QUERY_LIMIT_EXCEEDED``, per-method ``OPERATION_TIME_LIMIT`` blocks (429), access tokens that expire and
refresh tokens that rotate on every use.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from . import bitrix24_render as R
from .server import Faults, Request, Response
from .world import Invoice, World

PAGE = 50
REF = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]*\])*)")


@dataclass
class Bitrix24Portal:
    """Options of the emulated portal (``make_sandbox(bitrix24={...})``)."""

    webhook_user: int = 1
    webhook_secret: str = "sbx4hook9q2w7e1r"
    client_id: str = "local.sandbox0000000001"
    client_secret: str = "sbxClientSecret1234567890abcdef"
    refresh_token: str = "sbx-refresh-0000000000000000"  # the one the app was installed with
    access_ttl: float = 3600.0
    timezone: str = "Europe/Moscow"
    requests_per_second: float = 2.0  # the leaky bucket: drain per second ...
    burst: int = 50  # ... and the level above which requests get 503 (Enterprise: 5/s and 250)
    base_currency: str = "RUB"
    batch_errors_as_list: bool = False  # a captured quirk (C7): result_error as a list naming no command


@dataclass
class _Bucket:
    rate: float
    burst: int
    level: float = 0.0
    stamp: float = field(default_factory=_time.monotonic)

    def admit(self) -> bool:
        now = _time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


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


class Bitrix24Provider:
    name = "bitrix24"
    prefix = "/rest/"
    token_path = "/oauth/token/"

    def __init__(self, world: World, **options):
        self.world = world
        self.portal = Bitrix24Portal(**options)
        self.zone = ZoneInfo(self.portal.timezone)
        self.faults = Faults()
        self.bucket = _Bucket(self.portal.requests_per_second, self.portal.burst)
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
        from .world import Payment

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

    def revoke_app(self) -> None:
        """An admin uninstalls the app (or revokes its access): every token stops working."""
        with self._lock:
            self.access_tokens.clear()
            self.refresh_tokens.clear()

    def rotate_webhook_secret(self, secret: str = "sbxRotated0secret") -> None:
        """An admin edits the inbound webhook: its secret rotates, the old URL answers NO_AUTH_FOUND."""
        self.portal.webhook_secret = secret

    def expire_access_tokens(self) -> None:
        with self._lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0.0

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

    def _authenticate(self, request: Request, params: dict) -> str:
        parts = [p for p in request.path[len(self.prefix):].split("/") if p]
        if len(parts) >= 3:  # /rest/<user>/<secret>/<method>
            user, secret, method = parts[0], parts[1], parts[2]
            if user != str(self.portal.webhook_user) or secret != self.portal.webhook_secret:
                raise BitrixError("NO_AUTH_FOUND", "Wrong authorization data", 401)
            return method.removesuffix(".json")
        if len(parts) != 1:
            raise BitrixError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        token = params.pop("auth", None)
        with self._lock:
            expiry = self.access_tokens.get(token) if token else None
        if expiry is None:
            raise BitrixError("NO_AUTH_FOUND" if not token else "invalid_token",
                              "Wrong authorization data" if not token else "Unable to get application by token",
                              401)
        if expiry < _time.monotonic():
            raise BitrixError("expired_token", "The access token provided has expired.", 401)
        return parts[0].removesuffix(".json")

    def _token(self, request: Request) -> Response:
        params = self._params(request)
        if params.get("grant_type") != "refresh_token":
            return Response.json({"error": "invalid_request", "error_description": "grant_type"}, status=400)
        if params.get("client_id") != self.portal.client_id or params.get("client_secret") != self.portal.client_secret:
            return Response.json({"error": "invalid_client", "error_description": "Invalid client"}, status=401)
        with self._lock:
            old = params.get("refresh_token")
            if old not in self.refresh_tokens:
                return Response.json({"error": "invalid_grant", "error_description": "Invalid refresh token"},
                                     status=400)
            self.refresh_tokens.discard(old)  # refresh tokens rotate: each one works once
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            self.refresh_tokens.add(refresh)
            self.access_tokens[access] = _time.monotonic() + self.portal.access_ttl
            self.refreshes += 1
        return Response.json({"access_token": access, "refresh_token": refresh, "expires_in": int(self.portal.access_ttl),
                              "expires": int(_time.time() + self.portal.access_ttl), "scope": "crm",
                              "domain": "oauth.bitrix24.tech", "member_id": "sandbox", "status": "L",
                              "client_endpoint": "/rest/", "server_endpoint": "/rest/", "user_id": 1})

    def _check_block(self, method: str) -> None:
        if self.blocked.get(method, 0) > _time.time():
            raise BitrixError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.", 429)

    # ---- batch -------------------------------------------------------------------------------------------
    def _batch(self, params: dict) -> dict:
        cmd = params.get("cmd")
        halt = str(params.get("halt", "0")) in ("1", "true", "True")
        if isinstance(cmd, list):
            cmd = {str(i): c for i, c in enumerate(cmd)}
        if not isinstance(cmd, dict) or not cmd:
            raise BitrixError("ERROR_BATCH_METHOD_NOT_ALLOWED" if cmd else "INVALID_ARG_VALUE",
                              "Batch commands are missing", 400)
        if len(cmd) > PAGE:
            raise BitrixError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)
        results, errors, totals, nexts, times = {}, {}, {}, {}, {}
        expire_after, self.expire_in_batch_after = self.expire_in_batch_after, None
        for n, (key, line) in enumerate(cmd.items()):
            started = _time.time()
            if expire_after is not None and n >= expire_after:
                # the access token ran out while the portal worked through the batch: the later commands fail
                self.expire_access_tokens()
                errors[key] = {"error": "expired_token", "error_description": "The access token provided has expired."}
                continue
            method, _, query = str(line).partition("?")
            method = method.strip("/").removesuffix(".json")
            pairs = [(k, self._resolve(v, results)) for k, v in parse_qsl(query, keep_blank_values=True)]
            try:
                if method == "batch":
                    raise BitrixError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405)
                self._check_block(method)
                out = self._call(method, php_params(pairs))
            except BitrixError as err:
                errors[key] = {"error": err.code, "error_description": err.description}
                if halt:
                    break
                continue
            results[key] = out["result"]
            if "total" in out:
                totals[key] = out["total"]
            if "next" in out:
                nexts[key] = out["next"]
            times[key] = self._time(started)
        # PHP's json_encode writes an empty array for an empty map: clients must accept both shapes
        if errors and self.portal.batch_errors_as_list:
            errors = list(errors.values())
        return {"result": results or [], "result_error": errors or [], "result_total": totals or [],
                "result_next": nexts or [], "result_time": times or []}

    @staticmethod
    def _resolve(value: str, results: dict) -> str:
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
                if not rest or _filter([row], rest, fields, self.zone):
                    rows.append(row)
                    if len(rows) == PAGE:
                        break
            return {"rows": rows, "total": 0}
        rows = _filter([self._render(i) for i in invoices], flt, fields, self.zone)
        return self._page(_order(rows, order, fields), params)

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
        page = self._list(("smart",), params, _SMART_FIELDS, "id", {"id": "ASC"})
        select = params.get("select")
        rows = [_select(r, select, "id") for r in page.pop("rows")]
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
        rows = _order(rows, params.get("order") or {"id": "ASC"}, {"id": int})
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
        page = self._list(("legacy", "template"), params, _LEGACY_FIELDS, "ID", {"ID": "DESC"})  # CORE default
        select = params.get("select")
        return {"result": [_select(r, select, "ID") for r in page.pop("rows")], **page}

    def _company_list(self, params: dict) -> dict:
        """Clients as CRM companies, in the old UPPER_CASE family (ids as strings)."""
        rows = [{"ID": str(c.id), "TITLE": c.name, "COMPANY_TYPE": "CUSTOMER", "INDUSTRY": "IT",
                 "DATE_CREATE": R.iso(datetime(2025, 1, 1, 9, tzinfo=UTC), self.zone),
                 "DATE_MODIFY": R.iso(datetime(2025, 1, 1, 9, tzinfo=UTC), self.zone)} for c in self.world.clients]
        rows = _filter(rows, params.get("filter"), {"ID": int, "DATE_MODIFY": "dt"}, self.zone)
        rows = _order(rows, params.get("order") or {"ID": "ASC"}, {"ID": int, "DATE_MODIFY": "dt"})
        page = self._page(rows, params)
        return {"result": [_select(r, params.get("select"), "ID") for r in page.pop("rows")], **page}

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


# ---- filters, order, select -------------------------------------------------------------------------------
def _dt(value: object, zone: ZoneInfo) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)  # no offset: the server's zone


_SMART_FIELDS = {"id": int, "updatedTime": "dt", "createdTime": "dt", "categoryId": int, "stageId": str,
                 "currencyId": str, "companyId": int, "accountNumber": str}
_LEGACY_FIELDS = {"ID": int, "DATE_UPDATE": "dt", "DATE_INSERT": "dt", "STATUS_ID": str, "IS_RECURRING": str,
                  "CURRENCY": str, "ACCOUNT_NUMBER": str, "RECURRING_ID": int}
_OPS = (">=", "<=", "!@", "!=", ">", "<", "@", "=", "!")


def _coerce(value: object, kind, zone: ZoneInfo):
    if kind == "dt":
        return _dt(value, zone)
    if kind is int:
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    return None if value is None else str(value)


def _filter(rows: list[dict], flt: object, fields: dict, zone: ZoneInfo) -> list[dict]:
    if not flt:
        return rows
    if not isinstance(flt, dict):
        raise BitrixError("", "Parameter 'filter' must be array.", 400)
    for key, raw in flt.items():
        op = next((o for o in _OPS if key.startswith(o)), "")
        name = key[len(op):]
        if name not in fields:
            raise BitrixError("INVALID_ARG_VALUE", f"Invalid filter: field '{name}' is not allowed in filter", 400)
        kind = fields[name]
        if raw == "" and op in (">", ">=", "<", "<="):
            continue  # an empty bound (an unresolved batch reference) filters nothing
        if op in ("@", "!@"):
            wanted = {_coerce(v, kind, zone) for v in (raw if isinstance(raw, list) else [raw])}
            rows = [r for r in rows if (_coerce(r.get(name), kind, zone) in wanted) == (op == "@")]
            continue
        value = _coerce(raw, kind, zone)
        out = []
        for r in rows:
            have = _coerce(r.get(name), kind, zone)
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


def _order(rows: list[dict], order: object, fields: dict) -> list[dict]:
    if not isinstance(order, dict):
        return rows
    for name, direction in reversed(list(order.items())):
        kind = fields.get(name, str)
        if name not in fields and name not in ("id",):
            raise BitrixError("INVALID_ARG_VALUE", f"Invalid order: field '{name}'", 400)
        rows = sorted(rows, key=lambda r: (r.get(name) is None, _coerce(r.get(name), kind, UTC) or 0
                                           if kind is int else str(r.get(name) or "")),
                      reverse=str(direction).upper() == "DESC")
    return rows


def _select(row: dict, select: object, id_field: str) -> dict:
    if not isinstance(select, list) or not select or "*" in select:
        return row
    keep = set(select) | {id_field}
    return {k: v for k, v in row.items() if k in keep}


# ---- ground truth for the marts -----------------------------------------------------------------------------
def _source_id(inv: Invoice) -> str:
    return f"{'SI' if inv.kind == 'smart' else 'I'}:{inv.id}"


def _status(inv: Invoice) -> str:
    if inv.status in ("cancelled", "draft"):
        return inv.status
    paid, gross = inv.amount_paid, inv.totals()[2]
    if paid >= gross and paid > 0:
        return "paid"
    return "partially_paid" if paid > 0 else "issued"


def expected_invoices(world: World, account: str = "sandbox") -> list[dict]:
    """What ``marts.fct_invoices`` must hold for Bitrix24, from the world's invoices (templates excluded)."""
    R.assign_kinds(world)
    out = []
    for inv in world.invoices["bitrix24"]:
        if inv.kind == "template":
            continue
        _net, vat, gross = inv.totals()
        status = _status(inv)
        # smart invoices count their payment records whatever the stage (money received on a cancelled invoice
        # is still received); a paid stage set by hand without records has none
        paid = inv.amount_paid if status in ("paid", "partially_paid") or inv.kind == "smart" else Decimal("0.00")
        if inv.extra.get("no_payment_records"):
            paid = Decimal("0.00")
        rates = inv.vat_rates()
        rate = next(iter(rates)) if len(rates) == 1 else None
        out.append({
            "invoice_key": f"bitrix24:{account}:{_source_id(inv)}", "source_system": "bitrix24",
            "account": account, "invoice_number": inv.number, "deal_id": str(inv.deal_id),
            "client_id": str(inv.client_id), "client_name": world.client(inv.client_id).name,
            "issue_date": inv.issue_date, "due_date": inv.due_date,
            "paid_date": max(p.paid_on for p in inv.booked_payments)
            if status == "paid" and not inv.extra.get("no_payment_records") else None,
            "status": status, "currency": inv.currency, "amount_gross": gross, "vat_amount": vat,
            "amount_net": gross - vat, "vat_rate": R.quantize_rate(rate), "amount_paid": paid,
            "amount_due": gross - paid, "is_deleted": inv.deleted,
            "fx_rate_to_reporting": world.rate(inv.currency, world.today)
            if (inv.currency, world.today) in world.rates or inv.currency == "RUB" else None,
        })
    return out


def expected_lines(world: World, account: str = "sandbox") -> list[dict]:
    R.assign_kinds(world)
    out = []
    for inv in world.invoices["bitrix24"]:
        if inv.kind == "template":
            continue
        for n, line in enumerate(inv.lines, start=1):
            net, vat, gross = line.amounts()
            out.append({"invoice_key": f"bitrix24:{account}:{_source_id(inv)}", "line_number": n,
                        "product_name": line.name, "quantity": line.quantity, "unit_price": line.unit_price,
                        "vat_rate": None if line.vat_rate is None else line.vat_rate.quantize(Decimal("0.0001")),
                        "vat_amount": vat, "amount_net": net, "amount_gross": gross})
    return out


def expected_payments(world: World, account: str = "sandbox") -> list[dict]:
    """Booked payments: smart invoices' own payment records, legacy invoices' derived one (paid status)."""
    R.assign_kinds(world)
    out = []
    for inv in world.invoices["bitrix24"]:
        key = f"bitrix24:{account}:{_source_id(inv)}"
        if inv.kind == "smart" and not inv.extra.get("no_payment_records"):
            for n, p in enumerate(inv.payments, start=1):
                if p.via != "undone":
                    out.append({"payment_key": f"bitrix24:{account}:PAY:{inv.id * 10 + n}", "invoice_key": key,
                                "paid_date": p.paid_on, "amount": p.amount, "currency": inv.currency,
                                "is_derived": False})
        elif inv.kind == "legacy" and _status(inv) == "paid":
            out.append({"payment_key": f"{key}:paid", "invoice_key": key,
                        "paid_date": max(p.paid_on for p in inv.booked_payments), "amount": inv.totals()[2],
                        "currency": inv.currency, "is_derived": True})
    return out
