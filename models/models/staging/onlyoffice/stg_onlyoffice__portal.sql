{{ config(enabled=crm_loaded('onlyoffice')) }}

-- The portal default currency, which every invoice's exchangeRate converts to, per run date. It is only known
-- as of the runs that saw it; an admin who changes it leaves old rates pointing at the old base. `is_latest`
-- marks each account's latest snapshot.
with portal as (
    select
        *,
        row_number() over (partition by account order by snapshot_date desc, _dlt_load_id desc) as rn
    from {{ source('onlyoffice', 'portal') }}
),

final as (
    select
        account,
        upper(default_currency) as default_currency,
        cast(snapshot_date as date) as snapshot_date,
        rn = 1 as is_latest
    from portal
)

select * from final
