"""How a Bitrix24 portal holds the world's invoices: which are smart (entity 31) or legacy (``crm.invoice``),
which legacy ones are recurring templates, the stages, and the wire shapes of both families.

Kept apart from the HTTP emulator (``sandbox/bitrix24/``) so that ``expected_*`` can be computed from the
world with the same rules and without a server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from ..world import CENT, Invoice, Line, World, q2

SMART_CATEGORIES = {  # categoryId -> (name, is_default)
    3: ("Счета", True),
    5: ("Экспорт", False),
}


@dataclass(frozen=True)
class Stage:
    status_id: str
    name: str
    sort: int
    semantics: str | None  # 'S' success, 'F' failure, None in progress


def smart_stages(category_id: int) -> list[Stage]:
    prefix = f"DT31_{category_id}"
    stages = [Stage(f"{prefix}:N", "Новый", 10, None), Stage(f"{prefix}:S", "Отправлен клиенту", 20, None)]
    if category_id == 5:
        # some portals add their own "paid" stage before P: success by semantics, not by its code
        stages.append(Stage(f"{prefix}:UC_PAID1", "Оплачен частями и закрыт", 30, "S"))
    stages += [Stage(f"{prefix}:P", "Оплачен", 40, "S"), Stage(f"{prefix}:D", "Отклонён", 50, "F")]
    return stages


# crm.status.list ENTITY_ID=INVOICE_STATUS: the dictionary carries no semantics; P is the only success,
# whatever sorts after P is a failure (CORE crm_status_invoice.php).
LEGACY_STATUSES = [Stage("N", "Новый", 100, None), Stage("S", "Отправлен", 110, None),
                   Stage("A", "Подтверждён", 120, None), Stage("P", "Оплачен", 130, "S"),
                   Stage("D", "Отклонён", 140, "F")]
# AMOUNT_CNT: CNY is quoted per 10 yuan, JPY and KZT per 100, VND, IRR and VEF per 10,000 (AMOUNT has 4
# decimals, so a rate of 0.000001 is AMOUNT 0.0100 per 10,000).
CURRENCY_NOMINAL = {"RUB": 1, "USD": 1, "EUR": 1, "CNY": 10, "JPY": 100, "KZT": 100, "VND": 10000, "IRR": 10000,
                    "VEF": 10000, "XTS": 1}


def portal_currencies(world: World) -> list[str]:
    """The portal's currency list: RUB (the base) and every currency the world keeps rates for."""
    return [code for code in CURRENCY_NOMINAL if code == "RUB" or world.has_rate(code)]
VAT_SHARE = Decimal(100)


def assign_kinds(world: World) -> None:
    """Decide once, deterministically, how the portal stores each generated invoice.

    Only invoices still of the generic kind are assigned, so calling it again (from ``expected_*``) is a
    no-op. Legacy invoices have no partial payments (an invoice is paid or not), so only invoices whose
    payments fit that model become legacy. A few legacy ones become recurring templates: not invoices.
    """
    rnd = random.Random(f"bitrix24:{world.seed}")  # a separate stream: the world's own draws stay as they are
    with world.lock:
        fresh = [inv for inv in world.invoices["bitrix24"] if inv.kind == "invoice"]
        templates = 0
        for inv in sorted(fresh, key=lambda i: i.id):
            legacy_ok = len(inv.payments) <= 1 and all(
                p.via == "undone" or p.amount == inv.totals()[2] for p in inv.payments)
            roll = rnd.random()
            if legacy_ok and roll < 0.3:
                inv.kind = "legacy"
                # planted anomalies (World.plant_anomalies) must stay invoices: templates never reach the marts
                if templates < max(1, len(fresh) // 40) and inv.status == "issued" and not inv.payments \
                        and not inv.extra.get("planted"):
                    inv.kind = "template"
                    templates += 1
            else:
                inv.kind = "smart"
                inv.extra["b24_category"] = 5 if rnd.random() < 0.25 else 3
            inv.extra["b24_recurring_id"] = None


def stage_of(inv: Invoice) -> str:
    """The stage id (smart) or STATUS_ID (legacy) the world's state maps to."""
    paid = inv.amount_paid
    gross = inv.totals()[2]
    if inv.kind == "smart":
        cat = inv.extra.get("b24_category", 3)
        prefix = f"DT31_{cat}"
        if inv.status == "cancelled":
            return f"{prefix}:D"
        if inv.status == "draft":
            return f"{prefix}:N"
        if paid >= gross and paid > 0:
            return f"{prefix}:UC_PAID1" if cat == 5 and inv.id % 2 == 0 else f"{prefix}:P"
        return f"{prefix}:S"
    if inv.status == "cancelled":
        return "D"
    if inv.status == "draft":
        return "N"
    return "P" if paid >= gross and paid > 0 else "S"


# ---- value formats --------------------------------------------------------------------------------------
def num(x: Decimal | int | None) -> int | float | None:
    """A PHP double as json_encode prints it: whole values without a fraction, else the shortest round trip."""
    if x is None:
        return None
    d = Decimal(x)
    return int(d) if d == d.to_integral_value() else float(d)


def php_str(x: Decimal | int | None) -> str | None:
    """The legacy family's numbers: strings as MySQL returns them (two decimals for money)."""
    if x is None:
        return None
    return f"{Decimal(x):.2f}"


def iso(dt: datetime | None, zone: ZoneInfo) -> str | None:
    """A datetime as ``CRestUtil::ConvertDateTime``: ISO 8601 with the server's offset."""
    if dt is None:
        return None
    return dt.astimezone(zone).isoformat(timespec="seconds")


def iso_date(d: date | None, zone: ZoneInfo) -> str | None:
    """A date-only field as ``CRestUtil::ConvertDate``: midnight UTC shown in the server's offset (so on a
    portal west of Greenwich the wire shows the previous day)."""
    if d is None:
        return None
    return datetime.combine(d, time(), tzinfo=UTC).astimezone(zone).isoformat(timespec="seconds")


def paid_at(d: date) -> datetime:
    return datetime.combine(d, time(12), tzinfo=UTC)


# ---- lines ----------------------------------------------------------------------------------------------
def line_prices(line: Line) -> tuple[Decimal, Decimal]:
    """(price with tax, price without tax) per unit, after discount. The price the user typed is the one the
    tax-included flag names; the other is derived and rounded, as the CRM does."""
    rate = line.vat_rate or Decimal(0)
    if line.vat_included:
        return line.unit_price, q2(line.unit_price * VAT_SHARE / (VAT_SHARE + rate))
    return q2(line.unit_price * (VAT_SHARE + rate) / VAT_SHARE), line.unit_price


def smart_product_rows(inv: Invoice) -> list[dict]:
    rows = []
    for n, line in enumerate(inv.lines, start=1):
        price, exclusive = line_prices(line)
        rows.append({
            "id": inv.id * 100 + n, "ownerId": inv.id, "ownerType": "SI", "productId": 9000 + n,
            "productName": line.name, "price": num(price), "priceAccount": num(price),
            "priceExclusive": num(exclusive), "priceNetto": num(exclusive), "priceBrutto": num(price),
            "quantity": num(line.quantity), "discountTypeId": 1, "discountRate": 0, "discountSum": 0,
            "taxRate": num(line.vat_rate), "taxIncluded": "Y" if line.vat_included else "N",
            "customized": "Y", "measureCode": 796, "measureName": "шт", "sort": n * 10,
            "xmlId": None, "type": 7, "storeId": None,
        })
    return rows


def legacy_product_rows(inv: Invoice) -> list[dict]:
    rows = []
    for n, line in enumerate(inv.lines, start=1):
        price, exclusive = line_prices(line)
        rows.append({
            "ID": str(inv.id * 100 + n), "PRODUCT_ID": str(9000 + n), "PRODUCT_NAME": line.name,
            # PRICE is the price as entered: with tax when VAT_INCLUDED=Y, without it otherwise
            "PRICE": php_str(price if line.vat_included else exclusive), "DISCOUNT_PRICE": "0.00",
            # a coefficient, not a percent (0.2 for 20 %); null for "без НДС"
            "VAT_RATE": None if line.vat_rate is None else str((line.vat_rate / 100).normalize()),
            "VAT_INCLUDED": "Y" if line.vat_included else "N", "QUANTITY": str(line.quantity.normalize()),
            "MEASURE_CODE": "796", "MEASURE_NAME": "шт", "CATALOG_XML_ID": None, "PRODUCT_XML_ID": None,
        })
    return rows


# ---- headers --------------------------------------------------------------------------------------------
def smart_item(inv: Invoice, zone: ZoneInfo) -> dict:
    _net, vat, gross = inv.totals()
    stage = stage_of(inv)
    moved = inv.updated_at or inv.created_at
    return {
        "id": inv.id, "entityTypeId": 31, "title": f"Счёт #{inv.number}", "xmlId": None,
        "accountNumber": inv.number, "categoryId": inv.extra.get("b24_category", 3), "stageId": stage,
        "previousStageId": None, "movedBy": 1, "movedTime": iso(moved, zone),
        "begindate": iso_date(inv.issue_date, zone), "closedate": iso_date(inv.due_date, zone),
        "opportunity": num(gross), "isManualOpportunity": "N", "taxValue": num(vat),
        "currencyId": inv.currency, "companyId": inv.client_id, "contactId": 0, "contactIds": [],
        "mycompanyId": 1, "sourceId": None, "comments": None, "observers": [], "assignedById": 1,
        "createdBy": 1, "updatedBy": 1, "createdTime": iso(inv.created_at, zone),
        "updatedTime": iso(inv.updated_at or inv.created_at, zone), "lastActivityBy": 1,
        "lastActivityTime": iso(inv.updated_at or inv.created_at, zone), "opened": "Y", "webformId": 0,
        "parentId2": inv.deal_id, "parentId7": None, "opportunityAccount": None, "taxValueAccount": None,
        "accountCurrencyId": None, "ufCrm_SMART_INVOICE_1721244707107": None,
    }


def smart_payments(inv: Invoice, zone: ZoneInfo) -> list[dict]:
    if inv.extra.get("no_payment_records"):  # planted: paid stage set by hand, no payment recorded
        return []
    out = []
    for n, p in enumerate(inv.payments, start=1):
        booked = p.via != "undone"
        out.append({
            "id": inv.id * 10 + n, "accountNumber": f"{inv.number}/{n}", "paid": "Y" if booked else "N",
            "datePaid": iso(paid_at(p.paid_on), zone) if booked else None, "empPaidId": 1 if booked else None,
            "paySystemId": 6, "sum": num(p.amount), "currency": inv.currency, "paySystemName": "Безналичный расчёт",
        })
    return out


def legacy_invoice(inv: Invoice, zone: ZoneInfo, recurring_id: int | None, with_rows: bool) -> dict:
    _net, vat, gross = inv.totals()
    status = stage_of(inv)
    paid = status == "P"
    pay_day = max((p.paid_on for p in inv.booked_payments), default=None) if paid else None
    record = {
        "ID": str(inv.id), "ACCOUNT_NUMBER": inv.number, "ORDER_TOPIC": f"Счёт {inv.number}",
        "STATUS_ID": status, "PAYED": "Y" if paid else "N", "PRICE": php_str(gross), "TAX_VALUE": php_str(vat),
        "CURRENCY": inv.currency, "DATE_BILL": iso_date(inv.issue_date, zone),
        "DATE_PAY_BEFORE": iso_date(inv.due_date, zone), "DATE_INSERT": iso(inv.created_at, zone),
        "DATE_UPDATE": iso(inv.updated_at or inv.created_at, zone),
        "DATE_STATUS": iso(inv.updated_at or inv.created_at, zone),
        "DATE_PAYED": iso(paid_at(pay_day), zone) if pay_day else None,
        "DATE_MARKED": None, "PAY_VOUCHER_DATE": iso_date(pay_day, zone) if pay_day else None,
        "PAY_VOUCHER_NUM": f"ПП-{inv.id}" if pay_day else None, "REASON_MARKED": None,
        "EMP_PAYED_ID": "1" if paid else None, "EMP_STATUS_ID": "1", "CREATED_BY": "1", "RESPONSIBLE_ID": "1",
        "PERSON_TYPE_ID": "1", "PAY_SYSTEM_ID": "6", "LID": "s1",
        "IS_RECURRING": "Y" if inv.kind == "template" else "N",
        "RECURRING_ID": None if recurring_id is None else str(recurring_id),
        "XML_ID": None, "COMMENTS": None, "USER_DESCRIPTION": None,
        "UF_COMPANY_ID": str(inv.client_id), "UF_CONTACT_ID": "0", "UF_MYCOMPANY_ID": "1",
        "UF_DEAL_ID": str(inv.deal_id), "UF_QUOTE_ID": "0",
    }
    if with_rows:
        record["PRODUCT_ROWS"] = legacy_product_rows(inv)
        record["INVOICE_PROPERTIES"] = {"COMPANY": f"client {inv.client_id}", "INN": "", "KPP": ""}
        record["PR_LOCATION"] = "0"
    return record


def quantize_rate(rate: Decimal | None) -> Decimal | None:
    return None if rate is None else rate.quantize(CENT)


def days(n: int) -> timedelta:
    return timedelta(days=n)
