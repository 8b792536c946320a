"""SalesMan benchmark: our source (first load and an unchanged rerun) against a plain dlt rest_api baseline.

Bound on wall time: list pages x (RTT + the server's mean time per list page) / parallel requests (ours:
``SOURCES__SALESMAN__PARALLEL_REQUESTS``, default 4; the baseline reads one page after another). The sandbox
answers one request at a time (one lock over its world), so the server's own page time does not shrink with
parallel requests: the bound is never below pages x page time either.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from .common import Network, Server, count_rows, load_ours, result_row, run_baseline

# How `python -m bench` sizes this CRM (bench/__main__.py reads these through the registry):
GOAL_UNIT = 100_000  # issue 11: client CPU per 100k SalesMan invoices
CAP = None  # no ceiling on --invoices
RTT_INVOICES = 20_000  # the RTT pass: big enough that the bound dominates
SCALE_SIZES = [10_000, 100_000, 1_000_000]
BASELINE_MAX = 100_000  # the plain-dlt baseline keeps every row in memory (6.3 GB at 100k)
SCALE_EXTRA: dict = {}
RTT_EXTRA: dict = {}  # options of the RTT pass
DETAIL_METHOD = "invoice/info"  # the per-invoice detail call the growth table counts
SCALE_BY_DEFAULT = True  # `--scale` without --sources
# bench.dbt_scale: how the raw tables of a load are multiplied into a bigger warehouse. Per table, the key
# columns that get + k x offset in copy k (rows by crid, deals by did) and the columns suffixed "-k" (the
# invoice number, unique per account in the marts' tests)
DBT_SCALE_COPY = {"invoice_rows": (("crid", "did"), ("invoice",)), "invoice_details": (("crid", "did"), ("invoice",)),
                  "deals": (("did",), ())}

PAGE_SIZE = 30  # the account default (num_client)
LIST = "invoice/list"


def _bound(m, pages: int, rtt_ms: float, parallel: int) -> tuple[float, str]:
    page_s = m.server_seconds("salesman", LIST) / pages if pages else 0.0
    bound = max(pages * (rtt_ms / 1000 + page_s) / parallel, pages * page_s)
    return bound, f"{pages} list pages x ({rtt_ms:g} ms + {page_s * 1000:.1f} ms server page time) / {parallel}"


def run(n: int, workdir: Path, rtt_ms: float = 0, rerun: bool = True, baseline: bool = True) -> list[dict]:
    parallel = int(os.environ.get("SOURCES__SALESMAN__PARALLEL_REQUESTS", "4"))
    results = []
    with Server({"salesman": n}, {"salesman": {"page_size": PAGE_SIZE}}) as server, Network(server, rtt_ms) as net:
        pages_needed = math.ceil(server.facts["salesman_rows"] / PAGE_SIZE)
        ours = workdir / "ours"
        variants = ["crm-invoices, first load"] + (["crm-invoices, rerun (nothing changed)"] if rerun else [])
        for variant in variants:
            m = load_ours("salesman", ours, net)
            lists, infos = m.requests("salesman", LIST), m.requests("salesman", "invoice/info")
            requests = m.requests("salesman")
            bound, how = _bound(m, lists, rtt_ms, parallel)
            loaded = count_rows(ours / "data" / "crm_invoices.duckdb", ["raw_salesman.invoice_rows"])
            results.append(result_row(
                "salesman", variant, n, rtt_ms, loaded, m, requests, bound,
                f"bound: {how}; list pages {lists} (fewest {pages_needed}), invoice/info {infos}, "
                f"other {requests - lists - infos} (deal/list: bulk details, deals; reference data)"))
        if baseline:
            env = server.env
            m, db = run_baseline(net, workdir, "salesman_rest_api.py", net.base_url, env["SOURCES__SALESMAN__LOGIN"],
                                 env["SOURCES__SALESMAN__API_KEY"])
            if m.returncode != 0:
                raise RuntimeError(f"salesman baseline failed:\n{m.stderr[-3000:]}")
            lists = m.requests("salesman", LIST)
            bound, how = _bound(m, lists, rtt_ms, 1)
            results.append(result_row(
                "salesman", "plain dlt rest_api, defaults", n, rtt_ms,
                count_rows(db, ["raw.invoice_rows"]), m, m.requests("salesman"), bound,
                f"bound: {how}; list only (no VAT/paid details, no delete detection), insert_values loader, "
                "amounts as double"))
    return results
