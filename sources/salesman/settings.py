"""SalesMan CRM API v3 constants."""

SOURCE_NAME = "SalesMan"
API_PREFIX = "/developer/v3/"

# invoice/list pages by the account's "records per page" (num_client, 30 by default, at most 100 in the UI):
# never assume the documented 200. Order by creation date ascending so that new invoices, the most common
# change during a run, land on the last page instead of shifting every page under the reader.
INVOICE_LIST_ORDER = {"order": "date_create", "first": "old"}
DEAL_PAGE_SIZE = 200  # deal/list is hard-coded to 200 rows per page, 0-based offset
# Below this many changed rows (plus twice the deal/list pages), details come from one invoice/info per row,
# which also carries the deal's display currency; above it, from deal/list in bulk.
BULK_DETAILS_MIN_ROWS = 20
# Rows loaded before that a read lacks are confirmed gone through their deal's list (one request each);
# beyond this many deals, deal/list (200 deals a request) first rules out the ones it no longer has.
VERIFY_DEALS_BEFORE_INDEX = 10

# Error codes that mean "your configuration is wrong" (both answered for a bad key depending on the build).
AUTH_ERROR_CODES = {400, 401}

# tip is stored as the Russian label; map it back to the API codes.
TIP_CODES = {
    "По спецификации": "ispeka",
    "Счет-договор": "ioffer",
    "По договору": "icontract",
    "Предварительная оплата": "ipre",
    "Окончательная оплата": "iafter",
}

# List-row fields that feed the change fingerprint: a change in any of them re-fetches invoice/info.
FINGERPRINT_FIELDS = ("crid", "did", "clid", "invoice", "contract", "summa", "date_create", "date_plan",
                      "date_fact", "color", "mc")

