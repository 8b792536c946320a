{{ config(enabled=crm_loaded('salesman')) }}

-- currency/list, one snapshot per run date: base-currency units per 1 unit (`course`).
with currencies as (
    select * from {{ source_or_empty('salesman', 'currencies', [('account', 'varchar'), ('code', 'varchar'),
        ('snapshot_date', 'date'), ('course', 'decimal(18,8)')]) }} as currencies
),

final as (
    select
        account,
        upper(code) as currency,
        cast(snapshot_date as date) as snapshot_date,
        {{ fx_rate('course') }} as rate_to_base
    from currencies
)

select * from final
