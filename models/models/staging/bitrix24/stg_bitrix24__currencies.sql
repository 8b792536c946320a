{{ config(enabled=crm_loaded('bitrix24')) }}

-- One row per currency per run date: Bitrix24 keeps only the current rate, the snapshots are the history.
select
    account,
    currency,
    snapshot_date,
    is_base,
    {{ fx_rate('rate_to_base') }} as rate_to_base
from {{ source('bitrix24', 'currencies') }}
