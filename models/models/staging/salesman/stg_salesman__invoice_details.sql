{{ config(enabled=crm_loaded('salesman')) }}

-- invoice/info (or deal/list with invoice: true) details of the rows that were new or changed: VAT, the raw paid
-- flag, the invoice type, the bank account, the deal currency's rate. One row per payment-schedule row (crid).
with details as (
    select * from {{ source('salesman', 'invoice_details') }}
),

final as (
    select
        account,
        cast(crid as bigint) as crid,
        {{ money('nds') }} as nds,
        -- `do` is a reserved word: qualified, it is a column on DuckDB and PostgreSQL alike
        details.do as do_raw,
        cast(rs as bigint) as bank_account_id,
        tip as invoice_type,
        cast(iduser as bigint) as user_id,
        currency_code as deal_currency,
        {{ fx_rate('course') }} as deal_currency_course,
        details_via
    from details
)

select * from final
