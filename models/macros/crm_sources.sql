{#-
  The CRMs, as dbt vars, so that no model outside a CRM's own folders (staging/<crm>/, intermediate/<crm>/)
  names one. `crm-invoices` passes both lists from its registry (pipelines/registry.py):
  - `crm_sources`: every CRM the project knows (its models are stg_<crm>__* and int_<crm>__*);
  - `crm_sources_loaded`: the ones whose raw tables exist. Only their models build and enter the unions.
  A hand-run `dbt build` without --vars takes the defaults of dbt_project.yml: every CRM, all loaded.
-#}
{% macro crm_sources() -%}
    {{ return(var('crm_sources')) }}
{%- endmacro %}

{% macro crm_sources_loaded() -%}
    {%- set loaded = var('crm_sources_loaded', none) -%}
    {{ return(crm_sources() if loaded is none else loaded) }}
{%- endmacro %}

{#- A CRM's models are enabled only when it is loaded: `{{ config(enabled=crm_loaded('<crm>')) }}`. -#}
{% macro crm_loaded(crm) -%}
    {{ return(crm in crm_sources_loaded()) }}
{%- endmacro %}
