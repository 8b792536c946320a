"""The Bitrix24 portal emulator: its HTTP door (webhook or OAuth, params, limits), the settings a test or the
demo needs, and what users do in the UI (test helpers). The methods are in ``methods``."""

from __future__ import annotations

import json
import threading
import time as _time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from ..server import Faults, Request, Response
from ..world import Invoice, Payment, World
from . import render as R
from .batch import BatchEngine
from .limiter import Bucket
from .methods import CrmMethods
from .oauth import OAuthServer
from .options import Bitrix24Portal
from .wire import BitrixError, php_params


class Bitrix24Provider(OAuthServer, BatchEngine, CrmMethods):
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
        """By id, deleted or not, through an index rebuilt only when invoices were added (ids never change):
        the recurring list asks for every template on every page, a scan each was minutes at 200k."""
        invoices = self.world.invoices["bitrix24"]
        key = (id(invoices), len(invoices))
        if getattr(self, "_all_key", None) != key:
            self._all = {i.id: i for i in invoices}
            self._all_key = key
        found = self._all.get(world_id)
        if found is None:
            raise KeyError(world_id)
        return found

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
