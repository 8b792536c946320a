{{ config(enabled=crm_loaded('bitrix24')) }}

-- Invoices that vanished from the id sweep (hard deletes), per family (smart / legacy). dlt creates the table
-- with its first deletion: until then this is empty.
with deletions as (
    select * from {{ source_or_empty('bitrix24', 'invoice_deletions', [
        ('account', 'varchar'), ('kind', 'varchar'), ('id', 'bigint'), ('is_deleted', 'boolean'), ('detected_at', 'timestamp with time zone')
        ]) }} as invoice_deletions
),

final as (
    select
        {{ source_column('bitrix24', 'invoice_deletions', 'account', 'varchar') }},
        kind,
        cast(id as bigint) as id,
        is_deleted,
        cast(detected_at as timestamp with time zone) as detected_at
    from deletions
)

select * from final
