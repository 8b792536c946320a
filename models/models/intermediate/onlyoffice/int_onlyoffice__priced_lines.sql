{{ config(enabled=crm_loaded('onlyoffice')) }}

{#- Every line priced by the portal's own arithmetic (CalculateInvoiceCost), step by step, with its rounding
    (round_half_even: .NET's Math.Round rounds half to even) and in wide decimals: a line of
    99,999,999.99 x 99,999,999.99 overflows 64 bits. Discount in percent; two taxes per line, not compounded,
    at the latest tax rates (as the portal computes every invoice's cost with the current ones). -#}
with lines as (
    select * from {{ ref('stg_onlyoffice__invoice_lines') }}
),

taxes as (
    select * from {{ ref('stg_onlyoffice__taxes') }}
),

gross as (
    select
        lines.*,
        {{ round_half_even(wide('lines.unit_price', 2) ~ ' * ' ~ wide('lines.quantity', 4)) }} as line_gross
    from lines
),

net as (
    select
        gross.*,
        gross.line_gross - {{ round_half_even('gross.line_gross * ' ~ wide('gross.discount_percent', 4) ~ ' * 0.01') }} as line_net
    from gross
),

taxed as (
    select
        net.*,
        tax1.rate as tax1_rate,
        tax2.rate as tax2_rate,
        coalesce(tax1.is_vat, false) as tax1_is_vat,
        coalesce(tax2.is_vat, false) as tax2_is_vat,
        -- a tax id that no longer exists counts as 0, as on the server
        coalesce({{ round_half_even('net.line_net * ' ~ wide('tax1.rate', 4) ~ ' * 0.01') }}, 0) as tax1_amount,
        coalesce({{ round_half_even('net.line_net * ' ~ wide('tax2.rate', 4) ~ ' * 0.01') }}, 0) as tax2_amount
    from net
    left join taxes as tax1
        on tax1.account = net.account
        and tax1.tax_id = net.tax1_id
    left join taxes as tax2
        on tax2.account = net.account
        and tax2.tax_id = net.tax2_id
)

select
    account,
    line_id,
    invoice_id,
    sort_order,
    invoice_item_id,
    description,
    quantity,
    unit_price,
    discount_percent,
    tax1_id,
    tax2_id,
    {{ money('line_net') }} as amount_before_tax,
    {{ money('tax1_amount + tax2_amount') }} as tax_amount,
    {{ money('case when tax1_is_vat then tax1_amount else 0 end + case when tax2_is_vat then tax2_amount else 0 end') }} as vat_amount,
    {{ percent('case when tax1_is_vat and tax2_is_vat then tax1_rate + tax2_rate when tax1_is_vat then tax1_rate when tax2_is_vat then tax2_rate end') }} as vat_rate,
    {{ money('line_net + tax1_amount + tax2_amount') }} as amount_gross
from taxed
