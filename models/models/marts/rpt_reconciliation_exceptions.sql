-- Every place where a source disagrees with itself or with another source: one row per (rule, invoice).
-- Deleted invoices are out of scope. The rules, and why each matters to finance: seeds/reconciliation_rules.csv.
with invoices as (
    select
        fct.*,
        int_.is_declared_paid
    from {{ ref('fct_invoices') }} as fct
    inner join {{ ref('int_invoices') }} as int_ on int_.invoice_key = fct.invoice_key
    where not fct.is_deleted
),

line_totals as (
    select
        invoice_key,
        count(*) as line_count,
        sum(amount_gross) as lines_gross,
        sum(vat_amount) as lines_vat
    from {{ ref('fct_invoice_lines') }}
    group by invoice_key
),

payment_totals as (
    select invoice_key, count(*) as payment_count, sum(amount) as payments_amount
    from {{ ref('fct_payments') }}
    group by invoice_key
),

checked as (
    select
        invoices.*,
        line_totals.line_count,
        line_totals.lines_gross,
        line_totals.lines_vat,
        coalesce(payment_totals.payment_count, 0) as payment_count,
        -- decimal(38,2), the type of a sum on DuckDB: PostgreSQL's coalesce with 0 would print '0', not '0.00'
        {{ wide('coalesce(payment_totals.payments_amount, 0)', 2) }} as payments_amount
    from invoices
    left join line_totals on line_totals.invoice_key = invoices.invoice_key
    left join payment_totals on payment_totals.invoice_key = invoices.invoice_key
),

-- the same number for the same client in another system, with another amount
twins as (
    select
        a.invoice_key,
        a.source_system,
        b.invoice_key as other_key,
        b.source_system as other_system,
        a.currency,
        a.amount_gross,
        b.currency as other_currency,
        b.amount_gross as other_gross
    from invoices as a
    inner join invoices as b
        on a.invoice_number = b.invoice_number
        and lower(trim(a.client_name)) = lower(trim(b.client_name))
        and a.source_system <> b.source_system
    where a.currency <> b.currency or a.amount_gross <> b.amount_gross
),

exceptions as (
    select 'lines_total_mismatch' as rule, source_system, invoice_key,
        cast(lines_gross as {{ dbt.type_string() }}) as expected, cast(amount_gross as {{ dbt.type_string() }}) as actual,
        cast(null as {{ dbt.type_string() }}) as detail
    from checked
    where line_count > 0 and lines_gross <> amount_gross

    union all
    select 'vat_lines_mismatch', source_system, invoice_key,
        cast(lines_vat as {{ dbt.type_string() }}), cast(vat_amount as {{ dbt.type_string() }}), null
    from checked
    where line_count > 0 and lines_vat <> vat_amount

    union all
    -- compared multiplied out, in wide decimals (a decimal division is a float on some engines, and
    -- 999,999,999,999.99 x 22 overflows 64 bits); half a kopeck of rounding either way is no mismatch
    select 'vat_rate_mismatch', source_system, invoice_key,
        cast({{ vat_in_gross('amount_gross', 'vat_rate') }} as {{ dbt.type_string() }}), cast(vat_amount as {{ dbt.type_string() }}), null
    from checked
    -- invoices with lines are checked against their lines instead (vat_lines_mismatch): a line's VAT base can
    -- differ from its gross by non-VAT levies, which only the CRM's own line arithmetic knows
    where vat_rate is not null
        and line_count is null
        and abs({{ wide('vat_amount', 2) }} * (100 + {{ wide('vat_rate', 4) }}) - {{ wide('amount_gross', 2) }} * {{ wide('vat_rate', 4) }})
            > 0.005 * (100 + {{ wide('vat_rate', 4) }})

    union all
    select 'paid_without_payments', source_system, invoice_key,
        cast(amount_gross as {{ dbt.type_string() }}), cast(payments_amount as {{ dbt.type_string() }}), null
    from checked
    where status = 'paid' and payment_count = 0

    union all
    select 'payments_without_paid_status', source_system, invoice_key,
        status, cast(payments_amount as {{ dbt.type_string() }}), null
    from checked
    where payment_count > 0 and status not in ('paid', 'partially_paid')

    union all
    select 'payments_exceed_invoice', source_system, invoice_key,
        cast(amount_gross as {{ dbt.type_string() }}), cast(amount_paid as {{ dbt.type_string() }}), null
    from checked
    -- money received beyond the total; a credit note (negative total) with nothing paid is not an overpayment
    where amount_paid > amount_gross and amount_paid > 0

    union all
    select 'declared_paid_not_booked', source_system, invoice_key,
        cast(amount_gross as {{ dbt.type_string() }}), cast(amount_paid as {{ dbt.type_string() }}), null
    from checked
    where is_declared_paid

    union all
    select 'missing_fx_rate', source_system, invoice_key,
        '{{ var("reporting_currency") }}', currency, null
    from checked
    where fx_rate_to_reporting is null

    union all
    select 'cross_system_amount_mismatch', source_system, invoice_key,
        other_currency || ' ' || cast(other_gross as {{ dbt.type_string() }}),
        currency || ' ' || cast(amount_gross as {{ dbt.type_string() }}),
        other_system || ' (' || other_key || ')'
    from twins

    union all
    select 'due_before_issue', source_system, invoice_key,
        cast(issue_date as {{ dbt.type_string() }}), cast(due_date as {{ dbt.type_string() }}), null
    from checked
    where due_date < issue_date

    union all
    select 'non_positive_total', source_system, invoice_key,
        '> 0', cast(amount_gross as {{ dbt.type_string() }}), null
    from checked
    where amount_gross <= 0
),

-- each rule's severity and message come from the seed reconciliation_rules, the one list of the rules (the report
-- reads its descriptions too); a rule missing there fails the relationships test on `rule`
rules as (
    select rule, severity, message from {{ ref('reconciliation_rules') }}
)

select
    exceptions.rule || ':' || exceptions.invoice_key as exception_key,
    exceptions.rule,
    rules.severity,
    exceptions.source_system,
    exceptions.invoice_key,
    case when exceptions.detail is null then rules.message
        else replace(rules.message, '{other}', exceptions.detail) end as message,
    exceptions.expected,
    exceptions.actual
from exceptions
left join rules
    on rules.rule = exceptions.rule
