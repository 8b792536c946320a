{{ config(enabled=crm_loaded('bitrix24')) }}

-- Product rows of the invoices in int_bitrix24__invoices (template rows are never fetched), numbered in the
-- CRM's own sort order.
select
    rows_.invoice_key,
    cast(row_number() over (partition by rows_.invoice_key order by rows_.sort, rows_.row_id) as integer) as line_number,
    rows_.product_name,
    cast(rows_.quantity as decimal(18,4)) as quantity,
    {{ money('rows_.unit_price') }} as unit_price,
    {{ percent('rows_.tax_rate') }} as vat_rate,
    {{ money('rows_.vat_amount') }} as vat_amount,
    {{ money('rows_.amount_net') }} as amount_net,
    {{ money('rows_.amount_gross') }} as amount_gross,
    'bitrix24' as source_system
from {{ ref('stg_bitrix24__product_rows') }} as rows_
inner join {{ ref('stg_bitrix24__invoices') }} as invoices
    on invoices.invoice_key = rows_.invoice_key
    and not invoices.is_template
