{{ config(enabled=crm_loaded('onlyoffice')) }}

-- ONLYOFFICE's user-maintained pair rates into the portal's default currency (1 from = rate default), per run
-- date. Only direct pairs: an inverted pair would need a division, which is a float on some engines.
select
    'onlyoffice' as source_system,
    rates.account,
    rates.from_currency as currency,
    rates.snapshot_date as rate_date,
    rates.rate as rate_to_base
from {{ ref('stg_onlyoffice__currency_rates') }} as rates
inner join {{ ref('stg_onlyoffice__portal') }} as portal
    on portal.account = rates.account
    and portal.snapshot_date = rates.snapshot_date
    and portal.default_currency = rates.to_currency
where rates.rate is not null and rates.rate > 0
