"""SalesMan CRM API v3 emulator: ``provider`` serves the API from the world's invoices, ``truth`` holds the
bank accounts and the ``expected_*`` ground truth the marts are compared with, ``wire`` the numbers, formats
and filters as SalesMan's PHP writes and reads them."""

from .provider import CURRENCIES, Row, SalesmanAccount, SalesmanProvider
from .truth import BANK_ACCOUNTS, expected_invoices, expected_lines, expected_payments, normalise_invoice
from .wire import num_format, php_number

__all__ = ["BANK_ACCOUNTS", "CURRENCIES", "Row", "SalesmanAccount", "SalesmanProvider", "expected_invoices",
           "expected_lines", "expected_payments", "normalise_invoice", "num_format", "php_number"]
