{#-
  Union the per-source adapter models `int_<source>__<entity>` of every enabled source (dbt vars
  `<source>_enabled`, set by `crm-invoices` from the raw tables that exist). Each adapter model already has
  the shared column list, in the same order, with `source_system` first-class.
-#}
{% macro union_sources(entity, empty_columns) -%}
    {%- set parts = [] -%}
    {%- for src in ['salesman', 'bitrix24', 'onlyoffice'] -%}
        {%- if var(src ~ '_enabled', false) -%}
            {%- do parts.append('select * from ' ~ ref('int_' ~ src ~ '__' ~ entity)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if parts | length == 0 -%}
        select {% for name, type in empty_columns %}cast(null as {{ dbt.type_string() if type == 'varchar' else type }}) as {{ name }}{% if not loop.last %}, {% endif %}{% endfor %} where 1 = 0
    {%- else -%}
        {{ parts | join('\nunion all\n') }}
    {%- endif -%}
{%- endmacro %}
