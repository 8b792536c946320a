{#-
  A raw table that dlt creates only once it has rows (a deletions log, say). Returns the relation when it
  exists, else an empty select with the given typed columns, so models compile before the first delete.
  `columns` is a list of (name, sql_type) pairs. Callers alias it (`... }} as deletions`): PostgreSQL before 16
  requires an alias on a subquery in FROM.
-#}
{% macro source_or_empty(source_name, table_name, columns) -%}
    {%- set rel = source(source_name, table_name) -%}
    {%- set found = adapter.get_relation(database=rel.database, schema=rel.schema, identifier=rel.identifier) if execute else none -%}
    {%- if found is not none -%}
        {{ rel }}
    {%- else -%}
        ({{ typed_empty_select(columns) }})
    {%- endif -%}
{%- endmacro %}
