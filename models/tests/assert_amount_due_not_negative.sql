-- amount_due is never negative, except overpayments, which the exceptions report flags, and credit notes (a
-- negative total: the amount due to the customer).
select f.invoice_key, f.amount_due
from {{ ref('fct_invoices') }} as f
where f.amount_due < 0
    and f.amount_gross >= 0
    and not exists (
        select 1 from {{ ref('rpt_reconciliation_exceptions') }} as e
        where e.invoice_key = f.invoice_key and e.rule = 'payments_exceed_invoice'
    )
