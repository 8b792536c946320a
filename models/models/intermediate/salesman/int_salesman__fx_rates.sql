{{ config(enabled=crm_loaded('salesman')) }}

-- SalesMan's currency/list, one snapshot per run date: base-currency units per 1 unit (`course`).
select
    'salesman' as source_system,
    account,
    currency,
    snapshot_date as rate_date,
    rate_to_base
from {{ ref('stg_salesman__currencies') }}
where rate_to_base is not null and rate_to_base > 0
