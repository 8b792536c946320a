{#-
  A column of a raw table that older loads may lack: the column when the table has it (or does not exist yet:
  source_or_empty's empty select carries it), else a typed NULL under its name. Deletion marks gained `account`
  when one CRM could be loaded from several accounts (pipelines/accounts.py); a warehouse loaded before that
  keeps its old table, where NULL means "the one account there is".
-#}
{% macro source_column(source_name, table_name, column, type) -%}
    {%- set rel = source(source_name, table_name) -%}
    {%- set found = adapter.get_relation(database=rel.database, schema=rel.schema, identifier=rel.identifier) if execute else none -%}
    {%- set names = (adapter.get_columns_in_relation(found) | map(attribute='name') | map('lower') | list) if found is not none else [column] -%}
    {%- if column in names -%}
        {{ column }}
    {%- else -%}
        cast(null as {{ dbt.type_string() if type == 'varchar' else type }}) as {{ column }}
    {%- endif -%}
{%- endmacro %}
