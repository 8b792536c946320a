-- Money identity: every invoice's gross equals net plus VAT, to the kopeck.
select invoice_key, amount_gross, amount_net, vat_amount
from {{ ref('fct_invoices') }}
where amount_gross <> amount_net + vat_amount
