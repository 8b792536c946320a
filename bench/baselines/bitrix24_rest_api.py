"""Plain-dlt baseline for the Bitrix24 benchmark: ``rest_api_source`` with dlt's defaults (offset paging with
counting, no batch, no client-side throttle; dlt's retry handles the portal's 503s), reading the invoice
headers of both kinds only. Usage: ``python bench/baselines/bitrix24_rest_api.py <webhook_url> <duckdb path>``."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402


def main(webhook_url: str, db: str) -> None:
    # POST with a JSON body (Bitrix24's recommended form): the offset goes into the body as `start`
    paginator = {"type": "offset", "limit": 50, "offset_param": None, "limit_param": None,
                 "offset_body_path": "start", "limit_body_path": "limit", "total_path": "total"}
    source = rest_api_source({
        "client": {"base_url": webhook_url},
        "resource_defaults": {"write_disposition": "merge", "primary_key": "id"},
        "resources": [
            {"name": "smart_invoices",
             "endpoint": {"path": "crm.item.list", "method": "POST", "json": {"entityTypeId": 31, "order": {"id": "ASC"}},
                          "data_selector": "result.items", "paginator": paginator}},
            {"name": "legacy_invoices", "primary_key": "ID",
             "endpoint": {"path": "crm.invoice.list", "method": "POST", "json": {"order": {"ID": "ASC"}},
                          "data_selector": "result", "paginator": paginator}},
        ],
    })
    pipeline = dlt.pipeline("bitrix24_baseline", destination=dlt.destinations.duckdb(db), dataset_name="raw",
                            pipelines_dir=os.path.join(os.path.dirname(db), "pipelines"))
    info = pipeline.run(source, loader_file_format="parquet")
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    print({k: v for k, v in counts.items() if not k.startswith("_dlt")})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
