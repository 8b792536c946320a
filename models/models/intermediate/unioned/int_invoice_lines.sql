{{ union_sources('invoice_lines', [
    ('invoice_key', 'varchar'), ('line_number', 'integer'), ('product_name', 'varchar'),
    ('quantity', 'decimal(18,4)'), ('unit_price', 'decimal(18,2)'), ('vat_rate', 'decimal(9,4)'),
    ('vat_amount', 'decimal(18,2)'), ('amount_net', 'decimal(18,2)'), ('amount_gross', 'decimal(18,2)'),
    ('source_system', 'varchar')]) }}
