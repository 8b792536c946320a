{#- Money is DECIMAL(18,2) everywhere, never float; rates keep 8 decimals; VAT rates are percents. -#}
{% macro money(expr) -%}
    cast({{ expr }} as decimal(18,2))
{%- endmacro %}

{% macro fx_rate(expr) -%}
    cast({{ expr }} as decimal(18,8))
{%- endmacro %}

{% macro percent(expr) -%}
    cast({{ expr }} as decimal(9,4))
{%- endmacro %}
