{{ config(enabled=crm_loaded('onlyoffice')) }}

-- One row per ONLYOFFICE invoice ever seen (its deletion mark is stg_onlyoffice__invoice_deletions).
with invoices as (
    select * from {{ source('onlyoffice', 'invoices') }}
),

final as (
    select
        account,
        cast(id as bigint) as invoice_id,
        number as invoice_number,
        cast(status_id as bigint) as status_id,
        -- key on the id: titles are localised ("Billed" is Sent, "Archive" is Archived)
        case status_id
            when 1 then 'draft'
            when 2 then 'issued'
            when 3 then 'cancelled'
            when 4 then 'paid'
            when 5 then 'cancelled'
        end as status,
        cast(issue_date as date) as issue_date,
        cast(due_date as date) as due_date,
        cast(contact_id as bigint) as contact_id,
        contact_name,
        cast(entity_id as bigint) as deal_id,
        upper(currency) as currency,
        {{ fx_rate('exchange_rate') }} as exchange_rate,
        {{ money('cost') }} as cost,
        cast(created_at as timestamp with time zone) as created_at,
        cast(_extracted_at as timestamp with time zone) as extracted_at
    from invoices
)

select * from final
