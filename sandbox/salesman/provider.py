"""SalesMan CRM API v3 emulator (``/developer/v3/<method>/<action>``), rendered from the world.

Behaviour follows ``shared/api/salesman.md`` and the captures of a real server (``salesman_real/FINDINGS.md``):
JSON params only when ``Content-Type`` is exactly ``application/json`` (auth from ``apikey``/``login``
headers), else query/form params (auth as params); HTTP 200 for everything, errors in
``{"result":"Error","error":{"code","text"}}``; invoice page size = the account's ``num_client`` (30);
``offset`` is a 1-based page number where 0 and 1 are the same page; default order creation date DESC with no
tie-breaker; partial payments split an invoice row; ``do`` in 'on' | 'no' | '' | 'yes'; ``nds`` absolute on the
first row; list ``date_create`` in the DB server's zone, info ``datum`` in the account zone; amounts as JSON
numbers that PHP wrote (whole values without a fraction).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from ..server import Faults, Request, Response
from ..world import Invoice, Line, Payment, World, q2
from .truth import BANK_ACCOUNTS, RS_BY_RATE, normalise_invoice
from .wire import brackets, clean, created_filter, num_format, php_json, php_number

TIPS = {"ispeka": "По спецификации", "ioffer": "Счет-договор", "icontract": "По договору",
        "ipre": "Предварительная оплата", "iafter": "Окончательная оплата"}
COMPANY = "ООО \u201dБрикет Солюшн\u201d"
CURRENCIES = {"USD": (1, "Доллар США", "$"), "EUR": (2, "Евро", "\u20ac"), "CNY": (3, "Юань", "¥")}
TIE_ORDERS = ("stable", "shuffle", "limit_dependent", "estimate")
ORDER_MAP = {"datum": "datum", "date_create": "datum", "dateCreate": "datum", "datum_credit": "datum_credit",
             "date_plan": "datum_credit", "datePlan": "datum_credit", "invoice_date": "invoice_date",
             "date_fact": "invoice_date", "dateFact": "invoice_date", "summa_credit": "summa_credit",
             "summa": "summa_credit", "invoice": "invoice"}


@dataclass
class Row:
    """One row of ``app_credit``: a payment-schedule line. A logical invoice is (did, invoice)."""

    crid: int
    world_id: int
    did: int
    clid: int
    invoice: str
    datum: datetime  # aware UTC
    datum_credit: date
    summa: Decimal
    nds: Decimal = Decimal("0.00")
    do: str = "no"
    invoice_date: date | None = None
    contractnum: str | None = None
    tip: str = "Счет-договор"
    rs: int = 1
    iduser: int = 1


@dataclass
class SalesmanAccount:
    api_key: str = "sandbox-salesman-key"
    logins: dict[str, int] = field(default_factory=lambda: {"api@sandbox.local": 1})
    page_size: int = 30  # settings num_client
    timezone: str = "Asia/Yekaterinburg"  # the account zone (info datum)
    db_timezone: str | None = None  # MySQL server zone (list date_create); None = the account zone
    wrong_key_code: int = 401  # 401 on self-hosted builds (captured); the doc says 400
    # How rows that tie on the sort column come back (the server has no tie-breaker):
    # 'stable': one fixed order for every page and request (the small captured set);
    # 'shuffle': re-ordered on every request;
    # 'limit_dependent': ordered by a deterministic function of (row, LIMIT offset, LIMIT count), the same on
    #   every request, as MariaDB's LIMIT optimisation does (measured on a real server with 547 rows): a tie
    #   group that straddles a page boundary shows some rows on both pages and others on neither, every time;
    # 'estimate': what MariaDB 10.11 was measured doing (tests/real_server): when the listed rows belong to
    #   more than one user, pages whose offset+limit reaches the optimizer's row estimate (count minus
    #   ``row_estimate_gap``) order ties like the unlimited query, all other pages another fixed way, so
    #   only the tie group cut by the boundary before the last page loses (and repeats) a stretch of rows.
    tie_order: str = "stable"
    row_estimate_gap: int = 1
    # Rows created through the API in one minute share their creation time (API writes store H:i:00):
    # > 0 folds every run of this many consecutive invoices into one creation minute (tie groups).
    tie_group_size: int = 0
    valuta: str = "р."


def _sort_value(r: Row, column: str) -> object:
    return {"datum": r.datum, "datum_credit": r.datum_credit, "summa_credit": r.summa,
            "invoice": int(r.invoice) if r.invoice.isdigit() else 0,
            "invoice_date": r.invoice_date or date.min}[column]


class SalesmanProvider:
    name = "salesman"
    prefix = "/developer/v3/"

    def __init__(self, world: World, **options):
        self.world = world
        self.account = SalesmanAccount(**options)
        self.faults = Faults()
        self.rows: dict[int, Row] = {}
        self.next_crid = 1
        self.inum = 1000 + len(world.invoices["salesman"]) + 1
        self.version = 0  # bumped on every change: list orderings are cached per version
        self._cache: dict = {}
        self._rnd = random.Random(world.seed)
        self.hidden_deals: set[int] = set()  # deals owned by iduser=0: invoice/list never shows their rows
        if self.account.tie_order not in TIE_ORDERS:
            raise ValueError(f"tie_order must be one of {TIE_ORDERS}, not {self.account.tie_order!r}")
        self._build_rows()

    # ---- world -> rows -------------------------------------------------------------------------------
    def _build_rows(self) -> None:
        later: list[tuple[date, Invoice, list[Row]]] = []
        ordered = sorted(self.world.invoices["salesman"], key=lambda i: (i.created_at, i.id))
        size = self.account.tie_group_size
        for start in range(0, len(ordered), size) if size > 0 else ():
            minute = ordered[start].created_at.replace(second=0, microsecond=0)
            for inv in ordered[start:start + size]:  # the world's truth moves with them (issue dates)
                inv.created_at = minute
        for inv in ordered:
            normalise_invoice(inv)
            if inv.deleted:
                continue
            rows = self._rows_for(inv)
            first, rest = rows[0], rows[1:]
            self._store(first)
            if rest:
                later.append((inv.payments[0].paid_on if inv.payments else inv.issue_date, inv, rest))
        for _day, _inv, rest in sorted(later, key=lambda t: (t[0], t[1].id)):
            for row in rest:
                self._store(row)

    def changed(self) -> None:
        self.version += 1
        self._cache.clear()

    def _store(self, row: Row) -> None:
        self.changed()
        row.crid = self.next_crid
        self.next_crid += 1
        self.rows[row.crid] = row

    def _rows_for(self, inv: Invoice) -> list[Row]:
        _net, vat, gross = inv.totals()
        rate = next(iter(inv.vat_rates())) or Decimal(0)
        base = dict(crid=0, world_id=inv.id, did=inv.deal_id, clid=inv.client_id, invoice=inv.number,
                    datum=inv.created_at, datum_credit=inv.due_date, rs=RS_BY_RATE.get(rate, 1),
                    contractnum=inv.extra.get("contract"))
        if inv.declared_paid:
            return [Row(**base, summa=gross, nds=vat, do="yes",
                        invoice_date=inv.payments[0].paid_on if inv.payments else None)]
        rows: list[Row] = []
        left = gross
        for p in inv.payments:
            if p.via == "undone":
                rows.append(Row(**base, summa=gross, nds=vat, do=""))
                return rows
            paid_date = None if p.via == "api" else p.paid_on
            rows.append(Row(**base, summa=p.amount, do="on", invoice_date=paid_date))
            left -= p.amount
        if left > 0 or not rows:
            rows.append(Row(**base, summa=left, do="no"))
        rows[0].nds = vat
        for row in rows[1:]:
            row.contractnum = None
        return rows

    def _invoice(self, world_id: int) -> Invoice:
        return next(i for i in self.world.invoices["salesman"] if i.id == world_id)

    # ---- test helpers (what a user does in the UI, which the API cannot) ---------------------------------
    def delete_invoice(self, world_id: int) -> None:
        """Hard-delete every row of a logical invoice, as ``Invoice::delete`` does."""
        self.changed()
        for crid in [c for c, r in self.rows.items() if r.world_id == world_id]:
            del self.rows[crid]
        self._invoice(world_id).deleted = True

    def undo_payment(self, crid: int) -> None:
        """``undoit``: do='' and invoice_date NULL; the split rows are not merged back."""
        self.changed()
        row = self.rows[crid]
        row.do, row.invoice_date = "", None
        inv = self._invoice(row.world_id)
        for p in inv.payments:
            if p.via != "undone" and p.amount == row.summa:
                p.via = "undone"
                break

    def hide_deal(self, did: int) -> None:
        """Give a deal the owner ``iduser=0`` (``deal/add`` with an unknown user login does this): its rows,
        and rows added to it later, vanish from ``invoice/list`` but stay in ``deal/list``."""
        self.changed()
        self.hidden_deals.add(did)
        for row in self.rows.values():
            if row.did == did:
                row.iduser = 0

    def give_deal(self, did: int, iduser: int) -> None:
        """Make another user (a «Менеджер продаж», say) own a deal and its rows."""
        self.changed()
        for row in self.rows.values():
            if row.did == did:
                row.iduser = iduser

    # ---- protocol --------------------------------------------------------------------------------------
    def method_key(self, request: Request) -> str:
        parts = request.path.split("/")
        return "/".join(parts[3:5])

    def demo_env(self, base_url: str) -> dict[str, str]:
        login = next(iter(self.account.logins))
        return {"SOURCES__SALESMAN__BASE_URL": base_url, "SOURCES__SALESMAN__API_KEY": self.account.api_key,
                "SOURCES__SALESMAN__LOGIN": login, "SOURCES__SALESMAN__TIMEZONE": self.account.timezone,
                "SOURCES__SALESMAN__ACCOUNT": "sandbox"}

    def _params(self, request: Request) -> tuple[dict, str | None, str | None]:
        ctype = request.headers.get("Content-Type", request.headers.get("content-type"))
        if ctype == "application/json":
            try:
                params = json.loads(request.body or b"{}") if request.body.strip() else {}
            except ValueError:
                params = {}
            if not isinstance(params, dict):
                params = {}
            key = request.headers.get("apikey", request.headers.get("Apikey"))
            login = request.headers.get("login", request.headers.get("Login"))
            return params, key, login
        merged = dict(request.query)
        if request.body and (ctype or "").startswith("application/x-www-form-urlencoded"):
            for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items():
                merged[k] = v
        params = clean(brackets(merged))
        return params, params.pop("apikey", None), params.pop("login", None)

    def handle(self, request: Request) -> Response:
        parts = request.path.split("/")
        method = parts[3] if len(parts) > 3 else ""
        action = parts[4] if len(parts) > 4 else ""
        params, key, login = self._params(request)
        if params.get("action"):
            action = str(params["action"])
        if key != self.account.api_key:
            code = self.account.wrong_key_code
            return self._error(code, "Не верный API key" if code == 400 else "Неизвестный пользователь")
        if login not in self.account.logins:
            return self._error(401, "Неизвестный пользователь")
        handler = {
            "invoice": self._invoice_method, "deal": self._deal_method, "currency": self._currency_method,
            "guides": self._guides_method,
        }.get(method)
        if handler is None:
            return Response(200, b"", {"Content-Type": "application/json; charset=utf-8"})
        return handler(action, params, self.account.logins[login])

    def _ok(self, payload: dict) -> Response:
        return Response.json(payload, encoder=php_json, headers={"Access-Control-Allow-Origin": "*"})

    def _error(self, code: int, text: str) -> Response:
        return self._ok({"result": "Error", "error": {"code": code, "text": text}})

    # ---- invoice -------------------------------------------------------------------------------------
    def _invoice_method(self, action: str, params: dict, iduser: int) -> Response:
        if action == "list":
            return self._list(params)
        if action == "info":
            return self._info(params)
        if action == "add":
            return self._add(params, express=False)
        if action == "express":
            return self._add(params, express=True)
        if action == "do":
            return self._do(params)
        return self._error(402, "Неизвестный метод")

    def _zone(self, db: bool) -> ZoneInfo:
        return ZoneInfo((self.account.db_timezone or self.account.timezone) if db else self.account.timezone)

    def _list(self, params: dict) -> Response:
        column = ORDER_MAP.get(str(params.get("order") or "datum"), "datum_credit")
        descending = params.get("first") != "old"
        pay = params.get("pay") if isinstance(params.get("pay"), dict) else {}
        paid_only = bool(pay.get("on")) or params.get("pay1") == "yes"
        unpaid_only = bool(pay.get("off")) or params.get("pay2") == "yes"
        filters = tuple((k, int(params[k])) for k in ("did", "clid", "iduser")
                        if params.get(k) not in (None, "", 0, "0"))
        created = created_filter(params.get("dateCreateStart"), params.get("dateCreateEnd"))
        shuffle = self.account.tie_order == "shuffle"
        key = (column, descending, paid_only, unpaid_only, filters, created)
        rows = None if shuffle else self._cache.get(key)
        if rows is None:
            rows = self._ordered(column, descending, paid_only, unpaid_only, filters, created, shuffle)
            self._cache[key] = rows
        n = self.account.page_size
        count = len(rows)
        try:
            offset = int(params.get("offset") or 0)
        except (TypeError, ValueError):
            offset = 0
        page = offset if offset > 0 else 1
        if self.account.tie_order == "limit_dependent":
            chunk = self._limit_window(rows, column, (page - 1) * n, n)
        elif (self.account.tie_order == "estimate" and page * n >= count - self.account.row_estimate_gap
              and len({r.iduser for r in rows}) > 1):
            unlimited = self._cache.get(("unlimited", key))
            if unlimited is None:  # the other fixed order: ties reversed
                unlimited = sorted(reversed(rows), key=lambda r: _sort_value(r, column), reverse=descending)
                self._cache[("unlimited", key)] = unlimited
            chunk = unlimited[(page - 1) * n: page * n]
        else:
            chunk = rows[(page - 1) * n: page * n]
        groups = self._cache.get("groups")
        if groups is None:
            groups = {}
            for r in self.rows.values():
                groups.setdefault((r.did, r.invoice), []).append(r)
            self._cache["groups"] = groups
        data = [self._list_row(r, groups[(r.did, r.invoice)]) for r in chunk]
        pageall = -(-count // n)
        return self._ok({"data": data, "params": {"page": page, "pageall": pageall, "ord": column,
                                                   "tuda": "DESC" if descending else "", "valuta": self.account.valuta,
                                                   "count": count}, "count": count})

    def _ordered(self, column, descending, paid_only, unpaid_only, filters, created, shuffle) -> list[Row]:
        rows = [r for r in self.rows.values() if r.iduser]  # rows of user 0 are never listed
        for key, value in filters:
            rows = [r for r in rows if getattr(r, key) == value]
        if paid_only != unpaid_only:
            rows = [r for r in rows if (r.do == "on") == paid_only]
        if created is not None:  # compared with the wall time of the database server's zone
            low, high = created
            zone = self._zone(db=True)
            walls = {r.crid: r.datum.astimezone(zone).replace(tzinfo=None) for r in rows}
            rows = [r for r in rows if (low is None or low <= walls[r.crid]) and
                    (walls[r.crid] < high if low is None else walls[r.crid] <= high)]
        # No tie-breaker on the server: ties come back in an arbitrary order, stable or not by config.
        salt = self._rnd.random() if shuffle else 0.5
        rows.sort(key=lambda r: hash((r.crid * 7919, salt)))
        rows.sort(key=lambda r: _sort_value(r, column), reverse=descending)
        return rows

    @staticmethod
    def _limit_window(rows: list[Row], column: str, start: int, n: int) -> list[Row]:
        """``LIMIT start, n`` where tied rows are ordered by a function of (row, start, n): the tie groups
        cut by the window's edges are re-ordered for this window alone, so a row of a group that straddles
        a page boundary can come on both pages and another on neither, the same on every request."""
        if start >= len(rows):
            return []
        end = min(start + n, len(rows))
        lo, hi = start, end
        while lo > 0 and _sort_value(rows[lo - 1], column) == _sort_value(rows[start], column):
            lo -= 1
        while hi < len(rows) and _sort_value(rows[hi], column) == _sort_value(rows[end - 1], column):
            hi += 1
        span: list[Row] = []
        for _value, group in groupby(rows[lo:hi], key=lambda r: _sort_value(r, column)):
            span.extend(sorted(group, key=lambda r: hash((r.crid, start, n))))
        return span[start - lo: end - lo]

    def _list_row(self, r: Row, group: list[Row]) -> dict:
        local = r.datum.astimezone(self._zone(db=True))
        paid = r.do == "on"
        total = sum((g.summa for g in group), Decimal(0)) or Decimal(1)
        delta = r.summa / total * 100
        client = self.world.client(r.clid).name
        return {
            "id": r.crid, "crid": r.crid, "date_create": local.strftime("%Y-%m-%d %H:%M:%S"),
            "date_createf": local.strftime("%d.%m.%y"), "date_plan": r.datum_credit.isoformat(),
            "date_planf": r.datum_credit.strftime("%d.%m.%Y"),
            "date_fact": r.invoice_date.isoformat() if r.invoice_date else None,
            "date_factf": r.invoice_date.strftime("%d.%m.%Y") if r.invoice_date else "",
            "contract": r.contractnum, "invoice": r.invoice, "summaf": num_format(r.summa),
            "summa": php_number(r.summa), "color": None if paid else "redbg-sublite",
            "ddo": True if paid else None, "warning": None, "do": True if paid else None,
            "cando": None if paid else True, "view": 1, "clid": r.clid, "client": client, "pid": 0, "person": None,
            "did": r.did, "deal": self.world.deal(r.did).title, "isclose": None,
            "count": f"{len(group)} {'часть' if len(group) == 1 else 'части'}",
            "dole": None if len(group) == 1 else num_format(delta), "company": COMPANY if r.rs else None,
            "mc": 1 if r.rs else 0, "deltaf": num_format(delta), "delta": float(delta),
        }

    def _info(self, params: dict) -> Response:
        if not params.get("id"):
            return self._error(405, "Отсутствуют параметры - id счета")
        try:
            row = self.rows.get(int(params["id"]))
        except (TypeError, ValueError):
            row = None
        if row is None:  # the real server answers an empty record, not an error
            return self._ok({"data": {"crid": 0, "invoice": None, "datum": None, "datum_credit": None,
                                      "invoice_date": None, "contractnum": None, "summa": 0, "nds": 0,
                                      "clid": None, "pid": None, "did": None, "tip": None, "rs": None,
                                      "iduser": None, "do": None, "suffix": None, "valuta": self.account.valuta,
                                      "template": None, "idcurrency": 0, "currency": [], "idcourse": 0,
                                      "course": [], "signer": None}})
        deal = self.world.deal(row.did)
        currency: object = []
        course: object = []
        idcurrency = 0
        if deal.display_currency and deal.display_currency in CURRENCIES:
            idcurrency, cname, view = CURRENCIES[deal.display_currency]
            current = self.world.rate(deal.display_currency, self.world.today)
            frozen = self.world.rate(deal.display_currency, deal.created)
            currency = {"id": idcurrency, "datum": self.world.today.isoformat(), "name": cname, "view": view,
                        "code": deal.display_currency, "course": php_number(current), "identity": 1,
                        "symbol": deal.display_currency, "log": []}
            course = {"id": 100 + deal.id, "idcurrency": idcurrency,
                      "datum": f"{deal.created.isoformat()} 10:00:00", "course": php_number(frozen), "iduser": 1,
                      "identity": 1}
        local = row.datum.astimezone(self._zone(db=False))
        return self._ok({"data": {
            "crid": row.crid, "invoice": row.invoice, "datum": local.strftime("%Y-%m-%d %H:%M:%S"),
            "datum_credit": row.datum_credit.isoformat(),
            "invoice_date": row.invoice_date.isoformat() if row.invoice_date else None,
            "contractnum": row.contractnum, "summa": php_number(row.summa), "nds": php_number(row.nds),
            "clid": row.clid, "pid": 0, "did": row.did, "tip": row.tip, "rs": row.rs, "iduser": row.iduser,
            "do": row.do, "suffix": "", "valuta": self.account.valuta,
            "template": {"id": 2, "title": "Базовый шаблон", "file": "invoice.tpl", "typeid": 4},
            # The real server fills idcourse with the deal's idcurrency (a bug): course.id is the real one.
            "idcurrency": idcurrency, "currency": currency, "idcourse": idcurrency, "course": course,
            "signer": None}})

    def _today_local(self) -> datetime:
        return datetime.now(UTC).astimezone(self._zone(db=False))

    def _add(self, params: dict, express: bool) -> Response:
        try:
            deal = self.world.deal(int(params.get("did") or 0)) if int(params.get("did") or 0) > 0 else None
        except (IndexError, ValueError):
            deal = None
        if deal is None:
            return self._error(403, "Сделка не найдена")
        now_local = self._today_local()
        raw_date = str(params.get("date") or now_local.date().isoformat())
        try:
            issue = date.fromisoformat(raw_date)
        except ValueError:
            return Response(200, b"<br />\n<b>Fatal error</b>:  Uncaught mysqli_sql_exception: Incorrect datetime "
                                 b"value", {"Content-Type": "application/json; charset=utf-8"})
        # The server appends the current wall-clock H:i:00 of the account zone to the given date.
        local = datetime(issue.year, issue.month, issue.day, now_local.hour, now_local.minute,
                         tzinfo=self._zone(db=False))
        plan = date.fromisoformat(str(params["date.plan"])) if params.get("date.plan") else issue + timedelta(days=5)
        summa = q2(Decimal(str(params.get("summa") or "100000")))
        rs = int(params.get("rs") or 0) or 1
        rate = Decimal(next(a["ndsDefault"] for a in BANK_ACCOUNTS if a["id"] == rs)) if rs in (1, 2, 3, 4) else Decimal(0)
        nds = q2(Decimal(str(params["nds"]))) if params.get("nds") not in (None, "") else \
            q2(summa * rate / (100 + rate))
        number = str(params.get("invoice") or "auto")
        if number == "auto":
            number = str(self.inum)
            self.inum += 1
        inv = Invoice("salesman", self.world.next_invoice_id("salesman"), number, deal.client_id, deal.id,
                      local.astimezone(UTC), issue, plan, "RUB", [Line("Счет", Decimal(1), summa, rate)],
                      vat_override=nds)
        inv.extra["contract"] = params.get("contract")
        do_flag = str(params.get("do") or "")
        pay_day = date.fromisoformat(str(params["date.do"])) if params.get("date.do") else now_local.date()
        row = Row(crid=0, world_id=inv.id, did=deal.id, clid=deal.client_id, invoice=number,
                  datum=inv.created_at, datum_credit=plan, summa=summa, nds=nds, rs=rs,
                  iduser=0 if deal.id in self.hidden_deals else 1,
                  contractnum=params.get("contract"), tip=TIPS.get(str(params.get("tip") or "ioffer"),
                                                                   str(params.get("tip") or "Счет-договор")))
        if express:
            row.do, row.invoice_date = "on", pay_day
            inv.payments.append(Payment(pay_day, summa, "express"))
        elif do_flag:
            row.do = do_flag  # stored as given: 'yes' is *not* paid anywhere in the CRM
            if do_flag == "yes":
                inv.declared_paid = True
                row.invoice_date = pay_day
                inv.payments.append(Payment(pay_day, summa, "ui"))
        self.world.invoices["salesman"].append(inv)
        self._store(row)
        result = "Успешно;Счет добавлен в платежи"
        body = {"result": result, "data": {"id": row.crid, "invoice": number}}
        if express:
            body["messages"] = [f"Внесена оплата {num_format(summa)} р.", "Счет добавлен в платежи"]
        return self._ok(body)

    def _do(self, params: dict) -> Response:
        try:
            row = self.rows.get(int(params.get("id") or 0))
        except ValueError:
            row = None
        if row is None:
            return self._error(403, "Счет не найден")
        self.changed()
        inv = self._invoice(row.world_id)
        paid = q2(Decimal(str(params["summa"]))) if params.get("summa") not in (None, "") else row.summa
        # The API passes date.do as invoice_date, which doit() never reads: the paid date stays NULL.
        row.do, row.invoice_date = "on", None
        answer: dict = {"result": "Успешно", "data": f"Внесена оплата по графику {num_format(paid)} р."}
        if paid < row.summa:
            rest = row.summa - paid
            row.summa = paid
            new = Row(crid=0, world_id=row.world_id, did=row.did, clid=row.clid, invoice=row.invoice,
                      datum=row.datum, datum_credit=row.datum_credit, summa=rest, rs=row.rs, tip=row.tip,
                      iduser=row.iduser)
            self._store(new)
            answer["newdata"] = new.crid
        elif paid > row.summa:  # overpayment simply raises the row's amount
            over = paid - row.summa
            row.summa = paid
            inv.vat_override = inv.totals()[1]
            inv.lines.append(Line("Переплата", Decimal(1), over, None))
        inv.payments.append(Payment(self.world.today, paid, "api"))
        return self._ok(answer)

    # ---- reference data --------------------------------------------------------------------------------
    def _deal_method(self, action: str, params: dict, iduser: int) -> Response:
        if action != "list":
            return self._error(402, "Неизвестный метод")
        by_deal, deals = self._deal_index()
        offset = int(params.get("offset") or 0)
        chunk = deals[offset * 200:(offset + 1) * 200]
        with_invoices = "invoice" in params
        data = []
        for d in chunk:
            item = {"did": d.id, "uid": None, "datum": d.created.isoformat(), "datum_izm": None, "clid": d.client_id,
                    "clientTitle": self.world.client(d.client_id).name, "title": d.title, "mcid": 1,
                    "iduser": 0 if d.id in self.hidden_deals else 1,
                    "payer": d.client_id, "kol": php_number(sum((r.summa for r in by_deal[d.id]), Decimal(0))),
                    "close": "no", "datum_close": None}
            if with_invoices:
                item["invoice"] = [{"id": r.crid, "invoice": r.invoice,
                                    "date": r.datum.astimezone(self._zone(False)).date().isoformat(),
                                    "summa": php_number(r.summa), "nds": php_number(r.nds), "do": r.do,
                                    "date_do": r.invoice_date.isoformat() if r.invoice_date else None,
                                    "contract": r.contractnum, "rs": r.rs, "tip": r.tip}
                                   for r in sorted(by_deal[d.id], key=lambda r: r.crid)]
            data.append(item)
        return self._ok({"data": data, "params": {"page": offset + 1 if offset == 0 else offset,
                                                   "pageall": -(-len(deals) // 200)}, "count": len(data)})

    def _deal_index(self) -> tuple[dict[int, list[Row]], list]:
        """Every deal's rows and the deals in id order, built once per data version (any change clears it):
        grouping every row on each request made a run's ``deal/list`` reads quadratic in the rows."""
        index = self._cache.get("deal_index")
        if index is None:
            by_deal: dict[int, list[Row]] = {}
            for r in self.rows.values():
                by_deal.setdefault(r.did, []).append(r)
            index = self._cache["deal_index"] = (by_deal, [self.world.deal(d) for d in sorted(by_deal)])
        return index

    def _currency_method(self, action: str, params: dict, iduser: int) -> Response:
        if action != "list":
            return self._error(404, "Неизвестный метод")
        today = self.world.today
        return self._ok({"data": {str(i): {"id": i, "datum": today.isoformat(), "name": name, "view": view,
                                           "code": code, "symbol": code,
                                           "course": php_number(self.world.rate(code, today))}
                                  for code, (i, name, view) in CURRENCIES.items()}})

    def _guides_method(self, action: str, params: dict, iduser: int) -> Response:
        if action != "company.bank":
            return self._error(402, "Неизвестный метод")
        return self._ok({"data": [{**a, "compBankBik": "045744863", "compBankRs": "40702810000000000001",
                                   "compBankKs": "30101810300000000863", "compBankName": "Банк"}
                                  for a in BANK_ACCOUNTS]})
