"""ONLYOFFICE CRM (Workspace / CommunityServer API 2.0) emulator at ``/api/2.0/``, rendered from the world.

Behaviour follows ``shared/api/onlyoffice.md``: ``POST authentication`` for a token (201; a wrong password is
HTTP 500 "User authentication failed"; more than 5 failures a minute lock the login), the raw token (or
``Bearer``/``Basic``) in ``Authorization``, 401 as plain text; camelCase wrappers in the ApiStandartResponce
envelope with default-valued keys omitted, an off-by-one ``nextIndex`` and a ``total`` cached for 30 s across
filters; pages of at most 1000 (``count`` silently capped); ``sortBy=id`` only from 12.7 (older servers fall
back to the default number order, sorted as a string); cost computed from the lines on every read with the
current tax rates; status transitions from InvoiceDao (illegal ones silently ignored); hard deletes.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from ..server import Faults, Request, Response
from ..world import PRODUCTS, Invoice, Line, Payment, World, q2
from . import wire
from .ledger import (
    DRAFT,
    PAID,
    REJECTED,
    SENT,
    STATUS_TITLES,
    SYSTEM,
    TRANSITIONS,
    OOLine,
    OOState,
    Tax,
    default_taxes,
    invoice_cost,
    is_vat,
    normalise_world,
    oo_id,
    state,
)

CURRENCY_INFO = {
    "RUB": {"title": "Российский рубль", "symbol": "₽", "abbreviation": "RUB", "cultureName": "RU",
            "isConvertable": True, "isBasic": True},
    "USD": {"title": "United States Dollar", "symbol": "$", "abbreviation": "USD", "cultureName": "US",
            "isConvertable": True, "isBasic": True},
    "EUR": {"title": "Euro", "symbol": "€", "abbreviation": "EUR", "cultureName": "EU",
            "isConvertable": True, "isBasic": True},
    "CNY": {"title": "Chinese Yuan", "symbol": "¥", "abbreviation": "CNY", "cultureName": "CN",
            "isConvertable": True, "isBasic": False},
}
ADMIN = {"id": "6a1c3f0e-0d3b-4f55-9a57-3c1e0d9b7a11", "displayName": "Администратор CRM",
         "avatarSmall": "/skins/default/images/default_user_photo_size_32-32.png",
         "profileUrl": "/Products/People/Profile.aspx?user=crm.admin"}
STATUS_NAMES = {"draft": 1, "sent": 2, "rejected": 3, "paid": 4, "archived": 5}


@dataclass
class OnlyofficePortal:
    username: str = "crm.admin@sandbox.local"
    password: str = "sandbox-oo-Pa55word!"
    token: str = "sandbox-onlyoffice-token-5f2c9e"  # a token issued earlier (what a user pastes into TOKEN)
    timezone: str = "Europe/Moscow"
    default_currency: str = "RUB"
    max_page: int = 1000  # web.autofac.config maxPage
    version: str = "12.7.1"
    total_cache_seconds: float = 30.0
    throttle_next: int = 0  # the next N requests get the cloud's 503 with Retry-After
    retry_after: int = 1
    # The cloud's limit (basic-concepts.md): more than rate_limit requests within rate_window seconds answer
    # 503 with Retry-After = the seconds until the oldest counted request leaves the window. 0 = off (self-hosted).
    rate_limit: int = 0
    rate_window: float = 10.0
    login_attempts: int = 5  # BruteForceLoginManager: more failures than this within a minute lock the login


class OnlyofficeProvider:
    name = "onlyoffice"
    prefix = "/api/2.0/"

    def __init__(self, world: World, **options):
        self.world = world
        self.portal = OnlyofficePortal(**options)
        self.zone = ZoneInfo(self.portal.timezone)
        self.faults = Faults()
        self.taxes: dict[int, Tax] = default_taxes()
        self.tokens: set[str] = {self.portal.token}
        self.failures: dict[str, list[float]] = {}
        self.expired: set[str] = set()  # tokens that were valid once (an expired token is refused like any other)
        self.throttled = 0  # 503s answered for the rate limit or throttle_next
        self._window: deque[float] = deque()  # times of the requests the rate limit counted
        self._total_cache: tuple[int, float] | None = None
        self._by_id: dict[int, Invoice] = {}  # portal id -> invoice; checked on every hit, rebuilt on a miss
        normalise_world(world, self.portal.default_currency)

    # ---- test helpers ------------------------------------------------------------------------------------
    def _invoice(self, invoice_id: int) -> Invoice | None:
        """The live invoice with this portal id. Through an index (a scan of the portal per ``invoice/{id}``
        made a first load quadratic: 200k invoices never finished); a hit is checked against the invoice
        itself and a miss rebuilds the index, so invoices added, deleted or changed meanwhile answer as a
        scan would."""
        inv = self._by_id.get(invoice_id)
        if inv is not None and not inv.deleted and oo_id(inv) == invoice_id:
            return inv
        index: dict[int, Invoice] = {}
        for i in self.world.invoices[SYSTEM]:
            if not i.deleted:
                index.setdefault(oo_id(i), i)
        self._by_id = index
        return index.get(invoice_id)

    def delete_invoice(self, world_id: int) -> None:
        next(i for i in self.world.invoices[SYSTEM] if i.id == world_id).deleted = True

    def revoke_tokens(self) -> None:
        """"Log out of all sessions": every issued token stops working (the configured one too)."""
        self.tokens.clear()

    def expire_tokens(self) -> None:
        """Every token issued so far reaches its ``expires`` now; the portal answers 401 for it from here on."""
        self.expired |= self.tokens
        self.tokens.clear()

    def change_password(self, password: str) -> None:
        """A password change bumps the user's session index: the old password and every token stop working."""
        self.portal.password = password
        self.revoke_tokens()

    def call(self, method: str, route: str, payload: dict | None = None) -> dict:
        """An API call made in-process (from an ``on_request`` hook: no HTTP, not counted, no faults), as the
        web UI or another API client would make it between the source's requests."""
        basic = base64.b64encode(f"{self.portal.username}:{self.portal.password}".encode()).decode()
        request = Request(method, f"{self.prefix}crm/{route}", {}, {"Authorization": f"Basic {basic}",
                                                                     "Content-Type": "application/json"},
                          json.dumps(payload or {}, default=str).encode())
        with self.world.lock:
            response = self._serve(request)
        body = json.loads(response.body)
        if response.status >= 400:
            raise AssertionError(f"{method} {route}: HTTP {response.status} {body}")
        return body["response"]

    @property
    def supports_sort_by_id(self) -> bool:
        major, minor = (int(x) for x in self.portal.version.split(".")[:2])
        return (major, minor) >= (12, 7)

    # ---- protocol ----------------------------------------------------------------------------------------
    def route(self, request: Request) -> str:
        path = request.path[len(self.prefix):]
        for suffix in (".json",):
            if path.endswith(suffix):
                path = path[: -len(suffix)]
        return path.removeprefix("crm/")

    def method_key(self, request: Request) -> str:
        parts = ["{id}" if p.isdigit() else p for p in self.route(request).split("/")]
        key = "/".join(parts)
        return key if request.method == "GET" else f"{request.method} {key}"

    def demo_env(self, base_url: str) -> dict[str, str]:
        return {"SOURCES__ONLYOFFICE__BASE_URL": base_url, "SOURCES__ONLYOFFICE__USERNAME": self.portal.username,
                "SOURCES__ONLYOFFICE__PASSWORD": self.portal.password, "SOURCES__ONLYOFFICE__ACCOUNT": "sandbox"}

    def handle(self, request: Request) -> Response:
        wait = self._throttle()
        if wait is not None:
            self.throttled += 1
            return Response(503, b"<html><body>503 Service Temporarily Unavailable</body></html>",
                            {"Content-Type": "text/html", "Retry-After": str(wait)})
        return self._serve(request)

    def _serve(self, request: Request) -> Response:
        route = self.route(request)
        if route == "authentication":
            return self._authenticate(request) if request.method == "POST" else wire.error(405, "Method not allowed")
        if not self._authorized(request):
            return wire.unauthorized(request.header("Authorization") is not None)
        parts = route.split("/")
        verb = request.method
        try:
            if parts[0] == "invoice":
                return self._invoice_routes(verb, parts[1:], request)
            if route == "invoiceitem/filter" and verb == "GET":
                return self._items(request)
            if route == "currency/rates" and verb == "GET":
                return self._rates()
        except _ApiError as exc:
            return wire.error(exc.status, exc.message)
        return wire.error(404, "Not found")

    def _invoice_routes(self, verb: str, rest: list[str], request: Request) -> Response:
        head = rest[0] if rest else ""
        if verb == "GET" and head == "filter":
            return self._filter(request)
        if verb == "GET" and head == "sample":
            return wire.envelope(self._sample())
        if head == "tax":
            if verb == "GET" and len(rest) == 1:
                return wire.envelope([self._tax(t) for t in self.taxes.values()])
            if verb == "PUT" and len(rest) == 2 and rest[1].isdigit():
                return self._update_tax(int(rest[1]), request)
        if verb == "PUT" and head == "status" and len(rest) == 2:
            return self._set_status(rest[1], request)
        if verb == "POST" and not rest:
            return self._create(request)
        if head.isdigit() and len(rest) == 1:
            inv = self._invoice(int(head))
            if inv is None:
                raise _ApiError(404, "Not found")
            if verb == "GET":
                return wire.envelope(self._full(inv))
            if verb == "DELETE":
                body = self._full(inv)
                inv.deleted = True
                return wire.envelope(body)
        raise _ApiError(404, "Not found")

    def _throttle(self) -> int | None:
        """Retry-After seconds when the cloud's edge refuses this request, else None (and it is counted)."""
        if self.portal.throttle_next > 0:
            self.portal.throttle_next -= 1
            return self.portal.retry_after
        if not self.portal.rate_limit:
            return None
        now = time.monotonic()
        while self._window and now - self._window[0] >= self.portal.rate_window:
            self._window.popleft()
        if len(self._window) >= self.portal.rate_limit:  # refused requests are not counted (nginx limit_req)
            return max(1, math.ceil(self._window[0] + self.portal.rate_window - now))
        self._window.append(now)
        return None

    # ---- auth --------------------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        raw = request.header("Authorization")
        if not raw:
            return False
        scheme, _, value = raw.partition(" ")
        if scheme.lower() == "bearer":
            return value in self.tokens
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return (user, password) == (self.portal.username, self.portal.password)
        return raw in self.tokens

    def _authenticate(self, request: Request) -> Response:
        params = {k.lower(): v for k, v in self._body(request).items()}
        user, password = str(params.get("username") or ""), str(params.get("password") or "")
        now = time.monotonic()
        recent = [t for t in self.failures.get(user, []) if now - t < 60]
        self.failures[user] = recent
        if len(recent) > self.portal.login_attempts:
            return wire.error(500, "Login Fail. Too many attempts")
        if (user, password) != (self.portal.username, self.portal.password):
            recent.append(now)
            return wire.error(500, "User authentication failed")
        token = secrets.token_hex(24)
        self.tokens.add(token)
        expires = wire.api_datetime(datetime.now(UTC) + timedelta(days=365), self.zone)
        return wire.envelope({"token": token, "expires": expires}, status_code=201)

    # ---- reading -----------------------------------------------------------------------------------------
    @staticmethod
    def _query(request: Request, name: str) -> str | None:
        """Parameters match case-insensitively and only the first value of a scalar counts."""
        for key, values in request.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None

    def _page(self, request: Request, rows: list) -> tuple[list, int, int, int | None]:
        try:
            start = max(0, int(self._query(request, "startIndex") or 0))
        except ValueError:
            start = 0
        raw = self._query(request, "count")
        count = min(self.portal.max_page, int(raw)) if raw and raw.isdigit() else self.portal.max_page
        count = max(count, 1)  # count=0 is degenerate and answers one row
        page = rows[start:start + count]
        more = len(rows) - start > count
        return page, start, count, (start + count + 1) if more else None  # the server's off-by-one

    def _filter(self, request: Request) -> Response:
        rows = [i for i in self.world.invoices[SYSTEM] if not i.deleted]
        status = self._query(request, "status")
        if status:
            wanted = int(status) if status.isdigit() else STATUS_NAMES.get(status.lower())
            if wanted is None:
                raise _ApiError(400, f"Requested value '{status}' was not found.")
            rows = [i for i in rows if state(i).status == wanted]
        currency = self._query(request, "currency")
        if currency:
            rows = [i for i in rows if i.currency == currency]
        sort_by = (self._query(request, "sortBy") or "").lower()
        keys = {"number": lambda i: i.number, "issuedate": lambda i: (i.issue_date, i.id),
                "duedate": lambda i: (i.due_date, i.id), "status": lambda i: (state(i).status, i.id),
                "contact": lambda i: (self.world.client(i.client_id).name, i.id)}
        if self.supports_sort_by_id:
            keys["id"] = lambda i: i.id
        rows.sort(key=keys.get(sort_by, keys["number"]), reverse=self._query(request, "sortOrder") == "descending")
        page, start, count, next_index = self._page(request, rows)
        if len(page) < count:
            total = start + len(page)
        else:  # GetInvoicesCount, cached for 30 s under a key that ignores every filter
            now = time.monotonic()
            if self._total_cache is None or now - self._total_cache[1] > self.portal.total_cache_seconds:
                self._total_cache = (len(rows), now)
            total = self._total_cache[0]
        return wire.envelope([self._base(i) for i in page], start_index=start, next_index=next_index,
                             total=total)

    def _contact(self, client_id: int) -> dict:
        return {"id": client_id, "smallFotoUrl": "/skins/default/images/empty_company_logo_40_40.png",
                "mediumFotoUrl": "/skins/default/images/empty_company_logo_90_90.png",
                "displayName": self.world.client(client_id).name, "isCompany": True, "isPrivate": False,
                "isShared": False, "shareType": 0, "currency": None, "canEdit": True, "canDelete": False}

    def _base(self, inv: Invoice) -> dict:
        st = state(inv)
        cost, _vat = invoice_cost(inv, self.taxes)
        deal = self.world.deal(inv.deal_id)
        return {
            "id": oo_id(inv), "status": {"id": st.status, "title": STATUS_TITLES[st.status]},
            "number": inv.number, "issueDate": wire.api_date(inv.issue_date, self.zone), "templateType": 1,
            "contact": self._contact(inv.client_id), "consignee": None,
            "entity": {"entityType": "opportunity", "entityId": deal.id, "entityTitle": deal.title},
            "dueDate": wire.api_date(inv.due_date, self.zone), "language": "ru-RU",
            "currency": CURRENCY_INFO[inv.currency], "exchangeRate": st.exchange_rate,
            "purchaseOrderNumber": "", "terms": "Оплата в течение 5 банковских дней", "description": "",
            "fileID": 0, "createOn": wire.api_datetime(inv.created_at, self.zone), "createBy": ADMIN,
            "cost": cost, "canEdit": st.status == DRAFT, "canDelete": True,
        }

    def _full(self, inv: Invoice) -> dict:
        lines = [{"id": ol.id, "invoiceID": oo_id(inv), "invoiceItemID": ol.item_id, "invoiceTax1ID": ol.tax1,
                  "invoiceTax2ID": ol.tax2, "sortOrder": ol.sort_order, "description": line.name,
                  "quantity": line.quantity, "price": line.unit_price, "discount": q2(ol.discount)}
                 for line, ol in sorted(zip(inv.lines, state(inv).lines, strict=True), key=lambda p: p[1].sort_order)]
        return {"invoiceLines": lines, **self._base(inv)}

    def _tax(self, tax: Tax) -> dict:
        return {"id": tax.id, "name": tax.name, "description": tax.description, "rate": q2(tax.rate),
                "createOn": wire.api_datetime(datetime(2024, 1, 9, 7, 30, tzinfo=UTC), self.zone),
                "createBy": ADMIN, "canEdit": True, "canDelete": False}

    def _sample(self) -> dict:
        today = self.world.today
        return {"id": 0, "status": {"id": DRAFT, "title": STATUS_TITLES[DRAFT]},
                "number": f"INV-{len(self.world.invoices[SYSTEM]) + 1:06d}",
                "issueDate": wire.api_date(today, self.zone), "templateType": 1, "contact": None, "consignee": None,
                "entity": None, "dueDate": wire.api_date(today + timedelta(days=30), self.zone), "language": "ru-RU",
                "currency": CURRENCY_INFO[self.portal.default_currency], "exchangeRate": Decimal("1.00"),
                "purchaseOrderNumber": "", "terms": "Оплата в течение 5 банковских дней", "description": "",
                "fileID": 0, "createOn": wire.api_datetime(datetime.now(UTC), self.zone), "createBy": ADMIN,
                "cost": Decimal("0.00"), "canEdit": True, "canDelete": True, "invoiceLines": []}

    def _items(self, request: Request) -> Response:
        items = []
        for idx, (title, price) in enumerate(PRODUCTS, start=1):
            vat = self.taxes.get(1)
            items.append({"id": idx, "title": title, "stockKeepingUnit": f"SKU-{idx:03d}", "description": "",
                          "price": q2(price), "currency": CURRENCY_INFO[self.portal.default_currency],
                          "stockQuantity": Decimal("0.00"), "trackInvenory": False,
                          "invoiceTax1": self._tax(vat) if vat else None, "invoiceTax2": None,
                          "createOn": wire.api_datetime(datetime(2024, 1, 9, 8, idx, tzinfo=UTC), self.zone),
                          "createBy": ADMIN, "canEdit": True, "canDelete": True})
        page, start, count, next_index = self._page(request, items)
        total = start + len(page) if len(page) < count else len(items)
        return wire.envelope(page, start_index=start, next_index=next_index, total=total)

    def _rates(self) -> Response:
        base = self.portal.default_currency
        out = []
        for n, code in enumerate((c for c in CURRENCY_INFO if c != base), start=1):
            rate = self.world.rate(code, self.world.today) / self.world.rate(base, self.world.today)
            out.append({"id": n, "fromCurrency": code, "toCurrency": base, "rate": q2(rate, ROUND_HALF_UP)})
        return wire.envelope(out)

    # ---- writing -----------------------------------------------------------------------------------------
    def _body(self, request: Request) -> dict:
        ctype = (request.header("Content-Type") or "").lower()
        if "json" in ctype:
            try:
                body = json.loads(request.body or b"{}", parse_float=Decimal)
            except ValueError:
                raise _ApiError(400, "Invalid JSON") from None
            return body if isinstance(body, dict) else {}
        pairs = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        return {k.removesuffix("[]"): (v if k.endswith("[]") else v[0]) for k, v in pairs.items()}

    def _create(self, request: Request) -> Response:
        body = {k.lower(): v for k, v in self._body(request).items()}
        number = str(body.get("number") or "").strip()
        if not number:
            raise _ApiError(400, "Value cannot be null.\r\nParameter name: number")
        if any(i.number == number for i in self.world.invoices[SYSTEM] if not i.deleted):
            raise _ApiError(400, "Invoice with the same number is already exist")
        try:
            contact = int(body.get("contactid") or 0)
            self.world.client(contact) if contact > 0 else None
        except (ValueError, IndexError):
            contact = 0
        if contact <= 0:
            raise _ApiError(404, "Not found")
        currency = str(body.get("currency") or self.portal.default_currency).upper()
        if currency not in CURRENCY_INFO:
            raise _ApiError(400, f"Currency {currency} is not supported")
        rate = _dec(body.get("exchangerate", "1"))
        if rate is None or rate <= 0:
            raise _ApiError(400, "Exchange rate must be positive")
        try:
            issue = wire.parse_api_datetime(str(body["issuedate"]), self.zone).astimezone(self.zone).date()
            due = wire.parse_api_datetime(str(body["duedate"]), self.zone).astimezone(self.zone).date()
        except (KeyError, ValueError):
            raise _ApiError(400, "issueDate and dueDate are required dates") from None
        raw_lines = body.get("invoicelines") or []
        if not isinstance(raw_lines, list) or not raw_lines:
            raise _ApiError(400, "invoiceLines are empty")
        deals = [d for d in self.world.deals if d.client_id == contact]
        entity = int(body.get("entityid") or 0) or (deals[0].id if deals else 1)
        inv_id = self.world.next_invoice_id(SYSTEM)
        lines, oo_lines = [], []
        for idx, raw in enumerate(raw_lines):
            raw = {k.lower(): v for k, v in raw.items()}
            qty, price, discount = (_dec(raw.get(k, 0)) for k in ("quantity", "price", "discount"))
            if qty is None or price is None or discount is None or not 0 <= discount <= 100:
                raise _ApiError(400, "Invalid invoice line")
            tax1, tax2 = int(raw.get("invoicetax1id") or 0), int(raw.get("invoicetax2id") or 0)
            if any(t and t not in self.taxes for t in (tax1, tax2)):
                raise _ApiError(404, "Not found")
            vat_rates = [self.taxes[t].rate for t in (tax1, tax2) if t and is_vat(self.taxes[t])]
            item = int(raw.get("invoiceitemid") or 0)
            name = str(raw.get("description") or (PRODUCTS[item - 1][0] if 0 < item <= len(PRODUCTS) else ""))
            lines.append(Line(name, q2(qty, ROUND_HALF_UP), q2(price, ROUND_HALF_UP),
                              sum(vat_rates, Decimal(0)) if vat_rates else None, vat_included=False))
            oo_lines.append(OOLine(inv_id * 100 + idx + 1, item, tax1, tax2, q2(discount, ROUND_HALF_UP), idx))
        inv = Invoice(SYSTEM, inv_id, number, contact, entity, datetime.now(UTC).replace(microsecond=0), issue, due,
                      currency, lines, status="draft")
        inv.updated_at = inv.created_at
        inv.extra["oo"] = OOState(DRAFT, q2(rate, ROUND_HALF_UP), oo_lines, len(oo_lines))
        self.world.invoices[SYSTEM].append(inv)
        return wire.envelope(self._full(inv), status_code=201)

    def _set_status(self, raw_status: str, request: Request) -> Response:
        new = int(raw_status) if raw_status.isdigit() else STATUS_NAMES.get(raw_status.lower())
        if new is None:
            raise _ApiError(400, f"Requested value '{raw_status}' was not found.")
        ids = self._body(request).get("invoiceids") or self._body(request).get("invoiceIds") or []
        if not isinstance(ids, list):
            ids = [ids]
        changed = []
        for raw_id in ids:
            inv = self._invoice(int(raw_id))
            if inv is None:
                continue
            st = state(inv)
            if (st.status, new) in TRANSITIONS:  # anything else: silently unchanged
                self._transition(inv, st, new)
            changed.append(self._base(inv))
        return wire.envelope({"key": changed, "value": []})

    def _transition(self, inv: Invoice, st: OOState, new: int) -> None:
        if new == PAID:
            cost, _vat = invoice_cost(inv, self.taxes)
            inv.payments.append(Payment(self.world.today, cost, "api"))
        elif new == SENT and st.status == PAID:  # "Bug 23450": a paid invoice can be un-paid
            for p in inv.payments:
                p.via = "undone"
        inv.status = {DRAFT: "draft", SENT: "issued", REJECTED: "cancelled"}.get(new, inv.status)
        st.status = new
        inv.updated_at = datetime.now(UTC)

    def _update_tax(self, tax_id: int, request: Request) -> Response:
        tax = self.taxes.get(tax_id)
        if tax is None:
            raise _ApiError(404, "Not found")
        body = {k.lower(): v for k, v in self._body(request).items()}
        rate = _dec(body.get("rate", tax.rate))
        if rate is None or rate < 0:
            raise _ApiError(400, "Invalid rate")
        tax.rate = q2(rate, ROUND_HALF_UP)
        tax.name = str(body.get("name") or tax.name)
        return wire.envelope(self._tax(tax))


class _ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _dec(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
