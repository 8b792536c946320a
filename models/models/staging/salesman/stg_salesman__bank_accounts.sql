{{ config(enabled=crm_loaded('salesman')) }}

select
    account,
    id as bank_account_id,
    mcid as company_id,
    tip as account_type,
    is_default,
    {{ percent('nds_default') }} as vat_rate_default,
    name
from {{ source('salesman', 'bank_accounts') }}
