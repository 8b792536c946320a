"""Where Bitrix24's own web UI shows an invoice: smart invoices are CRM type 31; legacy invoices have a page of
their own; recurring templates none. Used by the finance report."""

from urllib.parse import quote


def invoice_url(root: str, source_invoice_id: str) -> str | None:
    kind, _, number = source_invoice_id.partition(":")
    if kind == "SI":
        return f"{root}/crm/type/31/details/{quote(number)}/"
    if kind == "I":
        return f"{root}/crm/invoice/show/{quote(number)}/"
    return None
