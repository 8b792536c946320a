{{ config(enabled=crm_loaded('onlyoffice')) }}

-- `currency/rates` snapshot per run date: user-maintained pair rates (1 from = rate to).
with rates as (
    select * from {{ source_or_empty('onlyoffice', 'currency_rates', [('account', 'varchar'),
        ('from_currency', 'varchar'), ('to_currency', 'varchar'), ('rate', 'decimal(18,8)'),
        ('snapshot_date', 'date')]) }} as rates
),

final as (
    select
        account,
        upper(from_currency) as from_currency,
        upper(to_currency) as to_currency,
        {{ fx_rate('rate') }} as rate,
        cast(snapshot_date as date) as snapshot_date
    from rates
)

select * from final
