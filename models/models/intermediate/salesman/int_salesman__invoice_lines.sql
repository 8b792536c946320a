{{ config(enabled=crm_loaded('salesman')) }}

-- SalesMan invoices carry no lines through the API (only the deal's specification, not per invoice).
select
    cast(null as {{ dbt.type_string() }}) as invoice_key,
    cast(null as integer) as line_number,
    cast(null as {{ dbt.type_string() }}) as product_name,
    cast(null as decimal(18,4)) as quantity,
    cast(null as decimal(18,2)) as unit_price,
    cast(null as decimal(9,4)) as vat_rate,
    cast(null as decimal(18,2)) as vat_amount,
    cast(null as decimal(18,2)) as amount_net,
    cast(null as decimal(18,2)) as amount_gross,
    cast(null as {{ dbt.type_string() }}) as source_system
where 1 = 0
