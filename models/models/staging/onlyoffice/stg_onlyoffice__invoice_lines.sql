{{ config(enabled=var('onlyoffice_enabled', false)) }}

{#- Math.Round(x, 2) in .NET rounds half to even; SQL round() rounds half away from zero. Multiplying by 0.01
    instead of dividing by 100 keeps the value a decimal (division yields a double on DuckDB). A template with
    an `@x` placeholder, because dbt does not allow macros to be defined inside a model. -#}
{%- set half_even -%}
    (case
        when abs((@x) * 100 - trunc((@x) * 100)) = 0.5
            then (trunc((@x) * 100) + case when mod(trunc((@x) * 100), 2) = 0 then 0 else sign(@x) end) * 0.01
        else round(@x, 2)
    end)
{%- endset %}

with lines as (
    select * from {{ source('onlyoffice', 'invoice_lines') }}
),

taxes as (
    select * from {{ ref('stg_onlyoffice__taxes') }}
),

gross as (
    select
        lines.*,
        {{ half_even | replace('@x', 'lines.price * lines.quantity') }} as line_gross
    from lines
),

net as (
    select
        gross.*,
        gross.line_gross - {{ half_even | replace('@x', 'gross.line_gross * gross.discount * 0.01') }} as line_net
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
        coalesce({{ half_even | replace('@x', 'net.line_net * tax1.rate * 0.01') }}, 0) as tax1_amount,
        coalesce({{ half_even | replace('@x', 'net.line_net * tax2.rate * 0.01') }}, 0) as tax2_amount
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
    id as line_id,
    invoice_id,
    sort_order,
    invoice_item_id,
    description,
    cast(quantity as decimal(18,4)) as quantity,
    {{ money('price') }} as unit_price,
    {{ percent('discount') }} as discount_percent,
    tax1_id,
    tax2_id,
    {{ money('line_net') }} as amount_before_tax,
    {{ money('tax1_amount + tax2_amount') }} as tax_amount,
    {{ money('case when tax1_is_vat then tax1_amount else 0 end + case when tax2_is_vat then tax2_amount else 0 end') }} as vat_amount,
    {{ percent('case when tax1_is_vat and tax2_is_vat then tax1_rate + tax2_rate when tax1_is_vat then tax1_rate when tax2_is_vat then tax2_rate end') }} as vat_rate,
    {{ money('line_net + tax1_amount + tax2_amount') }} as amount_gross
from taxed
