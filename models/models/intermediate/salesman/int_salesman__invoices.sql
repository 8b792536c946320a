{{ config(enabled=crm_loaded('salesman')) }}

-- SalesMan rows folded into logical invoices (did, invoice number). A partial payment splits one invoice
-- into rows that share both; their sum is what was invoiced, VAT sits on the first row only.
-- One pass of GROUP BY, no window: at a million invoices the two windows this took (row number, all deleted)
-- cost 4 s of sorting, the aggregate a fraction of it.
with rows_ as (
    select * from {{ ref('stg_salesman__invoice_rows') }}
),

totals as (
    -- rows deleted in the CRM stop counting, unless the whole invoice is gone (then it keeps its last amounts):
    -- each figure is kept twice, over the live rows and over all rows, and the right one chosen below
    select
        account,
        did,
        invoice_number,
        min(crid) as first_crid,
        sum(case when is_deleted then 0 else 1 end) as live_rows,
        sum(case when not is_deleted then summa end) as live_gross,
        sum(summa) as all_gross,
        sum(case when not is_deleted then nds end) as live_vat,
        sum(nds) as all_vat,
        sum(case when not is_deleted and is_paid then summa else 0 end) as live_paid,
        sum(case when is_paid then summa else 0 end) as all_paid,
        max(case when not is_deleted and is_paid then paid_on end) as live_last_paid_on,
        max(case when is_paid then paid_on end) as all_last_paid_on,
        max(case when not is_deleted and is_declared_paid then 1 else 0 end) as live_declared_paid,
        max(case when is_declared_paid then 1 else 0 end) as all_declared_paid,
        min(case when not is_deleted then due_date end) as live_due_date,
        min(due_date) as all_due_date
    from rows_
    group by account, did, invoice_number
),

first_row as (
    -- the invoice's first row (lowest crid): its client, dates, currency and bank account
    select
        rows_.*,
        totals.live_rows = 0 as all_deleted,
        case when totals.live_rows > 0 then totals.live_gross else totals.all_gross end as amount_gross,
        case when totals.live_rows > 0 then totals.live_vat else totals.all_vat end as vat_amount,
        case when totals.live_rows > 0 then totals.live_paid else totals.all_paid end as amount_paid,
        case when totals.live_rows > 0 then totals.live_last_paid_on else totals.all_last_paid_on end as last_paid_on,
        case when totals.live_rows > 0 then totals.live_declared_paid else totals.all_declared_paid end
            as has_declared_paid,
        case when totals.live_rows > 0 then totals.live_due_date else totals.all_due_date end as due_date_
    from totals
    inner join rows_
        on rows_.account = totals.account
        and rows_.did = totals.did
        and rows_.invoice_number = totals.invoice_number
        and rows_.crid = totals.first_crid
),

joined as (
    select
        first_row.account,
        first_row.did,
        first_row.invoice_number,
        first_row.clid,
        first_row.client_name,
        first_row.issue_date,
        first_row.created_at,
        first_row.currency,
        first_row.bank_account_id,
        first_row.deal_currency,
        first_row.deal_currency_course,
        first_row.all_deleted as is_deleted,
        first_row.amount_gross,
        first_row.vat_amount,
        first_row.amount_paid,
        first_row.last_paid_on,
        first_row.has_declared_paid = 1 as has_declared_paid,
        first_row.due_date_ as due_date,
        bank.vat_rate_default
    from first_row
    left join {{ ref('stg_salesman__bank_accounts') }} as bank
        on bank.account = first_row.account
        and bank.bank_account_id = first_row.bank_account_id
)

select
    'salesman:' || account || ':' || cast(did as {{ dbt.type_string() }}) || ':' || invoice_number as invoice_key,
    'salesman' as source_system,
    account,
    cast(did as {{ dbt.type_string() }}) || ':' || invoice_number as source_invoice_id,
    invoice_number,
    cast(did as {{ dbt.type_string() }}) as deal_id,
    cast(clid as {{ dbt.type_string() }}) as client_id,
    client_name,
    issue_date,
    due_date,
    case when amount_paid >= amount_gross and amount_gross > 0 then last_paid_on end as paid_date,
    case
        when amount_paid >= amount_gross and amount_gross > 0 then 'paid'
        when amount_paid > 0 then 'partially_paid'
        else 'issued'
    end as status,
    currency,
    {{ money('amount_gross') }} as amount_gross,
    {{ money('vat_amount') }} as vat_amount,
    {{ money('amount_gross - vat_amount') }} as amount_net,
    -- SalesMan stores VAT as an amount; the declared rate is the bank account's default (a VAT amount that
    -- does not match it is a vat_rate_mismatch exception, not an unknown rate)
    {{ percent('vat_rate_default') }} as vat_rate,
    {{ money('amount_paid') }} as amount_paid,
    {{ money('amount_gross - amount_paid') }} as amount_due,
    currency as base_currency,
    {{ fx_rate('1') }} as fx_rate_to_base,
    'salesman: amounts are kept in the account base currency' as fx_rate_source,
    created_at,
    is_deleted,
    has_declared_paid as is_declared_paid
from joined
