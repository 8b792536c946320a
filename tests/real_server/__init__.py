"""Integration suite against a real SalesMan CRM server (see docs/REAL_SERVER.md)."""
