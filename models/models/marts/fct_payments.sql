select
    payment_key,
    invoice_key,
    source_system,
    paid_date,
    amount,
    currency,
    is_derived
from {{ ref('int_payments') }}
