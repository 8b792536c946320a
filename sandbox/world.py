"""One seeded, synthetic ground truth that every emulated provider renders in its own dialect.

The world holds what *really* happened in the business: clients, deals, currencies and their daily rates,
and for each CRM account its invoices with lines, VAT and payments. Providers (``sandbox/salesman/`` and the
others) turn this into their wire formats, with all their quirks; tests compare the warehouse marts with what
the world says. Every amount is a ``Decimal``; every timestamp is an aware UTC ``datetime``.

The world is mutable: write endpoints of the emulators (add an invoice, pay it) change it, so a test that
creates data through an API still has one truth to compare with.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from math import gcd
from typing import Literal

from crm_invoices.pipelines.registry import ALL_SOURCES, NAMES

CENT = Decimal("0.01")
SYSTEMS = NAMES
# Numbering differs per CRM so that the same number for the same client in two systems is always planted
# on purpose (a reconciliation exception), never a coincidence of the generator.
NUMBER_PREFIX = {spec.name: spec.number_prefix for spec in ALL_SOURCES}
DEFAULT_INVOICES = 90  # per CRM

# The Russian standard VAT rate: 20 % until 2025-12-31, 22 % from 2026-01-01.
VAT_STANDARD_SWITCH = date(2026, 1, 1)

CURRENCY_BASE_RATES = {  # RUB per one unit on 2025-01-01; rates drift deterministically from there.
    "RUB": Decimal("1"),
    "USD": Decimal("90.5000"),
    "EUR": Decimal("98.1000"),
    "CNY": Decimal("12.4500"),
}

# World.generate(boundaries=True): currencies far from the rouble, RUB per unit on every day. Realistic: JPY, KZT,
# VND; IRR at its open-market rate, pinned so that 1 IRR = 0.000001 USD exactly (set in generate). The ends of the
# range the marts promise: XTS (ISO 4217's code for testing) at 1,000,000 RUB and VEF (the bolívar fuerte in its
# last year) at 0.000001 RUB.
BOUNDARY_RATES = {
    "JPY": Decimal("0.59"),
    "KZT": Decimal("0.18"),
    "VND": Decimal("0.0036"),
    "XTS": Decimal("1000000"),
    "VEF": Decimal("0.000001"),
}
LARGEST = Decimal("999999999999.99")  # the largest amount a CRM holds (DECIMAL(18,2) marts hold far more)

CLIENT_NAMES = [
    "Ромашка", "Вектор", "Северный ветер", "Лютик", "Альфа-Трейд", "Берёзка", "Гранит", "Дельта Логистик",
    "Енисей", "Жемчуг", "Заря", "Исток", "Кедр", "Ладога", "Меридиан", "Нева", "Омега", "Пульсар",
    "Рассвет", "Сокол", "Тайга", "Урал-Сервис", "Фрегат", "Хронос", "Циркон", "Чайка", "Шторм", "Эльбрус",
    "Юпитер", "Янтарь",
]
LEGAL_FORMS = ["ООО", "АО", "ИП", "ПАО"]
PRODUCTS = [
    ("Лицензия CRM, 1 место", Decimal("1500.00")),
    ("Внедрение, час", Decimal("3200.00")),
    ("Поддержка, месяц", Decimal("12500.00")),
    ("Обучение сотрудников", Decimal("45000.00")),
    ("Интеграция с 1С", Decimal("87000.00")),
    ("Сервер, аренда", Decimal("9990.90")),
    ("Консультация", Decimal("2750.55")),
    ("Доставка", Decimal("333.33")),
]


def q2(x: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    return x.quantize(CENT, rounding=rounding)


def standard_vat(on: date) -> Decimal:
    return Decimal("22") if on >= VAT_STANDARD_SWITCH else Decimal("20")


# ---- the marts' money rules, in Python (models/macros/money.sql): the ground truth converts with these ------------
def cross_rate(rate_to_base: Decimal, reporting_rate_to_base: Decimal) -> Decimal:
    """Units of the reporting currency per unit, from two rates to the same base (``fx_cross_rate``): the exact
    quotient rounded half up once, to 8 decimals, and below 0.01 to 7 significant digits (at most 12 decimals)."""
    with localcontext() as ctx:
        ctx.prec = 60
        n = int(rate_to_base.quantize(Decimal("1E-8"), ROUND_HALF_UP).scaleb(8))
        d = int(reporting_rate_to_base.quantize(Decimal("1E-8"), ROUND_HALF_UP).scaleb(8))
        truncated = Decimal(n * 10**13 // d).scaleb(-13)  # truncating one digit further rounds the same
        for floor, scale in ((Decimal("0.01"), 8), (Decimal("0.001"), 9), (Decimal("0.0001"), 10),
                             (Decimal("0.00001"), 11)):
            if truncated >= floor:
                return truncated.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP)
        return truncated.quantize(Decimal("1E-12"), ROUND_HALF_UP)


def to_reporting(amount: Decimal, rate: Decimal) -> Decimal:
    """An amount at a rate (``to_reporting``): the exact product, rounded half up (away from zero) once."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (amount * rate).quantize(CENT, ROUND_HALF_UP)


def half_kopeck_amount(rate: Decimal, at_least: Decimal = Decimal("100")) -> Decimal | None:
    """The smallest amount >= ``at_least`` whose conversion at ``rate`` lands exactly on half a kopeck after an
    even one (x.xx5 with an even x.xx), so half up and half even round it differently; None if no amount can."""
    exponent = rate.normalize().as_tuple().exponent
    scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if scale == 0:
        return None  # a whole rate never makes a fraction of a kopeck
    m, big = int(rate.scaleb(scale)), 10**scale
    half = 5 * 10 ** (scale - 1)  # amount (in kopecks) x m ends in ...5000 at the rate's scale
    g = gcd(m, big)
    if half % g:
        return None
    step = big // g
    c = (half // g) * pow(m // g, -1, step) % step
    c += step * max(0, -(-(int(at_least * 100) - c) // step))
    for _ in range(20):
        if (c * m // big) % 2 == 0:
            return Decimal(c).scaleb(-2)
        c += step
    return None


@dataclass
class Client:
    id: int
    name: str
    inn: str


@dataclass
class Deal:
    id: int
    client_id: int
    title: str
    created: date
    # SalesMan keeps amounts in base currency; a deal may carry a display currency with a frozen course.
    display_currency: str | None = None


@dataclass
class Line:
    name: str
    quantity: Decimal
    unit_price: Decimal  # in the invoice currency; gross when vat_included, else net
    vat_rate: Decimal | None  # percent; None = "без НДС" (without VAT)
    vat_included: bool = True
    discount: Decimal = Decimal("0")  # absolute, in the invoice currency, off the line sum

    def amounts(self, rounding: str = ROUND_HALF_UP) -> tuple[Decimal, Decimal, Decimal]:
        """(net, vat, gross) of the line, each rounded to the kopeck."""
        base = q2(self.quantity * self.unit_price - self.discount, rounding)
        rate = self.vat_rate or Decimal("0")
        if self.vat_included:
            vat = q2(base * rate / (Decimal(100) + rate), rounding)
            return base - vat, vat, base
        vat = q2(base * rate / Decimal(100), rounding)
        return base, vat, base + vat


@dataclass
class Payment:
    paid_on: date
    amount: Decimal
    # How the payment was recorded; each provider interprets it (SalesMan: 'ui' keeps the date, 'api'
    # loses it, 'express' is a paid-on-creation invoice; 'undone' was recorded then reverted).
    via: Literal["ui", "api", "express", "undone"] = "ui"


@dataclass
class Invoice:
    system: str
    id: int  # the invoice's id inside its system (logical invoice id)
    number: str
    client_id: int
    deal_id: int
    created_at: datetime  # aware, UTC
    issue_date: date  # business date in the account's zone
    due_date: date
    currency: str
    lines: list[Line]
    payments: list[Payment] = field(default_factory=list)
    status: Literal["draft", "issued", "cancelled"] = "issued"
    kind: str = "invoice"  # provider-specific flavour (bitrix24: 'smart' | 'legacy' | 'template', ...)
    declared_paid: bool = False  # SalesMan invoice/add do='yes': declared paid, never booked
    deleted: bool = False  # hard-deleted in the CRM: the API no longer returns it
    updated_at: datetime | None = None  # last modification (providers that have one)
    # VAT stored on the invoice when the CRM keeps an absolute amount (SalesMan); None = sum of the lines.
    vat_override: Decimal | None = None
    extra: dict = field(default_factory=dict)

    def totals(self, rounding: str = ROUND_HALF_UP) -> tuple[Decimal, Decimal, Decimal]:
        """(net, vat, gross) of the invoice as the sum of its rounded lines."""
        net = vat = gross = Decimal("0.00")
        for line in self.lines:
            n, v, g = line.amounts(rounding)
            net, vat, gross = net + n, vat + v, gross + g
        if self.extra.get("manual_total") is not None:  # a total typed over the lines (Bitrix24 allows it)
            gross = self.extra["manual_total"]
            net = gross - vat
        if self.vat_override is not None:
            vat = self.vat_override
            net = gross - vat
        return net, vat, gross

    @property
    def booked_payments(self) -> list[Payment]:
        return [p for p in self.payments if p.via != "undone"]

    @property
    def amount_paid(self) -> Decimal:
        return sum((p.amount for p in self.booked_payments), Decimal("0.00"))

    def vat_rates(self) -> set[Decimal | None]:
        return {line.vat_rate for line in self.lines}


@dataclass
class World:
    seed: int
    today: date
    clients: list[Client]
    deals: list[Deal]
    rates: dict[tuple[str, date], Decimal]  # (currency, day) -> RUB per unit
    invoices: dict[str, list[Invoice]]
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # reconciliation exceptions planted on purpose: {"rule", "system", "id"} (see plant_anomalies)
    planted: list[dict] = field(default_factory=list)
    # money boundaries (see plant_boundaries): {"case", "system", "id", "reporting"}
    boundaries: list[dict] = field(default_factory=list)

    # ---- lookups -------------------------------------------------------------------------------------
    def client(self, client_id: int) -> Client:
        return self.clients[client_id - 1]

    def deal(self, deal_id: int) -> Deal:
        return self.deals[deal_id - 1]

    def rate(self, currency: str, on: date) -> Decimal:
        """RUB per unit of ``currency`` on ``on`` (the last known day if ``on`` is past the table)."""
        if currency == "RUB":
            return Decimal("1")
        while (currency, on) not in self.rates and on > date(2024, 12, 1):
            on -= timedelta(days=1)
        return self.rates[(currency, on)]

    def has_rate(self, currency: str) -> bool:
        """Whether the world keeps rates for ``currency`` (RUB is the unit every rate is expressed in)."""
        return currency == "RUB" or any((currency, day) in self.rates for day in (self.today, date(2025, 1, 1)))

    def live(self, system: str) -> list[Invoice]:
        return [inv for inv in self.invoices[system] if not inv.deleted]

    def next_invoice_id(self, system: str) -> int:
        """The next free id in ``system`` (O(1): generating 100k invoices must not be quadratic)."""
        counters = self.__dict__.setdefault("_id_counters", {})
        if system not in counters:
            counters[system] = max((inv.id for inv in self.invoices[system]), default=0)
        counters[system] = max(counters[system], len(self.invoices[system])) + 1
        return counters[system]

    # ---- generation ----------------------------------------------------------------------------------
    @classmethod
    def generate(
        cls,
        seed: int = 20261123,
        invoices: dict[str, int] | None = None,
        clients: int = 30,
        today: date = date(2026, 11, 20),
        anomalies: bool = False,
        boundaries: bool = False,
    ) -> World:
        counts = dict.fromkeys(SYSTEMS, DEFAULT_INVOICES)
        counts.update(invoices or {})
        rnd = random.Random(seed)
        start = date(2025, 9, 1)
        span = (today - start).days

        client_list = [
            Client(i, f"{rnd.choice(LEGAL_FORMS)} «{CLIENT_NAMES[(i - 1) % len(CLIENT_NAMES)]}"
                      f"{'' if i <= len(CLIENT_NAMES) else ' ' + str(i)}»",
                   f"{rnd.randrange(10**9, 10**10)}")
            for i in range(1, clients + 1)
        ]
        rates: dict[tuple[str, date], Decimal] = {}
        for code, base in CURRENCY_BASE_RATES.items():
            if code == "RUB":
                continue
            value = base
            day = date(2025, 1, 1)
            while day <= today + timedelta(days=60):
                rates[(code, day)] = value
                drift = Decimal(rnd.randint(-60, 60)) / Decimal(10000)
                value = (value * (1 + drift)).quantize(Decimal("0.0001"))
                day += timedelta(days=1)
        if boundaries:
            # Today's rates with 2 decimals, so every CRM stores them exactly (ONLYOFFICE keeps 2 decimals) and
            # the half-kopeck amounts below are ties in each of them.
            for code in CURRENCY_BASE_RATES:
                if code != "RUB":
                    rates[(code, today)] = q2(rates[(code, today)])
            extra = dict(BOUNDARY_RATES, IRR=rates[("USD", today)] * Decimal("0.000001"))
            day = date(2025, 1, 1)
            while day <= today + timedelta(days=60):
                rates.update({(code, day): value for code, value in extra.items()})
                day += timedelta(days=1)

        world = cls(seed=seed, today=today, clients=client_list, deals=[], rates=rates,
                    invoices={s: [] for s in SYSTEMS})
        total = sum(counts.values())
        # One deal per ~3 invoices, shared by all systems (each CRM knows its own deals; ids are per system).
        for d in range(1, max(2, total // 3) + 1):
            created = start + timedelta(days=rnd.randrange(span))
            display = rnd.choice([None] * 6 + ["USD", "EUR"])
            world.deals.append(Deal(d, rnd.randrange(1, clients + 1), f"Сделка №{d}", created, display))

        for system in SYSTEMS:
            for _ in range(counts.get(system, 0)):
                world.invoices[system].append(world._random_invoice(rnd, system, start, span))
        if anomalies:
            world.plant_anomalies()
        if boundaries:
            world.plant_boundaries()
        return world

    def plant_anomalies(self) -> list[dict]:
        """Plant the disagreements finance must see, one case per rule that plain data can carry, on
        otherwise clean invoices. Everything else in the world is consistent, so the reconciliation report
        must list exactly ``self.planted``."""
        used: set[tuple[str, int]] = set()

        def pick(system: str) -> Invoice | None:
            for inv in self.invoices[system]:
                if (system, inv.id) not in used and not inv.deleted and not inv.payments \
                        and inv.status == "issued" and inv.kind == "invoice":
                    used.add((system, inv.id))
                    return inv
            return None

        def plant(rule: str, inv: Invoice | None) -> None:
            if inv is not None:
                inv.extra.setdefault("planted", []).append(rule)  # providers keep these as plain invoices
                self.planted.append({"rule": rule, "system": inv.system, "id": inv.id})

        for system in SYSTEMS:
            inv = pick(system)
            if inv is not None:
                inv.due_date = inv.issue_date - timedelta(days=3)
                plant("due_before_issue", inv)
        inv = pick("salesman")
        if inv is not None:  # invoice/add with do="yes": declared paid, never booked
            inv.declared_paid = True
            inv.payments = [Payment(inv.issue_date + timedelta(days=2), inv.totals()[2], "ui")]
            plant("declared_paid_not_booked", inv)
        inv = pick("salesman")
        if inv is not None:
            inv.lines = [Line("Пробный период", Decimal(1), Decimal("0.00"), standard_vat(inv.issue_date))]
            plant("non_positive_total", inv)
        inv = pick("salesman")
        if inv is not None:  # 20 % kept on an invoice whose bank account says 22 %
            for line in inv.lines:
                line.vat_rate, line.vat_included = Decimal("22"), True
            inv.vat_override = q2(inv.totals()[2] * 20 / 120)
            plant("vat_rate_mismatch", inv)
        inv = pick("bitrix24")
        if inv is not None:  # a total typed over the lines
            inv.extra["manual_total"] = inv.totals()[2] + Decimal("100.00")
            plant("lines_total_mismatch", inv)
        inv = pick("bitrix24")
        if inv is not None:  # a VAT amount edited on the invoice, not on its lines
            inv.vat_override = inv.totals()[1] + Decimal("1.00")
            plant("vat_lines_mismatch", inv)
        inv = pick("bitrix24")
        if inv is not None:  # overpaid: a liability to refund or allocate
            inv.payments = [Payment(inv.issue_date + timedelta(days=5), inv.totals()[2] + Decimal("500.00"), "ui")]
            inv.kind, inv.extra["b24_recurring_id"] = "smart", None
            plant("payments_exceed_invoice", inv)
        inv = pick("bitrix24")
        if inv is not None:  # money received on an invoice that was then cancelled
            inv.status = "cancelled"
            inv.payments = [Payment(inv.issue_date + timedelta(days=5), q2(inv.totals()[2] / 2), "ui")]
            inv.kind, inv.extra["b24_recurring_id"] = "smart", None
            plant("payments_without_paid_status", inv)
        inv = pick("bitrix24")
        if inv is not None:  # moved to the paid stage by hand, no payment recorded
            inv.payments = [Payment(inv.issue_date + timedelta(days=5), inv.totals()[2], "ui")]
            inv.extra["no_payment_records"] = True
            inv.kind, inv.extra["b24_recurring_id"] = "smart", None
            plant("paid_without_payments", inv)
        inv = pick("bitrix24")
        if inv is not None:  # a currency the portal keeps no rate for
            inv.currency = next(code for code in ("KZT", "AMD") if not self.has_rate(code))
            plant("missing_fx_rate", inv)
        for other in ("bitrix24", "onlyoffice"):  # same number, same client, another amount, another CRM
            ours, theirs = pick("salesman"), pick(other)
            if ours is None or theirs is None:
                continue
            theirs.number, theirs.client_id, theirs.deal_id = ours.number, ours.client_id, ours.deal_id
            if theirs.totals()[2] == ours.totals()[2]:
                theirs.lines[0].quantity += 1
            plant("cross_system_amount_mismatch", ours)
            plant("cross_system_amount_mismatch", theirs)
        return self.planted

    def reporting_rate(self, currency: str, reporting: str) -> Decimal:
        """What the marts convert ``currency`` into ``reporting`` at for an invoice issued today, in every
        sandbox CRM (all keep their books in RUB; a boundary world's rates of today are exact in each)."""
        if currency == reporting:
            return Decimal(1)
        rate = self.rate(currency, self.today)
        return rate if reporting == "RUB" else cross_rate(rate, self.rate(reporting, self.today))

    def plant_boundaries(self) -> list[dict]:
        """Invoices at the edges of what the marts must convert exactly, issued today in every CRM: the largest
        amounts (999,999,999,999.99) at the largest and smallest rates (1,000,000 and 0.000001) and in IRR, VND,
        KZT and JPY; credit notes (negative totals) and a zero total; amounts whose conversion into RUB, USD or
        EUR lands exactly on half a kopeck (recorded with that reporting currency), positive and negative.
        ONLYOFFICE keeps exchange rates with 2 decimals (at most 99,999,999.99) and prices up to 99,999,999.99,
        and its sandbox portal knows RUB, USD, EUR and CNY only: its boundaries are typed rates on the invoice."""
        today = self.today
        created = datetime.combine(today, time(9), tzinfo=UTC)

        def add(system: str, case: str, currency: str, lines: list[Line], reporting: str | None = None,
                paid: bool = False, rate: Decimal | None = None) -> Invoice:
            inv_id = self.next_invoice_id(system)
            deal = self.deals[len(self.boundaries) % len(self.deals)]
            inv = Invoice(system, inv_id, f"{NUMBER_PREFIX[system]}{1000 + inv_id}", deal.client_id, deal.id,
                          created, today, today + timedelta(days=10), currency, lines, updated_at=created)
            # exact lines (no generated levies or discounts), and never a recurring template
            inv.extra.update(exact_lines=True, planted=[f"boundary: {case}"])
            if rate is not None:
                inv.extra["exchange_rate"] = rate  # typed on the invoice (ONLYOFFICE)
            if paid:
                inv.payments.append(Payment(today, inv.totals()[2], "ui"))
            self.invoices[system].append(inv)
            self.boundaries.append({"case": case, "system": system, "id": inv.id, "reporting": reporting})
            if inv.totals()[2] <= 0:
                self.planted.append({"rule": "non_positive_total", "system": system, "id": inv.id})
            return inv

        def one(amount: Decimal, vat: Decimal | None = None) -> list[Line]:
            return [Line("Граничный случай", Decimal(1), amount, vat, vat_included=True)]

        def ties(system: str, pairs: list[tuple[str, str]]) -> None:
            for currency, reporting in pairs:
                amount = half_kopeck_amount(self.reporting_rate(currency, reporting))
                if amount is None:
                    raise ValueError(f"no half-kopeck amount for {currency} -> {reporting} at today's rates")
                add(system, f"half a kopeck {currency} -> {reporting}", currency, one(amount), reporting)
                add(system, f"half a kopeck {currency} -> {reporting}, credit note", currency, one(-amount),
                    reporting)

        vat = Decimal("22")
        # SalesMan: every amount in the account's base currency (RUB); reporting currencies through currency/list
        add("salesman", "largest amount, VAT 22 %, paid", "RUB", one(LARGEST, vat), paid=True)
        add("salesman", "largest credit note", "RUB", one(-LARGEST, vat))
        add("salesman", "zero total", "RUB", one(Decimal("0.00"), vat))
        ties("salesman", [("RUB", "USD"), ("RUB", "EUR")])
        # Bitrix24: any currency in the portal's list, at the current rate (AMOUNT / AMOUNT_CNT)
        add("bitrix24", "largest amount at the largest rate (XTS 1,000,000)", "XTS", one(LARGEST))
        add("bitrix24", "largest credit note at the largest rate", "XTS", one(-LARGEST))
        add("bitrix24", "largest amount at the smallest rate (VEF 0.000001), VAT 22 %, paid", "VEF",
            one(LARGEST, vat), paid=True)
        for code in ("IRR", "VND", "KZT", "JPY"):
            add("bitrix24", f"largest amount in {code}", code, one(LARGEST, vat))
        add("bitrix24", "largest amount in RUB, VAT 22 %", "RUB", one(LARGEST, vat))
        add("bitrix24", "zero total", "JPY", one(Decimal("0.00")))
        ties("bitrix24", [("KZT", "RUB"), ("JPY", "RUB"), ("IRR", "RUB"), ("RUB", "USD"), ("JPY", "USD"),
                          ("IRR", "EUR"), ("RUB", "EUR")])
        # ONLYOFFICE: net prices up to 99,999,999.99 with taxes on top, and the rate typed on each invoice
        top = Decimal("99999999.99")
        big = [Line("Граничный случай", Decimal(10000), top, None, False),
               Line("Граничный случай", Decimal(1), Decimal("99.99"), None, False)]  # 999,999,999,999.99
        add("onlyoffice", "largest amount at the largest rate (typed 1,000,000.00)", "CNY", big,
            rate=Decimal("1000000"))
        add("onlyoffice", "largest amount at the smallest rate it stores (typed 0.01), paid", "USD",
            [Line(ln.name, ln.quantity, ln.unit_price, None, False) for ln in big], paid=True, rate=Decimal("0.01"))
        add("onlyoffice", "near-largest amount in RUB, VAT 22 % on top", "RUB",
            [Line("Граничный случай", Decimal("8196.72"), top, vat, False)])
        add("onlyoffice", "the invoice of issue 8: 37,037,036.70 at 93.23 (overflowed 64 bits)", "USD",
            [Line("Граничный случай", Decimal(1), Decimal("37037036.70"), None, False)], rate=Decimal("93.23"))
        add("onlyoffice", "credit note", "EUR", [Line("Возврат", Decimal(1), Decimal("-12345.67"), vat, False)])
        add("onlyoffice", "zero total", "RUB", [Line("Граничный случай", Decimal(1), Decimal("0.00"), None, False)])
        inv = add("onlyoffice", "a rate typed below half a kopeck is stored as 0.00", "CNY",
                  [Line("Граничный случай", Decimal(1), Decimal("1000.00"), None, False)], rate=Decimal("0.004"))
        self.planted.append({"rule": "missing_fx_rate", "system": "onlyoffice", "id": inv.id})
        ties("onlyoffice", [("USD", "RUB"), ("CNY", "RUB"), ("RUB", "USD"), ("RUB", "EUR")])
        return self.boundaries

    def _random_invoice(self, rnd: random.Random, system: str, start: date, span: int) -> Invoice:
        inv_id = self.next_invoice_id(system)
        deal = self.deals[rnd.randrange(len(self.deals))]
        issue = start + timedelta(days=rnd.randrange(span))
        # Creation time of day in UTC; ties on the same second happen on purpose (batch imports).
        seconds = rnd.choice([rnd.randrange(6 * 3600, 18 * 3600), 9 * 3600])
        created_at = datetime.combine(issue, time(), tzinfo=UTC) + timedelta(seconds=seconds)
        due = issue + timedelta(days=rnd.choice([5, 10, 14, 30, 45]))
        if system == "salesman":
            currency = "RUB"  # SalesMan stores every amount in the account's base currency
        else:
            currency = rnd.choice(["RUB"] * 7 + ["USD", "EUR", "CNY"])
        lines = []
        for _ in range(rnd.choice([1, 1, 2, 3, 4])):
            name, price = PRODUCTS[rnd.randrange(len(PRODUCTS))]
            qty = Decimal(rnd.choice([1, 1, 2, 3, 5, 10, 12]))
            if rnd.random() < 0.1:
                qty = Decimal(rnd.randrange(1, 9999)) / Decimal(1000)  # fractional quantities (hours, kg)
            if currency != "RUB":
                price = q2(price / self.rate(currency, issue))
            roll = rnd.random()
            vat_rate = (standard_vat(issue) if roll < 0.75 else
                        Decimal("10") if roll < 0.85 else Decimal("0") if roll < 0.92 else None)
            lines.append(Line(name, qty, price, vat_rate, vat_included=rnd.random() < 0.8))
        if system == "salesman":
            # One rate per invoice in SalesMan: VAT is an absolute amount derived from the bank account rate.
            rate = lines[0].vat_rate
            for line in lines:
                line.vat_rate, line.vat_included = rate, True
        inv = Invoice(system, inv_id, f"{NUMBER_PREFIX[system]}{1000 + inv_id}", deal.client_id, deal.id, created_at, issue, due,
                      currency, lines)
        inv.updated_at = created_at
        _net, _vat, gross = inv.totals()
        roll = rnd.random()
        pay_day = min(self.today, issue + timedelta(days=rnd.randrange(0, 40)))
        if roll < 0.35:
            pass  # open
        elif roll < 0.75:
            inv.payments.append(Payment(pay_day, gross, rnd.choice(["ui", "ui", "api", "express"])))
        elif roll < 0.9:
            part = q2(gross * Decimal(rnd.randrange(20, 80)) / 100)
            inv.payments.append(Payment(pay_day, part, rnd.choice(["ui", "api"])))
            if rnd.random() < 0.4:
                second = q2((gross - part) * Decimal(rnd.randrange(20, 80)) / 100)
                inv.payments.append(Payment(min(self.today, pay_day + timedelta(days=7)), second, "ui"))
        elif roll < 0.95 and system != "salesman":
            inv.status = rnd.choice(["draft", "cancelled"])
        else:
            inv.payments.append(Payment(pay_day, gross, "undone"))
        if inv.payments:
            last = max(p.paid_on for p in inv.payments)
            inv.updated_at = max(created_at, datetime.combine(last, time(12), tzinfo=UTC))
        return inv


def round_half_even(x: Decimal) -> Decimal:
    return q2(x, ROUND_HALF_EVEN)
