{{ config(enabled=crm_loaded('salesman')) }}

-- Rows that vanished from the list snapshot (SalesMan deletes hard), with the run that saw it. dlt creates the
-- table with its first deletion: until then this is empty.
with deletions as (
    select * from {{ source_or_empty('salesman', 'invoice_row_deletions',
        [('account', 'varchar'), ('crid', 'bigint'), ('is_deleted', 'boolean'), ('deleted_at', 'timestamp with time zone')]) }} as deletions
),

final as (
    select
        {{ source_column('salesman', 'invoice_row_deletions', 'account', 'varchar') }},
        cast(crid as bigint) as crid,
        is_deleted,
        cast(deleted_at as timestamp with time zone) as deleted_at
    from deletions
)

select * from final
