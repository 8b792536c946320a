-- Money identity: where an invoice has lines, they add up to its gross and its VAT. A CRM can disagree with
-- itself here (rpt_reconciliation_exceptions lists each case as lines_total_mismatch / vat_lines_mismatch),
-- so this warns rather than fails the build.
{{ config(severity='warn') }}

select l.invoice_key, i.amount_gross, sum(l.amount_gross) as lines_gross, i.vat_amount, sum(l.vat_amount) as lines_vat
from {{ ref('fct_invoice_lines') }} as l
inner join {{ ref('fct_invoices') }} as i on i.invoice_key = l.invoice_key
group by l.invoice_key, i.amount_gross, i.vat_amount
having sum(l.amount_gross) <> i.amount_gross or sum(l.vat_amount) <> i.vat_amount
