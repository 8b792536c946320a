"""Ground truth for the marts: what ``fct_invoices``, ``fct_invoice_lines`` and ``fct_payments`` must hold for
Bitrix24, computed from the world with the portal's own rules (``render``)."""

from __future__ import annotations

from decimal import Decimal

from ..world import Invoice, World
from . import render as R


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
