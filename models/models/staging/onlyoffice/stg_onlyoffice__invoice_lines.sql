{{ config(enabled=crm_loaded('onlyoffice')) }}

-- `invoice/{id}` lines as stored: price, quantity, discount in percent and up to two tax ids per line. Their
-- amounts are the portal's own arithmetic, replayed in int_onlyoffice__priced_lines.
with lines as (
    select * from {{ source('onlyoffice', 'invoice_lines') }}
),

final as (
    select
        account,
        cast(id as bigint) as line_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(sort_order as bigint) as sort_order,
        cast(invoice_item_id as bigint) as invoice_item_id,
        description,
        cast(quantity as decimal(18,4)) as quantity,
        {{ money('price') }} as unit_price,
        {{ percent('discount') }} as discount_percent,
        cast(tax1_id as bigint) as tax1_id,
        cast(tax2_id as bigint) as tax2_id
    from lines
)

select * from final
