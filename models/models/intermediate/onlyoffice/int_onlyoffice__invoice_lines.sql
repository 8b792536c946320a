{{ config(enabled=crm_loaded('onlyoffice')) }}

select
    'onlyoffice:' || account || ':' || cast(invoice_id as {{ dbt.type_string() }}) as invoice_key,
    cast(row_number() over (partition by account, invoice_id order by sort_order, line_id) as integer) as line_number,
    description as product_name,
    quantity,
    unit_price,
    vat_rate,
    vat_amount,
    {{ money('amount_gross - vat_amount') }} as amount_net,
    amount_gross,
    'onlyoffice' as source_system
from {{ ref('int_onlyoffice__priced_lines') }}
