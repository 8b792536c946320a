{#-
  A CRM's own ids are unique within one account, not across them: two Bitrix24 portals both have invoice 1
  (pipelines/accounts.py loads several accounts of one CRM side by side). Use on raw ids in staging and
  intermediate models; keys built with the account (invoice_key, payment_key) keep dbt's plain `unique`.
-#}
{% test unique_per_account(model, column_name) %}
select account, {{ column_name }}, count(*) as n
from {{ model }}
where {{ column_name }} is not null
group by account, {{ column_name }}
having count(*) > 1
{% endtest %}
