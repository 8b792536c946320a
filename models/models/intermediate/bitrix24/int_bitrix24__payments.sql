{{ config(enabled=crm_loaded('bitrix24')) }}

-- Smart invoices carry payment records; legacy invoices have none, so a paid legacy invoice (status P, the
-- only success status) gets one derived payment of its total on its paid date (is_derived = true).
with invoices as (
    select * from {{ ref('int_bitrix24__invoices') }}
),

smart as (
    select
        'bitrix24:' || payments.account || ':PAY:' || cast(payments.payment_id as {{ dbt.type_string() }}) as payment_key,
        payments.invoice_key,
        'bitrix24' as source_system,
        payments.paid_date,
        {{ money('payments.amount') }} as amount,
        payments.currency,
        false as is_derived
    from {{ ref('stg_bitrix24__payments') }} as payments
    inner join invoices
        on invoices.invoice_key = payments.invoice_key
    where payments.is_paid
),

legacy as (
    select
        invoice_key || ':paid' as payment_key,
        invoice_key,
        'bitrix24' as source_system,
        paid_date,
        amount_paid as amount,
        currency,
        true as is_derived
    from invoices
    where source_invoice_id like 'I:%'
        and amount_paid > 0
)

select * from smart
union all
select * from legacy
