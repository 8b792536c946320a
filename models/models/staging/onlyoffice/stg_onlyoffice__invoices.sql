{{ config(enabled=crm_loaded('onlyoffice')) }}

with invoices as (
    select * from {{ source('onlyoffice', 'invoices') }}
),

deletions as (
    select * from {{ source_or_empty('onlyoffice', 'invoice_deletions',
        [('id', 'bigint'), ('is_deleted', 'boolean'), ('deleted_at', 'timestamp')]) }} as invoice_deletions
)

select
    invoices.account,
    invoices.id as invoice_id,
    invoices.number as invoice_number,
    invoices.status_id,
    -- key on the id: titles are localised ("Billed" is Sent, "Archive" is Archived)
    case invoices.status_id
        when 1 then 'draft'
        when 2 then 'issued'
        when 3 then 'cancelled'
        when 4 then 'paid'
        when 5 then 'cancelled'
    end as status,
    invoices.issue_date,
    invoices.due_date,
    invoices.contact_id,
    invoices.contact_name,
    invoices.entity_id as deal_id,
    upper(invoices.currency) as currency,
    {{ fx_rate('invoices.exchange_rate') }} as exchange_rate,
    {{ money('invoices.cost') }} as cost,
    invoices.created_at,
    coalesce(deletions.is_deleted, false) as is_deleted,
    deletions.deleted_at,
    invoices._extracted_at as extracted_at
from invoices
left join deletions
    on deletions.id = invoices.id
