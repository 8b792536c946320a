{{ config(enabled=crm_loaded('bitrix24')) }}

-- Bitrix24 invoices of both families as logical invoices; recurring templates are not invoices.
-- Status comes from the stage's semantics (success = paid, failure = cancelled) and from payments: a smart
-- invoice in an in-progress stage with some money booked is partially paid.
with invoices as (
    select * from {{ ref('stg_bitrix24__invoices') }}
    where not is_template
),

stages as (
    select * from {{ ref('stg_bitrix24__stages') }}
),

paid as (
    select
        invoice_key,
        sum(amount) as amount_paid,
        max(paid_date) as last_paid_date
    from {{ ref('stg_bitrix24__payments') }}
    where is_paid
    group by invoice_key
),

line_rates as (
    select
        invoice_key,
        count(distinct coalesce(tax_rate, -1)) as rate_count,
        min(tax_rate) as tax_rate
    from {{ ref('stg_bitrix24__product_rows') }}
    group by invoice_key
),

base_currency as (
    select account, currency as base_currency
    from (
        select
            account,
            currency,
            row_number() over (partition by account order by snapshot_date desc) as rn
        from {{ ref('stg_bitrix24__currencies') }}
        where is_base
    ) as b
    where rn = 1
),

rates as (
    -- the snapshot nearest to the invoice date (Bitrix24 has no per-document rate)
    select
        invoices.invoice_key,
        currencies.rate_to_base,
        currencies.snapshot_date,
        row_number() over (
            partition by invoices.invoice_key
            order by abs({{ dbt.datediff('invoices.issue_date', 'currencies.snapshot_date', 'day') }}),
                currencies.snapshot_date desc
        ) as rn
    from invoices
    inner join {{ ref('stg_bitrix24__currencies') }} as currencies
        on currencies.account = invoices.account
        and currencies.currency = invoices.currency
),

companies as (
    select * from {{ ref('stg_bitrix24__companies') }}
),

joined as (
    select
        invoices.*,
        companies.title as client_name,
        stages.semantics,
        coalesce(stages.is_first, false) as is_first_stage,
        case
            when invoices.kind = 'legacy' and stages.semantics = 'S' then invoices.amount_gross
            when invoices.kind = 'legacy' then 0
            else coalesce(paid.amount_paid, 0)
        end as amount_paid,
        case when invoices.kind = 'legacy' then invoices.legacy_paid_date else paid.last_paid_date end as last_paid_date,
        case when line_rates.rate_count = 1 then line_rates.tax_rate end as vat_rate,
        base_currency.base_currency,
        rates.rate_to_base,
        rates.snapshot_date as rate_snapshot_date
    from invoices
    left join stages
        on stages.account = invoices.account
        and stages.entity_id = invoices.stage_entity
        and stages.status_id = invoices.stage_code
    left join paid
        on paid.invoice_key = invoices.invoice_key
    left join line_rates
        on line_rates.invoice_key = invoices.invoice_key
    left join companies
        on companies.account = invoices.account
        and companies.company_id = invoices.company_id
    left join base_currency
        on base_currency.account = invoices.account
    left join rates
        on rates.invoice_key = invoices.invoice_key
        and rates.rn = 1
),

classified as (
    select
        *,
        case
            when semantics = 'F' then 'cancelled'
            when semantics = 'S' then 'paid'
            when amount_paid > 0 and amount_paid >= amount_gross then 'paid'
            when amount_paid > 0 then 'partially_paid'
            when is_first_stage then 'draft'
            else 'issued'
        end as status
    from joined
)

select
    invoice_key,
    'bitrix24' as source_system,
    account,
    source_invoice_id,
    invoice_number,
    cast(deal_id as {{ dbt.type_string() }}) as deal_id,
    cast(company_id as {{ dbt.type_string() }}) as client_id,
    client_name,
    issue_date,
    due_date,
    case when status = 'paid' then last_paid_date end as paid_date,
    status,
    currency,
    {{ money('amount_gross') }} as amount_gross,
    {{ money('vat_amount') }} as vat_amount,
    {{ money('amount_gross - vat_amount') }} as amount_net,
    {{ percent('vat_rate') }} as vat_rate,
    {{ money('amount_paid') }} as amount_paid,
    {{ money('amount_gross - amount_paid') }} as amount_due,
    base_currency,
    {{ fx_rate('rate_to_base') }} as fx_rate_to_base,
    case when rate_to_base is not null
        then 'bitrix24 crm.currency.list snapshot of ' || cast(rate_snapshot_date as {{ dbt.type_string() }})
    end as fx_rate_source,
    created_at,
    is_deleted,
    false as is_declared_paid
from classified
