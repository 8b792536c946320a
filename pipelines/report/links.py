"""Web links to an invoice in its CRM. The CRM's address comes from the same configuration the load used
(environment or .dlt/*.toml through dlt's accessors), reduced to scheme://host[:port] so no secret (a
Bitrix24 webhook's path) ever reaches the file; without configuration, an account that is a host name is
taken as https://<account>."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

# where each CRM's own web UI shows one invoice
#   SalesMan: the deal card holds its invoices (card.deal?did=, as the CRM's own pages link it)
#   Bitrix24: smart invoices are CRM type 31; legacy invoices have their own page
#   ONLYOFFICE: Products/CRM/Invoices.aspx?id= (CommunityServer's invoice page)
URL_SETTINGS = {"salesman": ("base_url",), "bitrix24": ("portal_url", "webhook_url"), "onlyoffice": ("base_url",)}
_HOST = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}(:\d+)?$", re.IGNORECASE)


def _configured(source: str, key: str) -> str | None:
    import dlt

    for accessor in (dlt.config, dlt.secrets):
        try:
            value = accessor.get(f"sources.{source}.{key}")
        except Exception:  # noqa: BLE001 - an unreadable config file only means no link
            value = None
        if value:
            return str(value)
    return None


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def crm_roots(accounts: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """(source, account) -> the CRM's web root, for every account that has one."""
    roots: dict[tuple[str, str], str] = {}
    for source, names in accounts.items():
        configured = None
        for key in URL_SETTINGS.get(source, ()):
            value = _configured(source, key)
            if value:
                configured = _origin(value)
                if configured:
                    break
        configured_account = _configured(source, "account")
        for account in names:
            if configured and (account == configured_account
                               or account == urlsplit(configured).hostname or len(names) == 1):
                roots[(source, account)] = configured
            elif _HOST.match(account):
                roots[(source, account)] = f"https://{account}"
    return roots


def invoice_url(root: str | None, source: str, source_invoice_id: str) -> str | None:
    if not root or not source_invoice_id:
        return None
    if source == "salesman":
        return f"{root}/card.deal?did={quote(source_invoice_id.split(':')[0])}"
    if source == "bitrix24":
        kind, _, number = source_invoice_id.partition(":")
        if kind == "SI":
            return f"{root}/crm/type/31/details/{quote(number)}/"
        if kind == "I":
            return f"{root}/crm/invoice/show/{quote(number)}/"
        return None
    if source == "onlyoffice":
        return f"{root}/Products/CRM/Invoices.aspx?id={quote(source_invoice_id)}"
    return None
