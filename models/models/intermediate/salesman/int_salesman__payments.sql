{{ config(enabled=crm_loaded('salesman')) }}

-- SalesMan has no payment entity: a paid row (do = 'on') is the payment record. Derived, one per paid row.
select
    'salesman:' || account || ':' || cast(crid as {{ dbt.type_string() }}) as payment_key,
    'salesman:' || account || ':' || cast(did as {{ dbt.type_string() }}) || ':' || invoice_number as invoice_key,
    'salesman' as source_system,
    paid_on as paid_date,
    {{ money('summa') }} as amount,
    currency,
    true as is_derived
from {{ ref('stg_salesman__invoice_rows') }}
where is_paid and not is_deleted
