{{ config(enabled=crm_loaded('bitrix24')) }}

-- Stage dictionaries. Paid is the stage whose semantics is success (S), never a stage code: `:S` is "sent".
select
    account,
    entity_id,
    status_id,
    name,
    sort,
    semantics,
    is_first
from {{ source('bitrix24', 'stages') }}
