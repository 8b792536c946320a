{{ config(enabled=crm_loaded('bitrix24')) }}

-- Bitrix24's crm.currency.list snapshots (AMOUNT / AMOUNT_CNT base units per unit), one per run date.
select
    'bitrix24' as source_system,
    account,
    upper(currency) as currency,
    snapshot_date as rate_date,
    rate_to_base
from {{ ref('stg_bitrix24__currencies') }}
where rate_to_base is not null and rate_to_base > 0
