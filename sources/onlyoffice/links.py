"""Where ONLYOFFICE's own web UI shows an invoice: ``Products/CRM/Invoices.aspx?id=`` (CommunityServer's invoice
page). Used by the finance report."""

from urllib.parse import quote


def invoice_url(root: str, source_invoice_id: str) -> str | None:
    return f"{root}/Products/CRM/Invoices.aspx?id={quote(source_invoice_id)}"
