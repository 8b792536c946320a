"""What the marts must say, computed from the server's own database (app_credit), by the CRM's own rules:
a logical invoice is (did, invoice number), its amount the sum of its rows, paid only where ``do = 'on'``.

Rows deleted in the CRM are gone from its database; the warehouse keeps them marked deleted. So the truth
for an invoice whose rows are all gone is its rows as they were at the last sync that saw them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

ACCOUNT = "127.0.0.1"
FCT_COLUMNS = ["invoice_key", "invoice_number", "deal_id", "client_id", "issue_date", "due_date", "paid_date",
               "status", "currency", "amount_gross", "vat_amount", "amount_net", "amount_paid", "amount_due",
               "created_at", "is_deleted"]


def invoice_key(did: int, invoice: str) -> str:
    return f"salesman:{ACCOUNT}:{did}:{invoice}"


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _invoice(rows: list[dict], deleted: bool) -> dict:
    rows = sorted(rows, key=lambda r: r["crid"])
    first = rows[0]
    gross = sum((Decimal(r["summa"]) for r in rows), Decimal("0"))
    vat = sum((Decimal(r["nds"]) for r in rows), Decimal("0"))
    paid_rows = [r for r in rows if r["do"] == "on"]
    paid = sum((Decimal(r["summa"]) for r in paid_rows), Decimal("0"))
    fully = gross > 0 and paid >= gross
    dates = [d for d in (_day(r["invoice_date"]) for r in paid_rows) if d]
    return {
        "invoice_key": invoice_key(first["did"], first["invoice"]),
        "invoice_number": first["invoice"],
        "deal_id": str(first["did"]),
        "client_id": str(first["clid"]),
        "issue_date": _day(first["issue_date"]),
        "due_date": min(_day(r["datum_credit"]) for r in rows),
        "paid_date": max(dates) if fully and dates else None,
        "status": "paid" if fully else "partially_paid" if paid > 0 else "issued",
        "currency": "RUB",
        "amount_gross": gross,
        "vat_amount": vat,
        "amount_net": gross - vat,
        "amount_paid": paid,
        "amount_due": gross - paid,
        "created_at": datetime.fromtimestamp(int(first["epoch"]), UTC),
        "is_deleted": deleted,
        "_crids": [r["crid"] for r in rows],
    }


def group(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["did"], r["invoice"]), []).append(r)
    return out


def expected_invoices(live: list[dict], last_seen: dict[int, dict]) -> dict[str, dict]:
    """``live``: app_credit now; ``last_seen``: every row as of the last sync that read it (crid -> row).
    Invoices with a live row are computed over their live rows; invoices whose rows were all deleted after
    a sync saw them keep those rows' last amounts, marked deleted."""
    out = {}
    live_groups = group(live)
    for rows in live_groups.values():
        inv = _invoice(rows, False)
        out[inv["invoice_key"]] = inv
    live_ids = {r["crid"] for r in live}
    gone = [r for crid, r in last_seen.items() if crid not in live_ids]
    for key, rows in group(gone).items():
        if key not in live_groups:
            inv = _invoice(rows, True)
            out[inv["invoice_key"]] = inv
    return out


def expected_payments(live: list[dict]) -> dict[str, dict]:
    """One payment per paid row (SalesMan has no payment entity: the paid row is the record)."""
    return {f"salesman:{ACCOUNT}:{r['crid']}": {
        "payment_key": f"salesman:{ACCOUNT}:{r['crid']}", "invoice_key": invoice_key(r["did"], r["invoice"]),
        "paid_date": _day(r["invoice_date"]), "amount": Decimal(r["summa"]), "currency": "RUB"}
        for r in live if r["do"] == "on"}


def as_utc(value) -> datetime | None:
    """DuckDB gives TIMESTAMP as naive UTC and TIMESTAMPTZ as aware: compare both as aware UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def diff(got: dict[str, dict], expected: dict[str, dict], columns: list[str], tags: dict[int, list[str]]
         ) -> list[str]:
    """Human-readable differences: missing and extra keys, then every differing value (with the scenario
    tags of the invoice's rows, so a failure names the case: partial, undone, deleted, ...)."""
    problems = []
    for key in sorted(set(expected) - set(got)):
        crids = expected[key].get("_crids", [])
        problems.append(f"missing {key} rows {crids} {_tags(crids, tags)}")
    for key in sorted(set(got) - set(expected)):
        problems.append(f"unexpected {key}")
    for key in sorted(set(got) & set(expected)):
        g, e = got[key], expected[key]
        for col in columns:
            gv = as_utc(g[col]) if col == "created_at" else g[col]
            if gv != e[col]:
                crids = e.get("_crids", [])
                problems.append(f"{key} {col}: marts {gv!r} != server {e[col]!r} rows {crids} {_tags(crids, tags)}")
    return problems


def _tags(crids: list[int], tags: dict[int, list[str]]) -> str:
    names = sorted({t for c in crids for t in tags.get(c, [])})
    return f"[{', '.join(names)}]" if names else ""
