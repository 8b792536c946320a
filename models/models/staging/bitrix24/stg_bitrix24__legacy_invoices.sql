{{ config(enabled=crm_loaded('bitrix24')) }}

-- Legacy invoices (crm.invoice.list) in the shape both invoice families share (stg_bitrix24__invoices);
-- `is_recurring` rows are templates, kept and flagged. A portal without legacy invoices has no such table.
with legacy_invoices as (
    select * from {{ source_or_empty('bitrix24', 'legacy_invoices', [
        ('account', 'varchar'), ('id', 'bigint'), ('account_number', 'varchar'), ('deal_id', 'bigint'),
        ('company_id', 'bigint'), ('date_bill', 'date'), ('date_pay_before', 'date'), ('currency', 'varchar'),
        ('price', 'decimal(18,2)'), ('tax_value', 'decimal(18,2)'), ('status_id', 'varchar'),
        ('is_recurring', 'boolean'), ('recurring_template_id', 'bigint'), ('pay_voucher_date', 'date'),
        ('paid_date', 'date'), ('created_at', 'timestamp with time zone'),
        ('updated_at', 'timestamp with time zone')]) }} as legacy_invoices
),

final as (
    select
        account,
        'legacy' as kind,
        'I:' || cast(id as {{ dbt.type_string() }}) as source_invoice_id,
        cast(id as bigint) as id,
        account_number as invoice_number,
        cast(deal_id as bigint) as deal_id,
        cast(company_id as bigint) as company_id,
        cast(date_bill as date) as issue_date,
        cast(date_pay_before as date) as due_date,
        currency,
        {{ money('price') }} as amount_gross,
        {{ money('tax_value') }} as vat_amount,
        'INVOICE_STATUS' as stage_entity,
        status_id as stage_code,
        is_recurring as is_template,
        cast(recurring_template_id as bigint) as recurring_template_id,
        cast(coalesce(pay_voucher_date, paid_date) as date) as legacy_paid_date,
        cast(created_at as timestamp with time zone) as created_at,
        cast(updated_at as timestamp with time zone) as updated_at
    from legacy_invoices
)

select * from final
