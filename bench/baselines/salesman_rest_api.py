"""Plain dlt baseline: SalesMan's invoice/list through `rest_api_source` with dlt's defaults.

The same list the project's source reads, done the way the dlt docs suggest: a page-number paginator over
`params.pageall`, auth as query params (SalesMan's form/query mode), the default loader format and default
type inference (amounts become doubles). Usage: python salesman_rest_api.py BASE_URL LOGIN API_KEY DB_PATH
"""

import sys

import dlt
from dlt.sources.rest_api import rest_api_source

base_url, login, api_key, db_path = sys.argv[1:5]
source = rest_api_source({
    "client": {
        "base_url": f"{base_url}/developer/v3/",
        "paginator": {"type": "page_number", "page_param": "offset", "base_page": 1,
                      "total_path": "params.pageall"},
    },
    "resource_defaults": {"write_disposition": "merge", "primary_key": "crid"},
    "resources": [{"name": "invoice_rows", "endpoint": {"path": "invoice/list", "data_selector": "data",
                                                       "params": {"apikey": api_key, "login": login}}}],
})
pipeline = dlt.pipeline("baseline_salesman", destination=dlt.destinations.duckdb(db_path),
                        dataset_name="raw", pipelines_dir=str(__import__("pathlib").Path(db_path).parent / "pipelines"))
info = pipeline.run(source)
print(pipeline.last_trace.last_normalize_info.row_counts)
