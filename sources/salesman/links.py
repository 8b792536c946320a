"""Where SalesMan's own web UI shows an invoice: the deal card holds its invoices (``card.deal?did=``, as the
CRM's own pages link it). Used by the finance report."""

from urllib.parse import quote


def invoice_url(root: str, source_invoice_id: str) -> str | None:
    return f"{root}/card.deal?did={quote(source_invoice_id.split(':')[0])}"
