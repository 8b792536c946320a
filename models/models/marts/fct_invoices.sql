-- One row per logical invoice across all CRMs, with amounts in the invoice currency and the reporting one.
with invoices as (
    select * from {{ ref('int_invoices') }}
),

converted as (
    select
        *,
        -- the rate each source carries; no silent 1:1 when a rate is missing (null, and an exception row)
        case
            when currency = '{{ var("reporting_currency") }}' then {{ fx_rate('1') }}
            when base_currency = '{{ var("reporting_currency") }}' then fx_rate_to_base
        end as fx_rate_to_reporting
    from invoices
)

select
    invoice_key,
    source_system,
    account,
    source_invoice_id,
    invoice_number,
    deal_id,
    client_id,
    client_name,
    issue_date,
    due_date,
    paid_date,
    status,
    currency,
    amount_gross,
    vat_amount,
    amount_net,
    vat_rate,
    amount_paid,
    amount_due,
    fx_rate_to_reporting,
    case when fx_rate_to_reporting = 1 then 'same currency' else fx_rate_source end as fx_rate_source,
    {{ money('amount_gross * fx_rate_to_reporting') }} as amount_gross_reporting,
    created_at,
    is_deleted
from converted
