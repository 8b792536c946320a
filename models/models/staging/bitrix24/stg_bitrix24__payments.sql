{{ config(enabled=crm_loaded('bitrix24')) }}

-- Smart invoices' payment records (crm.item.payment.list); paid = 'N' rows are unpaid or undone payments.
with payments as (
    select * from {{ source_or_empty('bitrix24', 'smart_invoice_payments', [
        ('account', 'varchar'), ('id', 'bigint'), ('invoice_id', 'bigint'), ('paid', 'boolean'),
        ('paid_at', 'timestamp with time zone'), ('paid_date', 'date'), ('amount', 'decimal(18,2)'),
        ('currency', 'varchar'), ('pay_system_name', 'varchar')]) }} as payments
),

final as (
    select
        account,
        cast(id as bigint) as payment_id,
        'bitrix24:' || account || ':SI:' || cast(invoice_id as {{ dbt.type_string() }}) as invoice_key,
        cast(invoice_id as bigint) as invoice_id,
        paid as is_paid,
        cast(paid_at as timestamp with time zone) as paid_at,
        cast(paid_date as date) as paid_date,
        {{ money('amount') }} as amount,
        currency,
        pay_system_name
    from payments
)

select * from final
