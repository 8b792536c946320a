{#-
  Union `int_<crm>__<entity>` of every loaded CRM (crm_sources_loaded, macros/crm_sources.sql), matching
  columns by name: each branch selects the shared column list, in its order, so a CRM model whose columns
  come in another order (or carry extra ones) still lines up. `columns` is that list of (name, sql_type)
  pairs; the types only shape the empty result when no CRM is loaded. Plain SQL: DuckDB and PostgreSQL alike.
-#}
{% macro union_sources(entity, columns) -%}
    {%- set parts = [] -%}
    {%- for crm in crm_sources_loaded() -%}
        {%- do parts.append('select ' ~ column_names(columns) ~ '\nfrom ' ~ ref('int_' ~ crm ~ '__' ~ entity)) -%}
    {%- endfor -%}
    {%- if parts | length == 0 -%}
        {{ typed_empty_select(columns) }}
    {%- else -%}
        {{ parts | join('\nunion all\n') }}
    {%- endif -%}
{%- endmacro %}

{% macro column_names(columns) -%}
    {%- for name, _type in columns %}{{ name }}{% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}

{#- A select of no rows with the given (name, sql_type) columns; 'varchar' is the adapter's string type. -#}
{% macro typed_empty_select(columns) -%}
    select {% for name, type in columns %}cast(null as {{ dbt.type_string() if type == 'varchar' else type }}) as {{ name }}{% if not loop.last %}, {% endif %}{% endfor %} where 1 = 0
{%- endmacro %}
