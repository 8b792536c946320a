-- One row per logical invoice across all CRMs, with amounts in the invoice currency and the reporting one.
{%- set reporting = var("reporting_currency") %}

with invoices as (
    select * from {{ ref('int_invoices') }}
),

-- the reporting currency's own rate to the account's base, from the same source, nearest the issue date
reporting_rate as (
    select
        invoices.invoice_key,
        rates.rate_to_base,
        rates.rate_date,
        row_number() over (
            partition by invoices.invoice_key
            order by abs({{ dbt.datediff('rates.rate_date', 'invoices.issue_date', 'day') }}), rates.rate_date desc
        ) as nearest
    from invoices
    inner join {{ ref('int_fx_rates') }} as rates
        on rates.source_system = invoices.source_system
        and rates.account = invoices.account
        and rates.currency = '{{ reporting }}'
    -- only the invoices the cross rate is for (see converted): most are in the reporting or the base
    -- currency, and ranking every invoice's rates cost seconds at a million invoices
    where invoices.currency is distinct from '{{ reporting }}'
        and invoices.base_currency is distinct from '{{ reporting }}'
),

converted as (
    select
        invoices.*,
        -- the rate each source carries; no silent 1:1 when a rate is missing (null, and an exception row).
        -- A cross rate is the exact quotient of the two rates to the base, rounded once (fx_cross_rate).
        case
            when invoices.currency = '{{ reporting }}' then {{ reporting_rate('1') }}
            when invoices.base_currency = '{{ reporting }}' then {{ reporting_rate('invoices.fx_rate_to_base') }}
            when invoices.fx_rate_to_base is not null and reporting_rate.rate_to_base is not null
                then {{ fx_cross_rate('invoices.fx_rate_to_base', 'reporting_rate.rate_to_base') }}
        end as fx_rate_to_reporting,
        case
            when invoices.currency = '{{ reporting }}' then 'same currency'
            when invoices.base_currency = '{{ reporting }}' then invoices.fx_rate_source
            when invoices.fx_rate_to_base is not null and reporting_rate.rate_to_base is not null
                then invoices.fx_rate_source || '; divided by the ' || invoices.source_system || ' rate of '
                    || '{{ reporting }}' || ' to ' || invoices.base_currency || ' on '
                    || cast(reporting_rate.rate_date as {{ dbt.type_string() }})
        end as fx_rate_source_used
    from invoices
    left join reporting_rate
        on reporting_rate.invoice_key = invoices.invoice_key
        and reporting_rate.nearest = 1
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
    -- cast again: PostgreSQL's CASE keeps numeric but drops the (38,12) of its branches
    {{ reporting_rate('fx_rate_to_reporting') }} as fx_rate_to_reporting,
    fx_rate_source_used as fx_rate_source,
    {{ to_reporting('amount_gross', 'fx_rate_to_reporting') }} as amount_gross_reporting,
    created_at,
    is_deleted
from converted
