"""SalesMan's ground truth: the bank accounts the VAT rates live on, the shape SalesMan gives a generated
invoice, and the ``expected_*`` rows the marts are compared with (computed from the world, not the rows)."""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo

from ..world import CENT, Invoice, World, q2, standard_vat

# Own-company bank accounts / cash desks (guides/company.bank); ndsDefault is a string on the wire.
BANK_ACCOUNTS = [
    {"id": 1, "mcid": 1, "tip": "bank", "isDefault": "yes", "ndsDefault": "20", "compNameRs": "Основной расчетный счет"},
    {"id": 2, "mcid": 1, "tip": "kassa", "isDefault": "", "ndsDefault": "0", "compNameRs": "Касса"},
    {"id": 3, "mcid": 1, "tip": "bank", "isDefault": "", "ndsDefault": "22", "compNameRs": "Расчетный счет НДС 22%"},
    {"id": 4, "mcid": 1, "tip": "bank", "isDefault": "", "ndsDefault": "10", "compNameRs": "Счет НДС 10%"},
]
RS_BY_RATE = {Decimal(a["ndsDefault"]): a["id"] for a in BANK_ACCOUNTS if a["tip"] == "bank"} | {Decimal(0): 2}


def normalise_invoice(inv: Invoice) -> None:
    """Shape a generated invoice the way SalesMan can hold it: one VAT rate from the bank account, VAT as
    an absolute amount computed on the whole invoice, 'without VAT' indistinguishable from 0 %."""
    if inv.vat_override is not None:
        return
    rate = next(iter(inv.vat_rates())) or Decimal(0)
    if rate not in RS_BY_RATE:
        rate = standard_vat(inv.issue_date)
    for line in inv.lines:
        line.vat_rate, line.vat_included = rate, True
    gross = inv.totals()[2]
    inv.vat_override = q2(gross * rate / (100 + rate))


def expected_invoices(world: World, account: str = "sandbox", timezone: str = "Asia/Yekaterinburg") -> list[dict]:
    """What ``marts.fct_invoices`` must hold for SalesMan, computed from the world (not from the rows)."""
    out = []
    for inv in world.invoices["salesman"]:
        normalise_invoice(inv)
        _net, vat, gross = inv.totals()
        booked = [] if inv.declared_paid else inv.booked_payments
        paid = sum((p.amount for p in booked), Decimal("0.00"))
        if paid <= 0:
            status = "issued"
        elif paid >= gross:
            status = "paid"
        else:
            status = "partially_paid"
        dates = [p.paid_on for p in booked if p.via in ("ui", "express")]
        rate = next(iter(inv.vat_rates())) or Decimal(0)
        out.append({
            "invoice_key": f"salesman:{account}:{inv.deal_id}:{inv.number}", "source_system": "salesman",
            "account": account, "invoice_number": inv.number, "deal_id": str(inv.deal_id),
            "client_id": str(inv.client_id), "issue_date": inv.created_at.astimezone(ZoneInfo(timezone)).date(), "due_date": inv.due_date,
            "paid_date": max(dates) if status == "paid" and dates else None,
            "status": status, "currency": "RUB", "amount_gross": gross, "vat_amount": vat,
            "amount_net": gross - vat, "vat_rate": rate.quantize(CENT), "amount_paid": paid,
            "amount_due": gross - paid, "is_deleted": inv.deleted,
        })
    return out


def expected_lines(world: World, account: str = "sandbox") -> list[dict]:
    """SalesMan's API exposes no invoice lines."""
    return []


def expected_payments(world: World, account: str = "sandbox") -> list[dict]:
    """Each paid row is a payment: one per booked payment of a live, not merely declared-paid invoice.
    SalesMan has no payment id, so compare on (invoice_key, paid_date, amount)."""
    out = []
    for inv in world.invoices["salesman"]:
        if inv.deleted or inv.declared_paid:
            continue
        for p in inv.booked_payments:
            out.append({"invoice_key": f"salesman:{account}:{inv.deal_id}:{inv.number}", "source_system": "salesman",
                        "paid_date": None if p.via == "api" else p.paid_on, "amount": p.amount, "currency": "RUB"})
    return out
