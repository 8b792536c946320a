{{ config(enabled=crm_loaded('salesman')) }}

-- One row per SalesMan payment-schedule row (crid), list snapshot joined with its invoice/info details.
with list_rows as (
    select * from {{ source('salesman', 'invoice_rows') }}
),

details as (
    select * from {{ source('salesman', 'invoice_details') }}
),

deletions as (
    select * from {{ source_or_empty('salesman', 'invoice_row_deletions',
        [('crid', 'bigint'), ('is_deleted', 'boolean'), ('deleted_at', 'timestamp')]) }} as invoice_row_deletions
)

select
    list_rows.account,
    list_rows.crid,
    list_rows.did,
    list_rows.clid,
    list_rows.client as client_name,
    list_rows.deal as deal_title,
    list_rows.invoice as invoice_number,
    list_rows.contract,
    {{ money('list_rows.summa') }} as summa,
    {{ money('coalesce(details.nds, 0)') }} as nds,
    details.do as do_raw,
    -- the CRM's own rule: paid only when do = 'on'; the list's colour says the same when details are missing
    coalesce(details.do = 'on', list_rows.is_paid_list) as is_paid,
    coalesce(details.do = 'yes', false) as is_declared_paid,
    list_rows.created_at,
    -- the creation date in the account's zone (the source applies the database server's zone first)
    list_rows.issue_date,
    list_rows.date_plan as due_date,
    list_rows.date_fact as paid_on,
    details.rs as bank_account_id,
    details.tip as invoice_type,
    details.iduser as user_id,
    upper(list_rows.currency) as currency,
    details.currency_code as deal_currency,
    {{ fx_rate('details.course') }} as deal_currency_course,
    coalesce(deletions.is_deleted, false) as is_deleted,
    deletions.deleted_at,
    list_rows._extracted_at as extracted_at
from list_rows
left join details
    on details.crid = list_rows.crid
left join deletions
    on deletions.crid = list_rows.crid
