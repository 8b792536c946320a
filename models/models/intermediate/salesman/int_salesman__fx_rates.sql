{{ config(enabled=crm_loaded('salesman')) }}

-- SalesMan's currency/list, one snapshot per run date: base-currency units per 1 unit (`course`).
select
    'salesman' as source_system,
    account,
    upper(code) as currency,
    snapshot_date as rate_date,
    {{ fx_rate('course') }} as rate_to_base
from {{ source_or_empty('salesman', 'currencies', [('account', 'varchar'), ('code', 'varchar'),
    ('snapshot_date', 'date'), ('course', 'decimal(18,6)')]) }} as currencies
where course is not null and course > 0
