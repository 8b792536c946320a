"""Plain dlt baseline: ONLYOFFICE invoices and their lines through `rest_api_source` with dlt's defaults.

What the dlt docs suggest for this API: an offset paginator over startIndex/count that trusts `total`, the
token in the Authorization header, a child resource for `invoice/{id}` (the only place lines come from)
for every invoice on every run, the default loader format and default type inference (amounts as doubles).
Usage: python onlyoffice_rest_api.py BASE_URL TOKEN DB_PATH
"""

import sys
from pathlib import Path

import dlt
from dlt.sources.rest_api import rest_api_source

base_url, token, db_path = sys.argv[1:4]
source = rest_api_source({
    "client": {
        "base_url": f"{base_url}/api/2.0/crm/",
        "auth": {"type": "api_key", "name": "Authorization", "api_key": token, "location": "header"},
    },
    "resource_defaults": {"write_disposition": "merge", "primary_key": "id"},
    "resources": [
        {"name": "invoices", "endpoint": {
            "path": "invoice/filter", "data_selector": "response", "params": {"sortBy": "id"},
            "paginator": {"type": "offset", "limit": 1000, "offset_param": "startIndex", "limit_param": "count",
                          "total_path": "total"}}},
        {"name": "invoice_details", "endpoint": {
            "path": "invoice/{resources.invoices.id}", "data_selector": "response", "paginator": "single_page"}},
    ],
})
pipeline = dlt.pipeline("baseline_onlyoffice", destination=dlt.destinations.duckdb(db_path), dataset_name="raw",
                        pipelines_dir=str(Path(db_path).parent / "pipelines"))
info = pipeline.run(source)
print(pipeline.last_trace.last_normalize_info.row_counts)
