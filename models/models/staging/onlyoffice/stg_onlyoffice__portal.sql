{{ config(enabled=crm_loaded('onlyoffice')) }}

-- The portal default currency, which every invoice's exchangeRate converts to. It is only known as of the
-- runs that saw it; an admin who changes it leaves old rates pointing at the old base.
with ranked as (
    select
        *,
        row_number() over (partition by account order by snapshot_date desc, _dlt_load_id desc) as rn
    from {{ source('onlyoffice', 'portal') }}
)

select
    account,
    upper(default_currency) as default_currency,
    snapshot_date
from ranked
where rn = 1
