-- Money identity: amount_due = amount_gross - amount_paid.
select invoice_key, amount_gross, amount_paid, amount_due
from {{ ref('fct_invoices') }}
where amount_due <> amount_gross - amount_paid
