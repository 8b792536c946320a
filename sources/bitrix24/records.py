"""Wire rows to typed records: exact Decimals, UTC instants, business dates, and line amounts.

Line amounts are computed here, with Decimal, from the price the tax-included flag names (the one the user
typed): SQL engines turn decimal division into floats (DuckDB does), which would miss kopecks on half-cent
VAT amounts.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from ..common import SourceError, money
from .settings import SOURCE_NAME

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def _bad(what: str, value: object, field: str) -> SourceError:
    return SourceError(SOURCE_NAME, f"{what} has an unreadable {field}: {str(value)[:60]!r}.",
                       "the portal returned data this source does not understand; report it with the value.")


def instant(value: object, field: str = "datetime") -> datetime | None:
    """An ISO 8601 datetime with the portal's offset, as an aware UTC datetime."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise _bad("a record", value, field) from None
    if parsed.tzinfo is None:
        raise _bad("a record", value, f"{field} (no UTC offset)")
    return parsed.astimezone(UTC)


def business_date(value: object, field: str = "date") -> date | None:
    """A date-only field: the portal writes midnight UTC in its own offset (``2024-06-18T02:00:00+02:00``),
    so the date is the UTC one; slicing the text is wrong west of Greenwich."""
    if value in (None, ""):
        return None
    text = str(value)
    if len(text) == 10:
        return date.fromisoformat(text)
    moment = instant(text, field)
    return moment.date() if moment else None


def local_date(value: object, field: str = "datetime") -> date | None:
    """The business date of an instant: its date on the portal's own clock (the offset it was sent with)."""
    if value in (None, ""):
        return None
    instant(value, field)  # validates
    return datetime.fromisoformat(str(value)).date()


def q2(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def amount(value: object, field: str) -> Decimal | None:
    try:
        return money(value)
    except (TypeError, ValueError):
        raise _bad("a record", value, field) from None


def integer(value: object) -> int | None:
    if value in (None, "", 0, "0"):
        return None
    return int(value)


def line_amounts(price: Decimal, price_exclusive: Decimal, quantity: Decimal, rate: Decimal | None,
                 tax_included: bool) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(unit price as entered, net, vat, gross) of one row, each line rounded to the kopeck."""
    r = rate or Decimal(0)
    if tax_included:
        gross = q2(price * quantity)
        vat = q2(gross * r / (HUNDRED + r))
        return price, gross - vat, vat, gross
    net = q2(price_exclusive * quantity)
    vat = q2(net * r / HUNDRED)
    return price_exclusive, net, vat, net + vat


def smart_invoice(item: dict, context: dict) -> dict:
    for key in ("id", "opportunity", "currencyId", "stageId", "updatedTime"):
        if key not in item:
            raise SourceError(SOURCE_NAME, f"crm.item.list returned an invoice without {key!r} (id "
                              f"{item.get('id')}).", "report it; the select list may not match the portal.")
    return {
        "id": int(item["id"]), "account_number": item.get("accountNumber"), "title": item.get("title"),
        "category_id": integer(item.get("categoryId")) or 0, "stage_id": item.get("stageId"),
        "previous_stage_id": item.get("previousStageId"),
        "begindate": business_date(item.get("begindate"), "begindate"),
        "closedate": business_date(item.get("closedate"), "closedate"),
        "opportunity": amount(item.get("opportunity"), "opportunity"),
        "tax_value": amount(item.get("taxValue"), "taxValue") or Decimal("0"),
        "currency_id": item.get("currencyId"), "company_id": integer(item.get("companyId")),
        "mycompany_id": integer(item.get("mycompanyId")), "deal_id": integer(item.get("parentId2")),
        "is_manual_opportunity": item.get("isManualOpportunity") == "Y",
        "created_at": instant(item.get("createdTime"), "createdTime"),
        "updated_at": instant(item.get("updatedTime"), "updatedTime"),
        "moved_at": instant(item.get("movedTime"), "movedTime"),
        **context,
    }


def legacy_invoice(row: dict, context: dict) -> dict:
    for key in ("ID", "PRICE", "STATUS_ID", "DATE_UPDATE"):
        if key not in row:
            raise SourceError(SOURCE_NAME, f"crm.invoice.list returned an invoice without {key!r} (ID "
                              f"{row.get('ID')}).", "report it; the select list may not match the portal.")
    return {
        "id": int(row["ID"]), "account_number": row.get("ACCOUNT_NUMBER"), "order_topic": row.get("ORDER_TOPIC"),
        "status_id": row.get("STATUS_ID"), "payed": row.get("PAYED") == "Y",
        "price": amount(row.get("PRICE"), "PRICE"), "tax_value": amount(row.get("TAX_VALUE"), "TAX_VALUE"),
        "currency": row.get("CURRENCY"),
        "date_bill": business_date(row.get("DATE_BILL"), "DATE_BILL"),
        "date_pay_before": business_date(row.get("DATE_PAY_BEFORE"), "DATE_PAY_BEFORE"),
        "pay_voucher_date": business_date(row.get("PAY_VOUCHER_DATE"), "PAY_VOUCHER_DATE"),
        "pay_voucher_num": row.get("PAY_VOUCHER_NUM"),
        "created_at": instant(row.get("DATE_INSERT"), "DATE_INSERT"),
        "updated_at": instant(row.get("DATE_UPDATE"), "DATE_UPDATE"),
        "status_changed_at": instant(row.get("DATE_STATUS"), "DATE_STATUS"),
        "paid_at": instant(row.get("DATE_PAYED"), "DATE_PAYED"),
        "paid_date": local_date(row.get("DATE_PAYED"), "DATE_PAYED"),
        "is_recurring": row.get("IS_RECURRING") == "Y",
        "recurring_template_id": integer(row.get("RECURRING_ID")),
        "company_id": integer(row.get("UF_COMPANY_ID")), "deal_id": integer(row.get("UF_DEAL_ID")),
        "pay_system_id": integer(row.get("PAY_SYSTEM_ID")),
        **context,
    }


def smart_product_row(row: dict, context: dict) -> dict:
    rate = amount(row.get("taxRate"), "taxRate")
    included = row.get("taxIncluded") == "Y"
    price = amount(row.get("price"), "price")
    exclusive = amount(row.get("priceExclusive"), "priceExclusive")
    quantity = amount(row.get("quantity"), "quantity")
    if price is None or exclusive is None or quantity is None:
        raise _bad("a product row", row, "price/quantity")
    unit, net, vat, gross = line_amounts(price, exclusive, quantity, rate, included)
    return {
        "id": int(row["id"]), "invoice_id": int(row["ownerId"]), "owner_type": row.get("ownerType"),
        "sort": integer(row.get("sort")) or 0, "product_id": integer(row.get("productId")),
        "product_name": row.get("productName"), "price": price, "price_exclusive": exclusive,
        "price_netto": amount(row.get("priceNetto"), "priceNetto"),
        "price_brutto": amount(row.get("priceBrutto"), "priceBrutto"), "quantity": quantity,
        "discount_type_id": integer(row.get("discountTypeId")),
        "discount_rate": amount(row.get("discountRate"), "discountRate"),
        "discount_sum": amount(row.get("discountSum"), "discountSum"),
        "tax_rate": rate, "tax_included": included, "measure_name": row.get("measureName"),
        "unit_price": unit, "amount_net": net, "vat_amount": vat, "amount_gross": gross,
        **context,
    }


def legacy_product_row(row: dict, invoice_id: int, position: int, context: dict) -> dict:
    coefficient = amount(row.get("VAT_RATE"), "VAT_RATE")
    rate = None if coefficient is None else coefficient * HUNDRED  # a coefficient on the wire: 0.2 = 20 %
    included = row.get("VAT_INCLUDED") == "Y"
    price = amount(row.get("PRICE"), "PRICE")
    quantity = amount(row.get("QUANTITY"), "QUANTITY")
    if price is None or quantity is None:
        raise _bad("a legacy product row", row, "PRICE/QUANTITY")
    unit, net, vat, gross = line_amounts(price, price, quantity, rate, included)
    return {
        "id": int(row["ID"]), "invoice_id": invoice_id, "sort": position, "product_id": integer(row.get("PRODUCT_ID")),
        "product_name": row.get("PRODUCT_NAME"), "price": price,
        "discount_price": amount(row.get("DISCOUNT_PRICE"), "DISCOUNT_PRICE"), "quantity": quantity,
        "vat_rate_coefficient": coefficient, "tax_rate": rate, "tax_included": included,
        "measure_name": row.get("MEASURE_NAME"),
        "unit_price": unit, "amount_net": net, "vat_amount": vat, "amount_gross": gross,
        **context,
    }


def smart_payment(row: dict, invoice_id: int, context: dict) -> dict:
    return {
        "id": int(row["id"]), "invoice_id": invoice_id, "account_number": row.get("accountNumber"),
        "paid": row.get("paid") == "Y", "paid_at": instant(row.get("datePaid"), "datePaid"),
        "paid_date": local_date(row.get("datePaid"), "datePaid"),
        "amount": amount(row.get("sum"), "sum"), "currency": row.get("currency"),
        "pay_system_id": integer(row.get("paySystemId")), "pay_system_name": row.get("paySystemName"),
        **context,
    }
