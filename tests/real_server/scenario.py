"""The data the real-server suite builds, through the same API calls and UI actions a user's CRM sees.

Ties are the point: API writes store the creation time as the given date plus the current ``H:i`` and
``:00`` seconds, so every row created with one ``date`` within one minute ties in ``invoice/list``'s ORDER
BY, and a partial payment's remainder row copies its original's creation time. Rows are created in date
groups of dozens, so tie groups straddle the 30-row page boundaries. Writes to one deal run one after
another (the server computes default VAT and the 406 "fully invoiced" check from the deal's previous
invoices); different deals are written in parallel.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from .salesman_real import Api, Ledger, Server, WebUi

TWO = Decimal("0.01")
# rows per creation date, in list order (creation ascending): sizes chosen so that groups of dozens
# cross the boundaries of 30-row pages
INITIAL_GROUPS = [7, 45, 3, 62, 1, 1, 38, 90, 12, 50, 25, 70, 4, 33, 80]
FIRST_DAY = date(2026, 3, 2)
MANAGER = "manager@example.com"


@dataclass
class Deal:
    did: int
    clid: int
    payer: int
    kind: str  # rub | usd | eur | ghost (owner iduser=0) | nomc (no own company: rs=0)
    vat: int
    owner: str  # the login given to deal/add (the manager's deals list under iduser 2)


@dataclass
class Scenario:
    server: Server
    api: Api
    ui: WebUi
    rng: random.Random = field(default_factory=lambda: random.Random(20261201))
    ledger: Ledger = field(default_factory=Ledger)
    deals: list[Deal] = field(default_factory=list)
    # crid -> did for rows known to exist (as far as the scenario did it)
    rows: dict[int, int] = field(default_factory=dict)

    # --- helpers ------------------------------------------------------------------------------------
    def amount(self, low: int = 1_000, high: int = 150_000) -> Decimal:
        return Decimal(self.rng.randint(low * 100, high * 100)) / 100

    @staticmethod
    def vat_of(summa: Decimal, rate: int) -> Decimal:
        return (summa * rate / (100 + rate)).quantize(TWO, ROUND_HALF_UP)

    def per_deal(self, ops: dict[int, list[tuple[str, dict, str | None]]]) -> None:
        """Run each deal's (method, params, tag) list in order; deals in parallel."""
        def run(did: int, items):
            def go():
                for method, params, tag in items:
                    body = self.api.call(method, params)
                    self._record(method, params, body, did, tag)
            return go
        self.api.many([run(did, items) for did, items in ops.items() if items])

    def _record(self, method: str, params: dict, body: dict, did: int, tag: str | None) -> None:
        if method in ("invoice/add", "invoice/express"):
            crid = int(body["data"]["id"])
            self.rows[crid] = did
            if tag:
                self.ledger.tag(tag, crid)
        elif method == "invoice/do":
            crid = int(params["id"])
            if tag:
                self.ledger.tag(tag, crid)
            if body.get("newdata"):
                new = int(body["newdata"])
                self.rows[new] = did
                self.ledger.tag("remainder", new)

    def live_rows(self) -> list[dict]:
        return self.server.credit_rows()

    # --- the account --------------------------------------------------------------------------------
    def add_manager(self) -> None:
        """A second user, «Менеджер продаж», subordinate of the admin. The list's visibility filter then
        becomes ``iduser IN (1, 2)``, and only then does MariaDB order ties differently per LIMIT (measured:
        a one-user account reads complete). API v3's user/add is broken (it inserts into app_USER), so
        the user is added as the UI would store it: a copy of the admin's row with another login and role."""
        self.server.sql(f"""
            insert into app_user (login, pwd, title, tip, user_post, mid, secrty, isadmin, acs_credit, tzone, identity)
            select '{MANAGER}', pwd, 'Менеджер Петров', 'Менеджер продаж', 'Менеджер', iduser, 'yes', 'off', 'off',
                   0, identity
            from app_user where login = '{self.server.login}'""")

    def create_account(self) -> None:
        api = self.api
        self.add_manager()
        titles = ['ООО "Ромашка"', 'АО "Вектор"', "ИП Сидоров", 'ООО "Альфа"', 'ЗАО "Бета"', "Гамма"]
        clients = [int(api.call("client/add", {"type": "client", "title": t, "territory": "Пермь"})["data"])
                   for t in titles]
        usd = int(api.call("currency/add", {"name": "Доллар США", "code": "USD", "view": "$", "course": 90.5})["data"])
        eur = int(api.call("currency/add", {"name": "Евро", "code": "EUR", "view": "€", "course": 100.25})["data"])
        api.call("currency/update", {"id": usd, "name": "Доллар США", "code": "USD", "view": "$", "course": 92.25})
        logs = self.server.sql("select json_object('id', id, 'idcurrency', idcurrency) from app_currency_log "
                               "order by id")
        course = {c: max(r["id"] for r in logs if r["idcurrency"] == c) for c in (usd, eur)}

        def deal(n: int, kind: str, clid: int, payer: int, vat: int, user: str | None = None, **extra) -> Deal:
            body = {"title": f"Сделка R{n:02d}", "clid": clid, "payer": payer, "kol": 5_000_000,
                    "datum_plan": "2026-12-31", "step": "40",
                    "speka": [{"artikul": f"S-R{n:02d}", "title": f"Услуги по сделке R{n:02d}", "tip": 1,
                               "kol": 1, "dop": 1, "price": 5_000_000, "price_in": 3_000_000, "edizm": "усл.",
                               "nds": vat}], **extra}
            if kind != "nomc":
                body["mcid"] = 1
            if user:
                body["user"] = user
            did = int(api.call("deal/add", body)["data"])
            return Deal(did, clid, payer, kind, vat, user or self.server.login)

        # the first deal of a fresh account without mcid gets mcid=0: its invoices carry rs=0
        self.deals.append(deal(0, "nomc", clients[0], clients[0], 0))
        for n in range(1, 31):
            clid = clients[n % len(clients)]
            payer = clients[(n + 1) % len(clients)] if n % 7 == 0 else clid  # some deals: payer != client
            # a quarter of the deals belong to the manager
            self.deals.append(deal(n, "rub", clid, payer, 20 if n % 5 else 0, MANAGER if n % 4 == 1 else None))
        self.deals.append(deal(31, "usd", clients[1], clients[1], 20, idcurrency=usd, idcourse=course[usd]))
        self.deals.append(deal(32, "usd", clients[2], clients[2], 20, MANAGER, idcurrency=usd, idcourse=course[usd]))
        self.deals.append(deal(33, "eur", clients[3], clients[3], 20, idcurrency=eur, idcourse=course[eur]))
        # a login that does not exist: SalesMan stores the deal with iduser=0 (invisible to invoice/list)
        self.deals.append(deal(34, "ghost", clients[4], clients[4], 20, "nobody@example.com"))

    @property
    def visible_deals(self) -> list[Deal]:
        return [d for d in self.deals if d.kind != "ghost"]

    @property
    def ghost(self) -> Deal:
        return next(d for d in self.deals if d.kind == "ghost")

    def add_params(self, deal: Deal, day: date, **extra) -> dict:
        summa = self.amount()
        params = {"did": deal.did, "invoice": "auto", "summa": float(summa), "date": day.isoformat(),
                  "date.plan": (day + timedelta(days=self.rng.choice((7, 10, 30)))).isoformat()}
        if self.rng.random() < 0.93:  # most with an explicit VAT; the rest get the server's (odd) default
            params["nds"] = float(self.vat_of(summa, deal.vat))
        if self.rng.random() < 0.2:
            params["contract"] = f"Д-2026/{self.rng.randint(1, 999):03d}"
        if self.rng.random() < 0.1:
            params["tip"] = self.rng.choice(["ispeka", "ipre", "iafter"])
        if deal.kind == "rub" and self.rng.random() < 0.05:
            params["rs"] = 2  # the cash desk
        params.update(extra)
        return params

    def add_groups(self, sizes: list[int], first_day: date, tag: str) -> None:
        """Rows in creation-date groups spread over the visible deals."""
        ops: dict[int, list] = {d.did: [] for d in self.visible_deals}
        deals = self.visible_deals
        k = 0
        for g, size in enumerate(sizes):
            day = first_day + timedelta(days=2 * g)
            for _ in range(size):
                deal = deals[k % len(deals)]
                k += 1
                ops[deal.did].append(("invoice/add", self.add_params(deal, day), tag))
        self.per_deal(ops)

    # --- payments -----------------------------------------------------------------------------------
    def unpaid(self, tags_excluded: tuple[str, ...] = ()) -> list[dict]:
        excluded = {c for t in tags_excluded for c in self.ledger.tags.get(t, [])}
        return [r for r in self.live_rows() if r["do"] == "no" and r["iduser"] and r["crid"] not in excluded]

    def pay(self, full: int, partial: int, overpay: int, tag_suffix: str = "") -> None:
        """Pay rows: in full (some with a date.do, which the API ignores), partially (a remainder row with
        the original's creation time), and more than invoiced."""
        candidates = self.unpaid(("declared",))
        self.rng.shuffle(candidates)
        ops: dict[int, list] = {}
        for i, row in enumerate(candidates[: full + partial + overpay]):
            summa = Decimal(row["summa"])
            if i < full:
                params = {"id": row["crid"]}
                if i % 3 == 0:
                    params["date.do"] = "2026-11-20"
                tag = "paid_full"
            elif i < full + partial:
                share = Decimal(self.rng.choice((25, 40, 50, 60))) / 100
                params = {"id": row["crid"], "summa": float((summa * share).quantize(TWO)),
                          "date.do": "2026-11-21"}
                tag = "paid_partial"
            else:
                params = {"id": row["crid"], "summa": float(summa + self.amount(1, 500))}
                tag = "overpaid"
            ops.setdefault(row["did"], []).append(("invoice/do", params, tag + tag_suffix))
        self.per_deal(ops)

    def split_remainders(self, count: int, pay_full: int) -> None:
        """Pay some remainder rows partially again (a third row) and others in full."""
        remainders = [r for r in self.live_rows() if r["crid"] in set(self.ledger.tags.get("remainder", []))
                      and r["do"] == "no"]
        self.rng.shuffle(remainders)
        ops: dict[int, list] = {}
        for i, row in enumerate(remainders[: count + pay_full]):
            if i < count:
                params = {"id": row["crid"], "summa": float((Decimal(row["summa"]) / 3).quantize(TWO))}
                tag = "paid_partial_again"
            else:
                params = {"id": row["crid"]}
                tag = "remainder_paid"
            ops.setdefault(row["did"], []).append(("invoice/do", params, tag))
        self.per_deal(ops)

    def express_and_declared(self, express: int, declared: int, day: date) -> None:
        """``invoice/express`` (a paid row with a payment date; never a remainder row, even when partial) and
        ``invoice/add`` with ``do: "yes"`` (stored as is: unpaid in the CRM, no money booked)."""
        ops: dict[int, list] = {}
        deals = self.visible_deals
        for i in range(express):
            deal = deals[self.rng.randrange(len(deals))]
            params = {"did": deal.did, "invoice": "auto", "summa": float(self.amount()), "date": day.isoformat(),
                      "date.plan": (day + timedelta(days=5)).isoformat()}
            if i % 2 == 0:
                params["date.do"] = (day + timedelta(days=3)).isoformat()
            ops.setdefault(deal.did, []).append(("invoice/express", params, "express"))
        for i in range(declared):
            deal = deals[self.rng.randrange(len(deals))]
            extra = {"do": "yes"}
            if i % 2 == 0:
                extra["date.do"] = (day + timedelta(days=4)).isoformat()
            ops.setdefault(deal.did, []).append(("invoice/add", self.add_params(deal, day, **extra), "declared"))
        self.per_deal(ops)

    def ghost_rows(self, count: int, paid: int, day: date) -> None:
        ghost = self.ghost
        ops = [("invoice/add", self.add_params(ghost, day), "ghost") for _ in range(count)]
        self.per_deal({ghost.did: ops})
        crids = [c for c in self.ledger.tags["ghost"][-count:]][:paid]
        self.per_deal({ghost.did: [("invoice/do", {"id": c}, "ghost_paid") for c in crids]})

    # --- the web UI ---------------------------------------------------------------------------------
    def undo(self, count: int, prefer: str | None = None) -> list[int]:
        """Undo payments as the UI does (do = '', invoice_date = NULL); ``prefer`` a tag to pick from first."""
        paid = [r for r in self.live_rows() if r["do"] == "on" and r["iduser"]]
        preferred = set(self.ledger.tags.get(prefer, [])) if prefer else set()
        paid.sort(key=lambda r: (r["crid"] not in preferred, self.rng.random()))
        chosen = paid[:count]
        for row in chosen:
            self.ui.undo(row["crid"], row["did"])
            self.ledger.tag("undone", row["crid"])
        return [r["crid"] for r in chosen]

    def delete(self, crids: list[int]) -> None:
        for crid in crids:
            did = self.rows[crid]
            self.ui.delete(crid, did)
            self.ledger.deleted[crid] = did
            self.rows.pop(crid)

    def pick_deletions(self, singles: int, remainders: int, whole_split: int, paid: int) -> list[int]:
        """Rows to delete: whole one-row invoices, the remainder row of a split invoice (the invoice stays,
        smaller), every row of a split invoice (the invoice goes), and paid rows."""
        rows = [r for r in self.live_rows() if r["iduser"]]
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault((r["did"], r["invoice"]), []).append(r)
        one = [g[0] for g in groups.values() if len(g) == 1 and g[0]["do"] != "on"]
        split = [g for g in groups.values() if len(g) > 1]
        paid_rows = [g[0] for g in groups.values() if len(g) == 1 and g[0]["do"] == "on"]
        for seq in (one, split, paid_rows):
            self.rng.shuffle(seq)
        chosen = [r["crid"] for r in one[:singles]]
        chosen += [max(r["crid"] for r in g) for g in split[:remainders]]
        for g in split[remainders: remainders + whole_split]:
            chosen += [r["crid"] for r in g]
        chosen += [r["crid"] for r in paid_rows[:paid]]
        return chosen
