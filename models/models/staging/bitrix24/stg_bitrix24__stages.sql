{{ config(enabled=crm_loaded('bitrix24')) }}

-- Stage dictionaries. Paid is the stage whose semantics is success (S), never a stage code: `:S` is "sent".
with stages as (
    select * from {{ source('bitrix24', 'stages') }}
),

final as (
    select
        account,
        entity_id,
        status_id,
        name,
        cast(sort as bigint) as sort,
        semantics,
        is_first
    from stages
)

select * from final
