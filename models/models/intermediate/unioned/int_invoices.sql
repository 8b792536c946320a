-- Every enabled source's logical invoices in one shape (see int_<source>__invoices).
{{ union_sources('invoices', [
    ('invoice_key', 'varchar'), ('source_system', 'varchar'), ('account', 'varchar'),
    ('source_invoice_id', 'varchar'), ('invoice_number', 'varchar'), ('deal_id', 'varchar'),
    ('client_id', 'varchar'), ('client_name', 'varchar'), ('issue_date', 'date'), ('due_date', 'date'),
    ('paid_date', 'date'), ('status', 'varchar'), ('currency', 'varchar'), ('amount_gross', 'decimal(18,2)'),
    ('vat_amount', 'decimal(18,2)'), ('amount_net', 'decimal(18,2)'), ('vat_rate', 'decimal(9,4)'),
    ('amount_paid', 'decimal(18,2)'), ('amount_due', 'decimal(18,2)'), ('base_currency', 'varchar'),
    ('fx_rate_to_base', 'decimal(18,8)'), ('fx_rate_source', 'varchar'), ('created_at', 'timestamp'),
    ('is_deleted', 'boolean'), ('is_declared_paid', 'boolean')]) }}
