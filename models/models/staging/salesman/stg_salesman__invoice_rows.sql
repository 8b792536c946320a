{#- a table, where staging is views: three intermediate models and a dozen tests read this join of three raw
    tables, and as a view each of them paid for the join again (1.5 s a time at a million invoices) -#}
{{ config(enabled=crm_loaded('salesman')) }}
{{ config(materialized='table') }}

-- One row per SalesMan payment-schedule row (crid) of the invoice/list snapshot, with the two tables the source
-- keeps beside it for the same row: its details (read only for new or changed rows) and its deletion mark. They
-- are joined here, from their own staging models, because this row is what every later model means by a row.
with list_rows as (
    select * from {{ source('salesman', 'invoice_rows') }}
),

details as (
    select * from {{ ref('stg_salesman__invoice_details') }}
),

deletions as (
    select * from {{ ref('stg_salesman__invoice_row_deletions') }}
),

final as (
    select
        list_rows.account,
        cast(list_rows.crid as bigint) as crid,
        cast(list_rows.did as bigint) as did,
        cast(list_rows.clid as bigint) as clid,
        list_rows.client as client_name,
        list_rows.deal as deal_title,
        list_rows.invoice as invoice_number,
        list_rows.contract,
        {{ money('list_rows.summa') }} as summa,
        {{ money('coalesce(details.nds, 0)') }} as nds,
        details.do_raw,
        -- the CRM's own rule: paid only when do = 'on'; the list's colour says the same when details are missing
        coalesce(details.do_raw = 'on', list_rows.is_paid_list) as is_paid,
        coalesce(details.do_raw = 'yes', false) as is_declared_paid,
        cast(list_rows.created_at as timestamp with time zone) as created_at,
        -- the creation date in the account's zone (the source applies the database server's zone first)
        cast(list_rows.issue_date as date) as issue_date,
        cast(list_rows.date_plan as date) as due_date,
        cast(list_rows.date_fact as date) as paid_on,
        details.bank_account_id,
        details.invoice_type,
        details.user_id,
        upper(list_rows.currency) as currency,
        details.deal_currency,
        details.deal_currency_course,
        coalesce(deletions.is_deleted, false) as is_deleted,
        deletions.deleted_at,
        cast(list_rows._extracted_at as timestamp with time zone) as extracted_at
    from list_rows
    left join details
        on details.account = list_rows.account
        and details.crid = list_rows.crid
    left join deletions
        on deletions.crid = list_rows.crid
        -- a mark without an account comes from a load before marks carried one: its dataset's one account
        and (deletions.account is null or deletions.account = list_rows.account)
)

select * from final
