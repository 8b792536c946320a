"""ONLYOFFICE CRM emulator: ``provider`` serves the API, ``ledger`` holds the portal's rules and the
``expected_*`` ground truth the marts are compared with, ``wire`` the envelope, numbers and dates."""

from .ledger import expected_invoices, expected_lines, expected_payments, normalise_world
from .provider import OnlyofficePortal, OnlyofficeProvider

__all__ = ["OnlyofficePortal", "OnlyofficeProvider", "expected_invoices", "expected_lines", "expected_payments",
           "normalise_world"]
