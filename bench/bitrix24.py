"""Bitrix24 benchmark: our pipeline and a plain-dlt baseline against the same emulated portal (default plan:
2 requests/s, burst 50), each on a fresh sandbox process rendering the same world (a fresh bucket).

Reported per variant, beside the common figures: HTTP requests against the fewest the invoice export needs
(``ceil(invoices / 2500)`` per kind: 50 pages of 50 in one batch), the 503s the portal answered, and the
bound the portal's bucket puts on that many requests, ``max(0, admitted - burst) / rate``, or the round
trips of requests sent one after another, ``admitted x RTT``, whichever is longer.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .common import Network, Server, count_rows, load_ours, result_row, run_baseline

# How `python -m bench` sizes this CRM (bench/__main__.py reads these through the registry):
GOAL_UNIT = 20_000  # issue 11: client CPU per 20k Bitrix24 invoices with lines and payments
CAP = 20_000  # the rate limit (2 requests/s): 100k take ~18 min for our pipeline and as long for the baseline
RTT_INVOICES = 5_000
SCALE_SIZES = [20_000, 200_000]
BASELINE_MAX = 20_000
# at scale the question is CPU and memory, not the rate limit: a portal with a high limit, client and sandbox
SCALE_EXTRA = {"rate": 50.0, "burst": 250}
RTT_EXTRA: dict = {}  # options of the RTT pass
DETAIL_METHOD = ""  # the per-invoice detail call the growth table counts
SCALE_BY_DEFAULT = False  # `--scale` without --sources

OURS_TABLES = ["smart_invoices", "legacy_invoices", "smart_invoice_product_rows", "legacy_invoice_product_rows",
               "smart_invoice_payments"]


def _bound(m, rate: float, burst: int, rtt_ms: float) -> tuple[float, str]:
    limited = m.server.get("bitrix24_rate_limited", 0)
    admitted = m.requests("bitrix24") - limited  # the bucket only fills with admitted requests
    bucket = max(0.0, admitted - burst) / rate
    latency = admitted * rtt_ms / 1000  # both clients send one request after another
    return max(bucket, latency), (f"rate limit ({admitted} admitted - burst {burst}) / {rate:g} per s = {bucket:.1f} s, "
                                  f"round trips {admitted} x {rtt_ms:g} ms = {latency:.1f} s; 503s seen: {limited}")


def plan() -> tuple[float, int]:
    """The portal's plan: ``BENCH_BITRIX24_RPS`` / ``BENCH_BITRIX24_BURST`` (default 2/s and 50, standard)."""
    return float(os.environ.get("BENCH_BITRIX24_RPS", "2")), int(os.environ.get("BENCH_BITRIX24_BURST", "50"))


def run(n: int, workdir: Path, rtt_ms: float = 0, rerun: bool = False, baseline: bool = True,
        rate: float | None = None, burst: int | None = None) -> list[dict]:
    default_rate, default_burst = plan()
    rate, burst = rate or default_rate, burst or default_burst
    options = {"bitrix24": {"requests_per_second": rate, "burst": burst}}
    out = []
    with Server({"bitrix24": n}, options) as server, Network(server, rtt_ms) as net:
        smart, legacy = server.facts["bitrix24_smart"], server.facts["bitrix24_legacy"]
        fewest = math.ceil(smart / 2500) + math.ceil(legacy / 2500)
        env = {"SOURCES__BITRIX24__REQUESTS_PER_SECOND": str(rate), "SOURCES__BITRIX24__BURST": str(burst)}
        ours = workdir / "ours"
        variants = ["crm-invoices, first load"] + (["crm-invoices, rerun (nothing changed)"] if rerun else [])
        for variant in variants:
            m = load_ours("bitrix24", ours, net, env)
            subcalls = m.server.get("bitrix24_subcalls", {})
            export = subcalls.get("crm.item.list", 0) + subcalls.get("crm.invoice.list", 0)
            bound, how = _bound(m, rate, burst, rtt_ms)
            rows = count_rows(ours / "data" / "crm_invoices.duckdb", [f"raw_bitrix24.{t}" for t in OURS_TABLES])
            out.append(result_row("bitrix24", variant, n, rtt_ms, rows, m, m.requests("bitrix24"), bound,
                                  f"bound: {how}; invoice export: {fewest} batch requests at the fewest, "
                                  f"{export} list pages in batches; with product rows and payments of every invoice"))
    if not baseline:
        return out
    # baseline: rest_api_source with dlt's defaults, invoice headers only; a fresh portal (an empty bucket)
    with Server({"bitrix24": n}, options) as server, Network(server, rtt_ms) as net:
        m, db = run_baseline(net, workdir, "bitrix24_rest_api.py", net.url(server.facts["bitrix24_webhook"]))
        err = re.sub(r"/rest/\d+/[^/]+/", "/rest/*/***/", m.stderr.strip().splitlines()[-1]) if m.returncode else ""
        bound, how = _bound(m, rate, burst, rtt_ms)
        out.append(result_row("bitrix24", "plain dlt rest_api_source, defaults", n, rtt_ms,
                              count_rows(db, ["raw.smart_invoices", "raw.legacy_invoices"]), m, m.requests("bitrix24"),
                              bound, f"bound: {how}; invoice headers only (no product rows, no payments: one call per "
                              f"invoice); offset paging with counting, one page per request; exit {m.returncode} {err}"))
    return out
