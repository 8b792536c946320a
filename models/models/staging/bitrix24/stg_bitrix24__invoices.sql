{{ config(enabled=crm_loaded('bitrix24')) }}

-- Both invoice families in one shape, from their own staging models: smart invoices (entity 31) and legacy
-- crm.invoice rows, templates kept and flagged (they are excluded from the facts in int_bitrix24__invoices),
-- with each invoice's deletion mark. Columns matched by name.
{%- set columns = ['account', 'kind', 'source_invoice_id', 'id', 'invoice_number', 'deal_id', 'company_id',
    'issue_date', 'due_date', 'currency', 'amount_gross', 'vat_amount', 'stage_entity', 'stage_code',
    'is_template', 'recurring_template_id', 'legacy_paid_date', 'created_at', 'updated_at'] %}

with unioned as (
    select {{ columns | join(', ') }} from {{ ref('stg_bitrix24__smart_invoices') }}
    union all
    select {{ columns | join(', ') }} from {{ ref('stg_bitrix24__legacy_invoices') }}
),

deletions as (
    select * from {{ ref('stg_bitrix24__invoice_deletions') }}
),

final as (
    select
        unioned.*,
        'bitrix24:' || unioned.account || ':' || unioned.source_invoice_id as invoice_key,
        coalesce(deletions.is_deleted, false) as is_deleted
    from unioned
    left join deletions
        on deletions.kind = unioned.kind
        and deletions.id = unioned.id
        -- a mark without an account comes from a load before marks carried one: its dataset's one account
        and (deletions.account is null or deletions.account = unioned.account)
)

select * from final
