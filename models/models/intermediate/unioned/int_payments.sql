{{ union_sources('payments', [
    ('payment_key', 'varchar'), ('invoice_key', 'varchar'), ('source_system', 'varchar'),
    ('paid_date', 'date'), ('amount', 'decimal(18,2)'), ('currency', 'varchar'), ('is_derived', 'boolean')]) }}
