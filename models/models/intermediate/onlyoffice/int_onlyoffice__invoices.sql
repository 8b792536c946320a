{{ config(enabled=crm_loaded('onlyoffice')) }}

-- ONLYOFFICE invoices in the shared shape. The gross is the portal's own cost; VAT is the part of it that
-- comes from taxes named as VAT (a local levy adds to the cost and so to the net); the portal has no
-- payments, so a Paid invoice counts as paid in full on an unknown date.
with invoices as (
    select * from {{ ref('stg_onlyoffice__invoices') }}
),

line_totals as (
    select
        account,
        invoice_id,
        sum(vat_amount) as vat_amount,
        -- one rate for the invoice only when every line has the same one; "without VAT" is no rate
        case when count(distinct coalesce(vat_rate, -1)) = 1 then max(vat_rate) end as vat_rate
    from {{ ref('int_onlyoffice__priced_lines') }}
    group by account, invoice_id
),

portal as (
    select * from {{ ref('stg_onlyoffice__portal') }}
    where is_latest
),

deletions as (
    select * from {{ ref('stg_onlyoffice__invoice_deletions') }}
)

select
    'onlyoffice:' || invoices.account || ':' || cast(invoices.invoice_id as {{ dbt.type_string() }}) as invoice_key,
    'onlyoffice' as source_system,
    invoices.account,
    cast(invoices.invoice_id as {{ dbt.type_string() }}) as source_invoice_id,
    invoices.invoice_number,
    cast(invoices.deal_id as {{ dbt.type_string() }}) as deal_id,
    cast(invoices.contact_id as {{ dbt.type_string() }}) as client_id,
    invoices.contact_name as client_name,
    invoices.issue_date,
    invoices.due_date,
    cast(null as date) as paid_date,
    invoices.status,
    invoices.currency,
    {{ money('invoices.cost') }} as amount_gross,
    {{ money('coalesce(line_totals.vat_amount, 0)') }} as vat_amount,
    {{ money('invoices.cost - coalesce(line_totals.vat_amount, 0)') }} as amount_net,
    {{ percent('line_totals.vat_rate') }} as vat_rate,
    {{ money("case when invoices.status = 'paid' then invoices.cost else 0 end") }} as amount_paid,
    {{ money("invoices.cost - case when invoices.status = 'paid' then invoices.cost else 0 end") }} as amount_due,
    portal.default_currency as base_currency,
    -- the portal stores the rate with 2 decimals: a currency worth less than half a kopeck (VND, IRR in a RUB
    -- portal) is stored as 0.00, which is no rate (a missing_fx_rate exception), never a conversion to 0
    case when invoices.exchange_rate > 0 then {{ fx_rate('invoices.exchange_rate') }} end as fx_rate_to_base,
    'onlyoffice: invoice exchangeRate (1 ' || invoices.currency || ' = rate ' || portal.default_currency
        || ', portal default currency as of ' || cast(portal.snapshot_date as {{ dbt.type_string() }}) || ')' as fx_rate_source,
    invoices.created_at,
    coalesce(deletions.is_deleted, false) as is_deleted,
    false as is_declared_paid
from invoices
left join line_totals
    on line_totals.account = invoices.account
    and line_totals.invoice_id = invoices.invoice_id
left join portal
    on portal.account = invoices.account
left join deletions
    on deletions.invoice_id = invoices.invoice_id
    -- a mark without an account comes from a load before marks carried one: its dataset's one account
    and (deletions.account is null or deletions.account = invoices.account)
