{{ config(enabled=crm_loaded('bitrix24')) }}

-- Both invoice families in one shape: smart invoices (entity 31) and legacy crm.invoice rows, templates kept
-- and flagged (they are excluded from the facts in int_bitrix24__invoices).
with smart as (
    select
        account,
        'smart' as kind,
        'SI:' || cast(id as {{ dbt.type_string() }}) as source_invoice_id,
        id,
        account_number as invoice_number,
        deal_id,
        company_id,
        begindate as issue_date,
        closedate as due_date,
        currency_id as currency,
        opportunity as amount_gross,
        tax_value as vat_amount,
        'SMART_INVOICE_STAGE_' || cast(category_id as {{ dbt.type_string() }}) as stage_entity,
        stage_id as stage_code,
        false as is_template,
        cast(null as bigint) as recurring_template_id,
        cast(null as date) as legacy_paid_date,
        created_at,
        updated_at
    from {{ source('bitrix24', 'smart_invoices') }}
),

legacy as (
    select
        account,
        'legacy' as kind,
        'I:' || cast(id as {{ dbt.type_string() }}) as source_invoice_id,
        id,
        account_number as invoice_number,
        deal_id,
        company_id,
        date_bill as issue_date,
        date_pay_before as due_date,
        currency,
        price as amount_gross,
        tax_value as vat_amount,
        'INVOICE_STATUS' as stage_entity,
        status_id as stage_code,
        is_recurring as is_template,
        recurring_template_id,
        coalesce(pay_voucher_date, paid_date) as legacy_paid_date,
        created_at,
        updated_at
    from {{ source_or_empty('bitrix24', 'legacy_invoices', [
        ('account', 'varchar'), ('id', 'bigint'), ('account_number', 'varchar'), ('deal_id', 'bigint'),
        ('company_id', 'bigint'), ('date_bill', 'date'), ('date_pay_before', 'date'), ('currency', 'varchar'),
        ('price', 'decimal(18,2)'), ('tax_value', 'decimal(18,2)'), ('status_id', 'varchar'),
        ('is_recurring', 'boolean'), ('recurring_template_id', 'bigint'), ('pay_voucher_date', 'date'),
        ('paid_date', 'date'), ('created_at', 'timestamp with time zone'),
        ('updated_at', 'timestamp with time zone')]) }} as legacy_invoices
),

deletions as (
    select * from {{ source_or_empty('bitrix24', 'invoice_deletions', [
        ('account', 'varchar'), ('kind', 'varchar'), ('id', 'bigint'), ('is_deleted', 'boolean'),
        ('detected_at', 'timestamp with time zone')]) }} as invoice_deletions
),

unioned as (
    select * from smart
    union all
    select * from legacy
)

select
    unioned.*,
    'bitrix24:' || unioned.account || ':' || unioned.source_invoice_id as invoice_key,
    coalesce(deletions.is_deleted, false) as is_deleted
from unioned
left join deletions
    on deletions.kind = unioned.kind
    and deletions.id = unioned.id
