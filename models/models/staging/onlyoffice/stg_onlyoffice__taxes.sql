{{ config(enabled=crm_loaded('onlyoffice')) }}

-- The latest snapshot of each tax: the portal computes every invoice's cost with the current rates, even for
-- old and paid invoices, so the lines must be priced with the same ones.
with ranked as (
    select
        *,
        row_number() over (partition by account, id order by snapshot_date desc, _dlt_load_id desc) as rn
    from {{ source('onlyoffice', 'taxes') }}
),

final as (
    select
        account,
        cast(id as bigint) as tax_id,
        name as tax_name,
        {{ percent('rate') }} as rate,
        is_vat,
        cast(snapshot_date as date) as snapshot_date
    from ranked
    where rn = 1
)

select * from final
