-- Accounts receivable aging as of the dbt var `as_of` (default: the run date), per source and currency.
{%- set as_of = var('as_of') or run_started_at.strftime('%Y-%m-%d') %}

with open_invoices as (
    select
        source_system,
        currency,
        amount_due,
        {{ dbt.datediff('due_date', "cast('" ~ as_of ~ "' as date)", 'day') }} as days_past_due
    from {{ ref('fct_invoices') }}
    where not is_deleted
        and status in ('issued', 'partially_paid')
        and amount_due > 0
        and issue_date <= cast('{{ as_of }}' as date)
),

bucketed as (
    select
        source_system,
        currency,
        amount_due,
        case
            when days_past_due is null or days_past_due <= 0 then 'current'
            when days_past_due <= 30 then '1-30'
            when days_past_due <= 60 then '31-60'
            when days_past_due <= 90 then '61-90'
            else '90+'
        end as bucket
    from open_invoices
)

select
    cast('{{ as_of }}' as date) as as_of,
    source_system,
    currency,
    bucket,
    count(*) as invoice_count,
    {{ money('sum(amount_due)') }} as amount_due
from bucketed
group by 1, 2, 3, 4
