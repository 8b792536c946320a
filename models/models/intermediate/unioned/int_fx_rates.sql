-- Every source's rates to its account's base currency, by date: used to reach a reporting currency that is
-- neither the invoice's nor the account's base.
{{ union_sources('fx_rates', [
    ('source_system', 'varchar'), ('account', 'varchar'), ('currency', 'varchar'), ('rate_date', 'date'),
    ('rate_to_base', 'decimal(18,8)')]) }}
