{{ config(enabled=crm_loaded('bitrix24')) }}

-- Smart invoices' payment records (crm.item.payment.list); paid = 'N' rows are unpaid or undone payments.
select
    account,
    id as payment_id,
    'bitrix24:' || account || ':SI:' || cast(invoice_id as {{ dbt.type_string() }}) as invoice_key,
    invoice_id,
    paid as is_paid,
    paid_at,
    paid_date,
    amount,
    currency,
    pay_system_name
from {{ source_or_empty('bitrix24', 'smart_invoice_payments', [
    ('account', 'varchar'), ('id', 'bigint'), ('invoice_id', 'bigint'), ('paid', 'boolean'),
    ('paid_at', 'timestamp with time zone'), ('paid_date', 'date'), ('amount', 'decimal(18,2)'),
    ('currency', 'varchar'), ('pay_system_name', 'varchar')]) }} as payments
