"""ONLYOFFICE wrappers (camelCase on the wire, whatever the PascalCase docs say) to flat, typed records."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal

from ..common import money
from .helpers import fail

# yyyy-MM-ddTHH:mm:ss.fffffff±hh:mm or ...Z; Python reads at most 6 fractional digits.
_API_DT = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$")


def parse_api_datetime(text: str | None) -> datetime | None:
    """ApiDateTime (portal wall time + the portal's offset at that instant) as an aware UTC datetime."""
    if not text:
        return None
    m = _API_DT.match(text)
    if not m:
        raise ValueError(f"not an ONLYOFFICE date-time: {text!r}")
    day, clock, frac, zone = m.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{day}T{clock}.{(frac or '0')[:6].ljust(6, '0')}{zone}").astimezone(UTC)


def business_date(text: str | None) -> date | None:
    """Issue and due dates are local midnights: the business date is the wall-clock date as sent. Converting
    to UTC first would move it back a day on every portal east of Greenwich."""
    if not text:
        return None
    return date.fromisoformat(text[:10])


def fingerprint(row: dict) -> str:
    payload = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def _dig(row: dict, *path: str):
    for key in path:
        if not isinstance(row, dict):
            return None
        row = row.get(key)
    return row


def _amount(row: dict, key: str, what: str) -> Decimal | None:
    try:
        return money(row.get(key))
    except (TypeError, ValueError) as exc:
        raise fail(f"{what} {row.get('id')} has a malformed {key} ({exc}).",
                   "the portal returned a malformed record; retry later. Nothing from this run was loaded.") from None


def invoice_record(row: dict, scan: int) -> dict:
    for key in ("id", "status", "number", "issueDate", "cost", "currency"):
        if row.get(key) is None:
            raise fail(f"invoice {row.get('id')} in invoice/filter has no {key}.",
                       "the portal returned a malformed page; retry later. Nothing from this run was loaded.")
    try:
        created_at = parse_api_datetime(row.get("createOn"))
        issue, due = business_date(row.get("issueDate")), business_date(row.get("dueDate"))
    except ValueError as exc:
        raise fail(f"invoice {row['id']} has a malformed date ({exc}).",
                   "the portal returned a malformed page; retry later. Nothing from this run was loaded.") from None
    return {
        "id": row["id"],
        "number": str(row["number"]),
        "status_id": _dig(row, "status", "id"),
        "status_title": _dig(row, "status", "title"),
        "issue_date": issue,
        "due_date": due,
        "issue_date_raw": row.get("issueDate"),
        "due_date_raw": row.get("dueDate"),
        "template_type": row.get("templateType"),
        "contact_id": _dig(row, "contact", "id"),
        "contact_name": _dig(row, "contact", "displayName"),
        "consignee_id": _dig(row, "consignee", "id"),
        "entity_type": _dig(row, "entity", "entityType"),
        "entity_id": _dig(row, "entity", "entityId"),
        "entity_title": _dig(row, "entity", "entityTitle"),
        "language": row.get("language"),
        "currency": _dig(row, "currency", "abbreviation"),
        "exchange_rate": _amount(row, "exchangeRate", "invoice"),
        "cost": _amount(row, "cost", "invoice"),
        "purchase_order_number": row.get("purchaseOrderNumber"),
        "terms": row.get("terms"),
        "description": row.get("description"),
        "file_id": row.get("fileID"),
        "created_at": created_at,
        "create_on_raw": row.get("createOn"),
        "created_by_id": _dig(row, "createBy", "id"),
        "created_by_name": _dig(row, "createBy", "displayName"),
        "_fingerprint": fingerprint(row),
        "_scan": scan,
    }


def line_records(invoice: dict) -> list[dict]:
    out = []
    for line in invoice.get("invoiceLines") or []:
        if not isinstance(line, dict) or line.get("id") is None:
            raise fail(f"invoice {invoice.get('id')} has a line without an id.",
                       "the portal returned a malformed invoice; retry later. Nothing from this run was loaded.")
        out.append({
            "id": line["id"],
            "invoice_id": invoice["id"],
            "invoice_item_id": line.get("invoiceItemID") or None,
            "tax1_id": line.get("invoiceTax1ID") or None,  # 0 means no tax
            "tax2_id": line.get("invoiceTax2ID") or None,
            "sort_order": line.get("sortOrder") or 0,
            "description": line.get("description"),
            "quantity": _amount(line, "quantity", "invoice line"),
            "price": _amount(line, "price", "invoice line"),
            "discount": _amount(line, "discount", "invoice line") or Decimal(0),
        })
    return out


def tax_record(tax: dict, vat_pattern: re.Pattern) -> dict:
    return {"id": tax["id"], "name": tax.get("name"), "description": tax.get("description"),
            "rate": _amount(tax, "rate", "tax"), "is_vat": bool(vat_pattern.search(tax.get("name") or ""))}


def item_record(item: dict) -> dict:
    return {"id": item["id"], "title": item.get("title"), "sku": item.get("stockKeepingUnit"),
            "description": item.get("description"), "price": _amount(item, "price", "catalog item"),
            "currency": _dig(item, "currency", "abbreviation"),
            "stock_quantity": _amount(item, "stockQuantity", "catalog item"),
            "track_inventory": item.get("trackInvenory"),  # sic: the server's spelling
            "tax1_id": _dig(item, "invoiceTax1", "id"), "tax2_id": _dig(item, "invoiceTax2", "id"),
            "created_at": parse_api_datetime(item.get("createOn"))}
