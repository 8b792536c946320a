-- The grain of fct_invoice_lines is (invoice_key, line_number).
select invoice_key, line_number, count(*) as n
from {{ ref('fct_invoice_lines') }}
group by invoice_key, line_number
having count(*) > 1
