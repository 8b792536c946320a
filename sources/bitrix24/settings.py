"""Bitrix24 REST constants."""

SOURCE_NAME = "Bitrix24"
ENV = "SOURCES__BITRIX24__"

SMART_INVOICE = 31  # entityTypeId of smart invoices; the legacy family (5) only has crm.invoice.*
PAGE_SIZE = 50  # fixed by the server for every list method
MAX_BATCH = 50  # commands per batch; more answers ERROR_BATCH_LENGTH_EXCEEDED
PRODUCT_ROW_OWNERS_PER_CALL = 20  # ~2-3 rows per invoice: one 50-row page covers 20 invoices most of the time

# crm.item.list fields we read: fewer columns cost the portal less operating time (the per-method limit)
SMART_SELECT = ["id", "accountNumber", "title", "categoryId", "stageId", "previousStageId", "begindate",
                "closedate", "opportunity", "taxValue", "currencyId", "companyId", "mycompanyId", "parentId2",
                "createdTime", "updatedTime", "movedTime", "isManualOpportunity"]
LEGACY_SELECT = ["ID", "ACCOUNT_NUMBER", "ORDER_TOPIC", "STATUS_ID", "PAYED", "PRICE", "TAX_VALUE", "CURRENCY",
                 "DATE_BILL", "DATE_PAY_BEFORE", "DATE_INSERT", "DATE_UPDATE", "DATE_STATUS", "DATE_PAYED",
                 "PAY_VOUCHER_DATE", "PAY_VOUCHER_NUM", "IS_RECURRING", "RECURRING_ID", "UF_COMPANY_ID",
                 "UF_DEAL_ID", "PERSON_TYPE_ID", "PAY_SYSTEM_ID"]

# Errors that mean "your configuration is wrong", not "try again"
AUTH_ERRORS = {"NO_AUTH_FOUND", "invalid_token", "INVALID_CREDENTIALS", "insufficient_scope", "ACCESS_DENIED",
               "user_access_error", "PORTAL_DELETED", "invalid_grant", "invalid_client"}
RATE_LIMIT_ERRORS = {"QUERY_LIMIT_EXCEEDED"}
OPERATION_LIMIT_ERRORS = {"OPERATION_TIME_LIMIT"}
