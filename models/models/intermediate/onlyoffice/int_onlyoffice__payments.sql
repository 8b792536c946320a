{{ config(enabled=crm_loaded('onlyoffice')) }}

-- ONLYOFFICE has no payment records (no table, no amount, no date): a Paid invoice is one derived payment of
-- its whole cost. The date the status changed is not exposed by the API, so paid_date is null.
select
    invoice_key as payment_key,
    invoice_key,
    source_system,
    cast(null as date) as paid_date,
    amount_gross as amount,
    currency,
    true as is_derived
from {{ ref('int_onlyoffice__invoices') }}
where status = 'paid'
    and not is_deleted
