{{ config(enabled=crm_loaded('onlyoffice')) }}

-- ONLYOFFICE's user-maintained pair rates into the portal's default currency (1 from = rate default), per run
-- date. Only direct pairs: an inverted pair would need a division, which is a float on some engines.
select
    'onlyoffice' as source_system,
    rates.account,
    upper(rates.from_currency) as currency,
    rates.snapshot_date as rate_date,
    {{ fx_rate('rates.rate') }} as rate_to_base
from {{ source_or_empty('onlyoffice', 'currency_rates', [('account', 'varchar'), ('from_currency', 'varchar'),
    ('to_currency', 'varchar'), ('rate', 'decimal(18,8)'), ('snapshot_date', 'date')]) }} as rates
inner join {{ source('onlyoffice', 'portal') }} as portal
    on portal.account = rates.account
    and portal.snapshot_date = rates.snapshot_date
    and upper(portal.default_currency) = upper(rates.to_currency)
where rates.rate is not null and rates.rate > 0
