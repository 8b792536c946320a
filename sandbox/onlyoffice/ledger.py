"""How an ONLYOFFICE CRM portal holds the world's invoices, and what the warehouse must show for them.

ONLYOFFICE stores net line prices with up to two taxes added on top (never included), a per-line discount in
percent, quantities and prices as DECIMAL(10,2), five statuses and no payments at all. ``normalise_invoice``
shapes a world invoice that way once (deterministically per invoice, so every provider instance and every
``expected_*`` call agree) and keeps the portal-only facts in ``invoice.extra["oo"]``. The cost formula is
the server's ``CalculateInvoiceCost``: banker's rounding per step, taxes not compounded, current tax rates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

from ..world import Invoice, Line, World, q2

ID_OFFSET = 4000  # crm_invoice.id is shared by every tenant of an installation: ours do not start at 1
SYSTEM = "onlyoffice"
DRAFT, SENT, REJECTED, PAID, ARCHIVED = 1, 2, 3, 4, 5
STATUS_TITLES = {DRAFT: "Draft", SENT: "Billed", REJECTED: "Rejected", PAID: "Paid", ARCHIVED: "Archive"}
MART_STATUS = {DRAFT: "draft", SENT: "issued", REJECTED: "cancelled", PAID: "paid", ARCHIVED: "cancelled"}
# InvoiceDao.invoiceStatusMap: anything else is silently ignored by the server.
TRANSITIONS = {(DRAFT, SENT), (SENT, PAID), (SENT, REJECTED), (REJECTED, DRAFT), (PAID, SENT)}


@dataclass
class Tax:
    id: int
    name: str
    rate: Decimal  # percent
    description: str = ""


def default_taxes() -> dict[int, Tax]:
    return {t.id: t for t in [
        Tax(1, "НДС 20%", Decimal("20.00"), "Ставка НДС до 2025-12-31"),
        Tax(2, "НДС 22%", Decimal("22.00"), "Ставка НДС с 2026-01-01"),
        Tax(3, "НДС 10%", Decimal("10.00")),
        Tax(4, "НДС 0%", Decimal("0.00"), "Экспорт"),
        Tax(5, "Курортный сбор", Decimal("2.00"), "Не НДС: местный сбор"),
    ]}


VAT_TAX_BY_RATE = {Decimal("20"): 1, Decimal("22"): 2, Decimal("10"): 3, Decimal("0"): 4}
NON_VAT_TAX = 5


def is_vat(tax: Tax | None) -> bool:
    return tax is not None and "НДС" in tax.name


@dataclass
class OOLine:
    id: int
    item_id: int
    tax1: int  # 0 = none
    tax2: int
    discount: Decimal  # percent
    sort_order: int


@dataclass
class OOState:
    status: int
    exchange_rate: Decimal
    lines: list[OOLine] = field(default_factory=list)
    next_line: int = 0


def q2e(x: Decimal) -> Decimal:
    return q2(x, ROUND_HALF_EVEN)


def oo_id(inv: Invoice) -> int:
    return inv.id + ID_OFFSET


def exchange_rate(world: World, currency: str, on, default_currency: str) -> Decimal:
    """1 unit of the invoice currency in the portal default currency, as stored (DECIMAL(10,2))."""
    if currency == default_currency:
        return Decimal("1.00")
    return q2(world.rate(currency, on) / world.rate(default_currency, on), ROUND_HALF_UP)


def item_id_for(name: str) -> int:
    from ..world import PRODUCTS

    return next((i + 1 for i, (title, _p) in enumerate(PRODUCTS) if title == name), 0)


def state(inv: Invoice) -> OOState:
    return inv.extra["oo"]


def normalise_invoice(world: World, inv: Invoice, default_currency: str = "RUB") -> OOState:
    """Shape a generated invoice as a portal holds it (idempotent)."""
    if "oo" in inv.extra:
        return inv.extra["oo"]
    rnd = random.Random(f"{world.seed}:onlyoffice:{inv.id}")
    original_gross = inv.totals()[2]
    # boundary invoices (World.plant_boundaries) keep their lines exactly: no levies, discounts or extra lines
    exact = inv.extra.get("exact_lines", False)
    if inv.id % 11 == 0 and not exact:
        # Rounding edge cases the UI produces all the time: 0.5 h x 10.01 = 5.005 and 12.25 x 10 % = 1.225,
        # where banker's rounding (the server's) and half-up differ by a kopeck.
        inv.lines.append(Line("Консультация, полчаса", Decimal("0.5"), Decimal("10.01"), Decimal("10"), False))
        inv.lines.append(Line("Доставка по городу", Decimal("1"), Decimal("12.25"), Decimal("10"), False))
    lines = []
    for idx, line in enumerate(inv.lines):
        if line.vat_included:  # portal prices are net: taxes are always added on top
            rate = line.vat_rate or Decimal(0)
            line.unit_price = q2(line.unit_price * 100 / (100 + rate), ROUND_HALF_UP)
            line.vat_included = False
        line.quantity = q2(line.quantity, ROUND_HALF_UP)  # DECIMAL(10,2) column
        tax1 = VAT_TAX_BY_RATE.get(line.vat_rate, 0) if line.vat_rate is not None else 0
        tax2 = 0
        roll = rnd.random()
        if roll < 0.10:
            tax2 = NON_VAT_TAX  # two taxes on a line: VAT plus a local levy
        elif roll < 0.13:
            tax1, tax2 = NON_VAT_TAX, tax1  # the VAT in the second slot
        discount = Decimal(rnd.choice(["5", "7.5", "12.5", "25", "33.33"])) if rnd.random() < 0.12 else Decimal(0)
        if exact:
            tax1, tax2, discount = VAT_TAX_BY_RATE.get(line.vat_rate, 0) if line.vat_rate is not None else 0, 0, Decimal(0)
        lines.append(OOLine(inv.id * 100 + idx + 1, item_id_for(line.name), tax1, tax2, discount, idx))
    if inv.status == "draft":
        status = DRAFT
    elif inv.status == "cancelled":
        status = ARCHIVED if rnd.random() < 0.35 else REJECTED  # Archived is only reachable by data import
    elif inv.amount_paid >= original_gross > 0:
        status = PAID
    else:
        status = SENT  # no partial payments in ONLYOFFICE: part-paid invoices stay Billed
    # the rate typed on the invoice when the world says so (stored with 2 decimals), else the pre-filled one
    typed = inv.extra.get("exchange_rate")
    rate = q2(typed, ROUND_HALF_UP) if typed is not None else exchange_rate(world, inv.currency, inv.issue_date,
                                                                           default_currency)
    st = OOState(status, rate, lines, next_line=len(lines))
    inv.extra["oo"] = st
    return st


def normalise_world(world: World, default_currency: str = "RUB") -> None:
    for inv in world.invoices[SYSTEM]:
        normalise_invoice(world, inv, default_currency)


# ---- the server's arithmetic -------------------------------------------------------------------------------
def line_amounts(line: Line, ol: OOLine, taxes: dict[int, Tax]) -> tuple[Decimal, Decimal, Decimal]:
    """(net after discount, tax1, tax2) exactly as CalculateInvoiceCost computes them."""
    gross = q2e(line.unit_price * line.quantity)
    net = gross - q2e(gross * ol.discount / 100)
    t1 = q2e(net * taxes[ol.tax1].rate / 100) if ol.tax1 in taxes else Decimal("0.00")
    t2 = q2e(net * taxes[ol.tax2].rate / 100) if ol.tax2 in taxes else Decimal("0.00")
    return net, t1, t2


def line_vat(ol: OOLine, t1: Decimal, t2: Decimal, taxes: dict[int, Tax]) -> tuple[Decimal, Decimal | None]:
    """(VAT amount, VAT rate or None = without VAT) of a line."""
    vat, rate = Decimal("0.00"), None
    for tax_id, amount in ((ol.tax1, t1), (ol.tax2, t2)):
        if is_vat(taxes.get(tax_id)):
            vat += amount
            rate = taxes[tax_id].rate if rate is None else rate + taxes[tax_id].rate
    return vat, rate


def invoice_cost(inv: Invoice, taxes: dict[int, Tax]) -> tuple[Decimal, Decimal]:
    """(cost, VAT) of an invoice with the current tax rates."""
    cost = vat = Decimal("0.00")
    for line, ol in zip(inv.lines, state(inv).lines, strict=True):
        net, t1, t2 = line_amounts(line, ol, taxes)
        cost += net + t1 + t2
        vat += line_vat(ol, t1, t2, taxes)[0]
    return q2e(cost), vat


# ---- what the marts must hold ------------------------------------------------------------------------------
def _key(account: str, inv: Invoice) -> str:
    return f"onlyoffice:{account}:{oo_id(inv)}"


def expected_invoices(world: World, account: str = "sandbox", taxes: dict[int, Tax] | None = None,
                      default_currency: str = "RUB") -> list[dict]:
    """What ``marts.fct_invoices`` must hold for ONLYOFFICE, from the world and the portal's rules."""
    taxes = taxes if taxes is not None else default_taxes()
    normalise_world(world, default_currency)
    out = []
    for inv in world.invoices[SYSTEM]:
        st = state(inv)
        cost, vat = invoice_cost(inv, taxes)
        rates = set()
        for line, ol in zip(inv.lines, st.lines, strict=True):
            _net, t1, t2 = line_amounts(line, ol, taxes)
            rates.add(line_vat(ol, t1, t2, taxes)[1])
        paid = cost if st.status == PAID else Decimal("0.00")
        rate = next(iter(rates)) if len(rates) == 1 else None
        out.append({
            "invoice_key": _key(account, inv), "source_system": SYSTEM, "account": account,
            "source_invoice_id": str(oo_id(inv)), "invoice_number": inv.number, "deal_id": str(inv.deal_id),
            "client_id": str(inv.client_id), "issue_date": inv.issue_date, "due_date": inv.due_date,
            "paid_date": None, "status": MART_STATUS[st.status], "currency": inv.currency,
            "amount_gross": cost, "vat_amount": vat, "amount_net": cost - vat,
            "vat_rate": rate.quantize(Decimal("0.01")) if rate is not None else None,
            "amount_paid": paid, "amount_due": cost - paid, "is_deleted": inv.deleted,
            "fx_rate_to_reporting": st.exchange_rate if default_currency == "RUB" else None,
            "amount_gross_reporting": q2(cost * st.exchange_rate, ROUND_HALF_UP) if default_currency == "RUB" else None,
        })
    return out


def expected_lines(world: World, account: str = "sandbox", taxes: dict[int, Tax] | None = None,
                   default_currency: str = "RUB") -> list[dict]:
    taxes = taxes if taxes is not None else default_taxes()
    normalise_world(world, default_currency)
    out = []
    for inv in world.invoices[SYSTEM]:
        for line, ol in zip(inv.lines, state(inv).lines, strict=True):
            net, t1, t2 = line_amounts(line, ol, taxes)
            vat, rate = line_vat(ol, t1, t2, taxes)
            gross = net + t1 + t2
            out.append({"invoice_key": _key(account, inv), "line_number": ol.sort_order + 1,
                        "product_name": line.name, "quantity": line.quantity, "unit_price": line.unit_price,
                        "vat_rate": rate, "vat_amount": vat, "amount_net": gross - vat, "amount_gross": gross})
    return out


def expected_payments(world: World, account: str = "sandbox", taxes: dict[int, Tax] | None = None,
                      default_currency: str = "RUB") -> list[dict]:
    """ONLYOFFICE has no payment records: a Paid invoice is one derived payment of its cost, date unknown."""
    return [{"payment_key": e["invoice_key"], "invoice_key": e["invoice_key"], "paid_date": None,
             "amount": e["amount_gross"], "currency": e["currency"]}
            for e in expected_invoices(world, account, taxes, default_currency)
            if e["status"] == "paid" and not e["is_deleted"]]
