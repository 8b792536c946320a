"""ONLYOFFICE CRM (API 2.0) constants."""

SOURCE_NAME = "ONLYOFFICE"
API_PREFIX = "/api/2.0/"
AUTH_PATH = "authentication.json"

# web.autofac.config maxPage: both the default and the cap of `count`; larger values are cut silently.
MAX_PAGE_SIZE = 1000
# sortBy=id exists from 12.7; on older servers the default `number` order (unique per portal) is stable.
SORT_BY_ID = "id"
SORT_FALLBACK = "number"

# Status ids on the wire (titles are localised: key on the id).
STATUS_DRAFT = 1

# Taxes whose name matches are VAT (НДС); others (local levies) add to the cost but not to the VAT.
VAT_TAX_PATTERN = r"(?i)(НДС|\bVAT\b|\bNDS\b)"

# Settings users change, for error messages.
ENV = "SOURCES__ONLYOFFICE__"
CREDENTIALS_FIX = (f"set {ENV}TOKEN to a valid API token, or {ENV}USERNAME and {ENV}PASSWORD of a CRM "
                   "administrator without two-factor authentication (the source then requests a token)")
