-- amount_due is never negative, except overpayments, which the exceptions report flags.
select f.invoice_key, f.amount_due
from {{ ref('fct_invoices') }} as f
where f.amount_due < 0
    and not exists (
        select 1 from {{ ref('rpt_reconciliation_exceptions') }} as e
        where e.invoice_key = f.invoice_key and e.rule = 'payments_exceed_invoice'
    )
