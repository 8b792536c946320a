{{ config(enabled=crm_loaded('bitrix24')) }}

-- Product rows of both families: smart_invoice_product_rows and legacy_invoice_product_rows have one schema
-- (the source writes both), so one model stages both with one column list. Amounts were computed at extraction
-- with exact decimals from the price the tax-included flag names; tax_rate is a percent (null = "без НДС", not 0 %).
{% set row_columns = [
    ('account', 'varchar'), ('id', 'bigint'), ('invoice_id', 'bigint'), ('sort', 'bigint'),
    ('product_name', 'varchar'), ('quantity', 'decimal(18,4)'), ('unit_price', 'decimal(18,2)'),
    ('tax_rate', 'decimal(9,4)'), ('tax_included', 'boolean'), ('amount_net', 'decimal(18,2)'),
    ('vat_amount', 'decimal(18,2)'), ('amount_gross', 'decimal(18,2)')] %}

with unioned as (
{%- for kind, table, prefix in [('smart', 'smart_invoice_product_rows', 'SI:'),
                                ('legacy', 'legacy_invoice_product_rows', 'I:')] %}
    select
        '{{ kind }}' as kind,
        '{{ prefix }}' as invoice_prefix,
        {{ column_names(row_columns) }}
    from {{ source_or_empty('bitrix24', table, row_columns) }} as {{ table }}
    {% if not loop.last %}union all{% endif %}
{%- endfor %}
),

final as (
    select
        account,
        kind,
        'bitrix24:' || account || ':' || invoice_prefix || cast(invoice_id as {{ dbt.type_string() }}) as invoice_key,
        cast(id as bigint) as row_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(sort as bigint) as sort,
        product_name,
        cast(quantity as decimal(18,4)) as quantity,
        {{ money('unit_price') }} as unit_price,
        {{ percent('tax_rate') }} as tax_rate,
        tax_included,
        {{ money('amount_net') }} as amount_net,
        {{ money('vat_amount') }} as vat_amount,
        {{ money('amount_gross') }} as amount_gross
    from unioned
)

select * from final
