{{ config(enabled=crm_loaded('bitrix24')) }}

-- crm.company.list: the clients invoices point at (companyId / UF_COMPANY_ID), for their names.
with companies as (
    select * from {{ source_or_empty('bitrix24', 'companies',
        [('account', 'varchar'), ('id', 'bigint'), ('title', 'varchar')]) }} as companies
),

final as (
    select
        account,
        cast(id as bigint) as company_id,
        title
    from companies
)

select * from final
