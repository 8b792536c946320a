{{ config(enabled=crm_loaded('bitrix24')) }}

-- Product rows of both families. Amounts were computed at extraction with exact decimals from the price
-- the tax-included flag names; tax_rate is a percent (null = "без НДС", not 0 %).
{% set row_columns = [
    ('account', 'varchar'), ('id', 'bigint'), ('invoice_id', 'bigint'), ('sort', 'bigint'),
    ('product_name', 'varchar'), ('quantity', 'decimal(18,4)'), ('unit_price', 'decimal(18,2)'),
    ('tax_rate', 'decimal(9,4)'), ('tax_included', 'boolean'), ('amount_net', 'decimal(18,2)'),
    ('vat_amount', 'decimal(18,2)'), ('amount_gross', 'decimal(18,2)')] %}

{% for kind, table, prefix in [('smart', 'smart_invoice_product_rows', 'SI:'),
                               ('legacy', 'legacy_invoice_product_rows', 'I:')] %}
select
    account,
    '{{ kind }}' as kind,
    'bitrix24:' || account || ':{{ prefix }}' || cast(invoice_id as {{ dbt.type_string() }}) as invoice_key,
    id as row_id,
    invoice_id,
    sort,
    product_name,
    quantity,
    unit_price,
    tax_rate,
    tax_included,
    amount_net,
    vat_amount,
    amount_gross
from {{ source_or_empty('bitrix24', table, row_columns) }} as {{ table }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
