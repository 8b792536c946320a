{{ config(enabled=crm_loaded('salesman')) }}

with bank_accounts as (
    select * from {{ source('salesman', 'bank_accounts') }}
),

final as (
    select
        account,
        cast(id as bigint) as bank_account_id,
        cast(mcid as bigint) as company_id,
        tip as account_type,
        is_default,
        {{ percent('nds_default') }} as vat_rate_default,
        name
    from bank_accounts
)

select * from final
