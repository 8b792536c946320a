select
    invoice_key,
    line_number,
    product_name,
    quantity,
    unit_price,
    vat_rate,
    vat_amount,
    amount_net,
    amount_gross,
    source_system
from {{ ref('int_invoice_lines') }}
