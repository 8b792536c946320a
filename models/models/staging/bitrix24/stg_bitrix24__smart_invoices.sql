{{ config(enabled=crm_loaded('bitrix24')) }}

-- Smart invoices (crm.item.list, entity 31) in the shape both invoice families share (stg_bitrix24__invoices).
with smart_invoices as (
    select * from {{ source('bitrix24', 'smart_invoices') }}
),

final as (
    select
        account,
        'smart' as kind,
        'SI:' || cast(id as {{ dbt.type_string() }}) as source_invoice_id,
        cast(id as bigint) as id,
        account_number as invoice_number,
        cast(deal_id as bigint) as deal_id,
        cast(company_id as bigint) as company_id,
        cast(begindate as date) as issue_date,
        cast(closedate as date) as due_date,
        currency_id as currency,
        {{ money('opportunity') }} as amount_gross,
        {{ money('tax_value') }} as vat_amount,
        'SMART_INVOICE_STAGE_' || cast(category_id as {{ dbt.type_string() }}) as stage_entity,
        stage_id as stage_code,
        false as is_template,
        cast(null as bigint) as recurring_template_id,
        cast(null as date) as legacy_paid_date,
        cast(created_at as timestamp with time zone) as created_at,
        cast(updated_at as timestamp with time zone) as updated_at
    from smart_invoices
)

select * from final
