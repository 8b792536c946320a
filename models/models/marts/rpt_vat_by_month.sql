-- VAT per month of issue, source, currency and rate, for the VAT return and its checks.
-- Lines carry the rate where a CRM has lines (one invoice can mix rates); otherwise the invoice's own rate.
-- Drafts, cancelled and deleted invoices are not part of the VAT base.
with invoices as (
    select *
    from {{ ref('fct_invoices') }}
    where not is_deleted and status not in ('draft', 'cancelled')
),

lines as (
    select * from {{ ref('fct_invoice_lines') }}
),

by_line as (
    select
        invoices.invoice_key,
        invoices.issue_date,
        invoices.source_system,
        invoices.currency,
        lines.vat_rate,
        lines.amount_net,
        lines.vat_amount,
        lines.amount_gross
    from invoices
    inner join lines on lines.invoice_key = invoices.invoice_key
),

by_invoice as (
    select
        invoice_key, issue_date, source_system, currency, vat_rate, amount_net, vat_amount, amount_gross
    from invoices
    where not exists (select 1 from lines where lines.invoice_key = invoices.invoice_key)
),

unioned as (
    select * from by_line
    union all
    select * from by_invoice
)

select
    cast({{ dbt.date_trunc('month', 'issue_date') }} as date) as month,
    source_system,
    currency,
    vat_rate,
    count(distinct invoice_key) as invoice_count,
    {{ money('sum(amount_net)') }} as amount_net,
    {{ money('sum(vat_amount)') }} as vat_amount,
    {{ money('sum(amount_gross)') }} as amount_gross
from unioned
group by 1, 2, 3, 4
