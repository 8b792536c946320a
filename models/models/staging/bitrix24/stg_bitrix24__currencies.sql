{{ config(enabled=crm_loaded('bitrix24')) }}

-- One row per currency per run date: Bitrix24 keeps only the current rate, the snapshots are the history.
with currencies as (
    select * from {{ source('bitrix24', 'currencies') }}
),

final as (
    select
        account,
        currency,
        cast(snapshot_date as date) as snapshot_date,
        is_base,
        {{ fx_rate('rate_to_base') }} as rate_to_base
    from currencies
)

select * from final
