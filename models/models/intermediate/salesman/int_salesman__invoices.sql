{{ config(enabled=crm_loaded('salesman')) }}

-- SalesMan rows folded into logical invoices (did, invoice number). A partial payment splits one invoice
-- into rows that share both; their sum is what was invoiced, VAT sits on the first row only.
with rows_ as (
    select
        *,
        row_number() over (partition by account, did, invoice_number order by crid) as row_in_invoice,
        min(case when is_deleted then 1 else 0 end) over (partition by account, did, invoice_number) as all_deleted
    from {{ ref('stg_salesman__invoice_rows') }}
),

counted as (
    -- rows deleted in the CRM stop counting, unless the whole invoice is gone (then it keeps its last amounts)
    select *
    from rows_
    where not is_deleted or all_deleted = 1
),

first_row as (
    select * from rows_ where row_in_invoice = 1
),

totals as (
    select
        account,
        did,
        invoice_number,
        sum(summa) as amount_gross,
        sum(nds) as vat_amount,
        sum(case when is_paid then summa else 0 end) as amount_paid,
        max(case when is_paid then paid_on end) as last_paid_on,
        max(case when is_declared_paid then 1 else 0 end) as has_declared_paid,
        min(due_date) as due_date
    from counted
    group by account, did, invoice_number
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
        first_row.all_deleted = 1 as is_deleted,
        totals.amount_gross,
        totals.vat_amount,
        totals.amount_paid,
        totals.last_paid_on,
        totals.has_declared_paid = 1 as has_declared_paid,
        totals.due_date,
        bank.vat_rate_default
    from first_row
    inner join totals
        on totals.account = first_row.account
        and totals.did = first_row.did
        and totals.invoice_number = first_row.invoice_number
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
