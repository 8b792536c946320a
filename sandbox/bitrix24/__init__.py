"""Bitrix24 portal emulator (``/rest/``) and its OAuth server (``/oauth/token/``), rendered from the world.

Behaviour follows ``shared/api/bitrix24.md``: inbound webhooks (``/rest/<user>/<secret>/<method>``) and OAuth
(``/rest/<method>`` with ``auth``), params as a JSON body or PHP-style brackets (``filter[>id]=5``),
``crm.item.*`` in camelCase with real JSON numbers and ISO datetimes carrying the portal's offset, the legacy
``crm.invoice.*`` family in UPPER_CASE with strings for numbers and ``ID DESC`` as default order, pages of 50
with ``start=-1`` switching counting off, ``batch`` (at most 50 commands, ``$result[...]`` references,
``result_error`` / ``result_next``, empty maps as ``[]``), a per-portal leaky bucket answering 503
``QUERY_LIMIT_EXCEEDED``, per-method ``OPERATION_TIME_LIMIT`` blocks (429), access tokens that expire and
refresh tokens that rotate on every use.

Modules: ``options`` (the portal's settings), ``limiter`` (its leaky bucket), ``wire`` (errors, PHP params,
batch references), ``oauth`` (webhooks, OAuth tokens), ``batch`` (the batch engine), ``query`` (filters,
order, select), ``methods`` (the REST methods), ``provider`` (the HTTP door and test helpers), ``truth`` (what the marts must hold).
"""

from .options import Bitrix24Portal
from .provider import Bitrix24Provider
from .truth import expected_invoices, expected_lines, expected_payments
from .wire import BitrixError, php_params

__all__ = ["BitrixError", "Bitrix24Portal", "Bitrix24Provider", "expected_invoices", "expected_lines",
           "expected_payments", "php_params"]
