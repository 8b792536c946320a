"""Web links to an invoice in its CRM. The CRM's address comes from the same configuration the load used
(environment or .dlt/*.toml through dlt's accessors), reduced to scheme://host[:port] so no secret (a
Bitrix24 webhook's path) ever reaches the file; without configuration, an account that is a host name is
taken as https://<account>."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Where each CRM's own web UI shows one invoice is the CRM's knowledge: ``sources/<crm>/links.py``. Its address
# is in the settings the registry names as the account's identity (``SourceSpec.identity``).
_HOST = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}(:\d+)?$", re.IGNORECASE)


def _configured(source: str, key: str) -> str | None:
    from ..accounts import provided

    try:
        value = provided(f"sources.{source}", key)
    except Exception:  # noqa: BLE001 - an unreadable config file only means no link
        value = None
    return str(value) if value else None


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _configured_origin(section: str, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = _configured(section, key)
        origin = _origin(value) if value else None
        if origin:
            return origin
    return None


def crm_roots(accounts: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """(source, account) -> the CRM's web root, for every account that has one: a further account's own
    section (``[sources.bitrix24.spb]``, pipelines/accounts.py) first, then the main account's."""
    from ..registry import SOURCES

    roots: dict[tuple[str, str], str] = {}
    for source, names in accounts.items():
        identity = SOURCES[source].identity if source in SOURCES else ()
        configured = _configured_origin(source, identity)
        configured_account = _configured(source, "account")
        for account in names:
            own = _configured_origin(f"{source}.{account}", identity)
            if own:
                roots[(source, account)] = own
            elif configured and (account == configured_account
                                 or account == urlsplit(configured).hostname or len(names) == 1):
                roots[(source, account)] = configured
            elif _HOST.match(account):
                roots[(source, account)] = f"https://{account}"
    return roots


def invoice_url(root: str | None, source: str, source_invoice_id: str) -> str | None:
    import importlib

    from ..registry import SOURCES

    if not root or not source_invoice_id or source not in SOURCES:
        return None
    return importlib.import_module(f"{SOURCES[source].module}.links").invoice_url(root, source_invoice_id)
