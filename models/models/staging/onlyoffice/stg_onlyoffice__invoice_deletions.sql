{{ config(enabled=crm_loaded('onlyoffice')) }}

-- Invoice ids that vanished from the snapshot (hard deletes), and ids that came back (is_deleted false). dlt
-- creates the table with its first deletion: until then this is empty.
with deletions as (
    select * from {{ source_or_empty('onlyoffice', 'invoice_deletions',
        [('account', 'varchar'), ('id', 'bigint'), ('is_deleted', 'boolean'), ('deleted_at', 'timestamp with time zone')]) }} as invoice_deletions
),

final as (
    select
        {{ source_column('onlyoffice', 'invoice_deletions', 'account', 'varchar') }},
        cast(id as bigint) as invoice_id,
        is_deleted,
        cast(deleted_at as timestamp with time zone) as deleted_at
    from deletions
)

select * from final
