"""ONLYOFFICE benchmark: our source (first load and an unchanged rerun) against a plain dlt rest_api baseline.

With ``cloud=True`` the sandbox enforces the cloud's limit the way it emulates it (sandbox/onlyoffice/provider.py
``_throttle``): a sliding window of 10 s in which at most 500 requests are admitted; the next one answers 503
with ``Retry-After`` = the seconds until the oldest counted request leaves the window; refused requests are
not counted. The bound on wall time is then ``floor((admitted - 1) / 500) x 10 s`` (the issue's figure, 30.1 s
for 1,506 requests, is the same within 0.1 s), or the round trips if longer; without the limit (a
self-hosted portal) only the round trips bound it: ``requests x RTT / detail workers`` (4).
"""

from __future__ import annotations

from pathlib import Path

from .common import Network, Server, count_rows, load_ours, result_row, run_baseline

# How `python -m bench` sizes this CRM (bench/__main__.py reads these through the registry):
GOAL_UNIT = 20_000  # issue 11: client CPU per 20k ONLYOFFICE invoices with lines
CAP = 20_000  # the baseline's default insert_values loader peaked at 6.3 GB for 20k invoices with lines
RTT_INVOICES = 1_500  # with the cloud's 500 requests / 10 s
SCALE_SIZES = [20_000, 200_000]
BASELINE_MAX = 20_000
SCALE_EXTRA: dict = {}
RTT_EXTRA: dict = {"cloud": True}  # options of the RTT pass  (the cloud's 500 requests / 10 s)
DETAIL_METHOD = "invoice/{id}"  # the per-invoice detail call the growth table counts
SCALE_BY_DEFAULT = False  # `--scale` without --sources

PAGE = 1000  # the portal's maxPage
LIMIT, WINDOW = 500, 10.0  # the cloud's requests per window (basic-concepts.md)
WORKERS = 4  # our detail_workers default; the baseline reads one request after another


def _bound(m, rtt_ms: float, cloud: bool, workers: int) -> tuple[float, str]:
    throttled = m.server.get("onlyoffice_throttled", 0)
    admitted = m.requests("onlyoffice") - throttled
    latency = admitted * rtt_ms / 1000 / workers
    how = f"round trips {admitted} x {rtt_ms:g} ms / {workers} = {latency:.1f} s"
    if not cloud:
        return latency, how
    # the window admits LIMIT requests at once, then each next LIMIT one WINDOW after the first of the previous
    rate = (admitted - 1) // LIMIT * WINDOW if admitted else 0.0
    return max(rate, latency), (f"cloud limit: {admitted} admitted need {(admitted - 1) // LIMIT} more windows "
                                f"of {WINDOW:g} s after the first 500 = {rate:.1f} s, {how}; 503s seen: {throttled}")


def run(n: int, workdir: Path, rtt_ms: float = 0, rerun: bool = True, baseline: bool = True,
        cloud: bool = False) -> list[dict]:
    options = {"onlyoffice": {"rate_limit": LIMIT, "rate_window": WINDOW}} if cloud else {}
    results = []
    label = " (cloud limit 500/10 s)" if cloud else ""
    with Server({"onlyoffice": n}, options) as server, Network(server, rtt_ms) as net:
        drafts = server.facts["onlyoffice_drafts"]
        pages = -(-n // PAGE)  # the fewest list pages; we read one more: without a trustworthy total only a
        # short (or empty) page can end the scan
        reference = 4  # taxes, catalog (one page), default currency, currency rates
        ours = workdir / "ours"
        variants = [("crm-invoices, first load", n)]
        if rerun:
            variants.append(("crm-invoices, rerun (nothing changed)", drafts))
        for variant, details in variants:
            m = load_ours("onlyoffice", ours, net)
            requests = m.requests("onlyoffice")
            db = ours / "data" / "crm_invoices.duckdb"
            loaded = count_rows(db, ["raw_onlyoffice.invoices", "raw_onlyoffice.invoice_lines"])
            lists, detail_calls = m.requests("onlyoffice", "invoice/filter"), m.requests("onlyoffice", "invoice/{id}")
            bound, how = _bound(m, rtt_ms, cloud, WORKERS)
            results.append(result_row(
                "onlyoffice", variant + label, n, rtt_ms, loaded, m, requests, bound,
                f"bound: {how}; login 1, list pages {lists}, invoice/{{id}} {detail_calls} (new/changed/drafts), "
                f"reference {requests - 1 - lists - detail_calls}; fewest requests: login + {pages} pages + "
                f"{details} details + {reference} reference = {1 + pages + details + reference}"))
        if not baseline:
            return results
    # the baseline on a fresh portal (an empty rate-limit window)
    with Server({"onlyoffice": n}, options) as server, Network(server, rtt_ms) as net:
        m, db = run_baseline(net, workdir, "onlyoffice_rest_api.py", net.base_url, server.facts["onlyoffice_token"])
        if m.returncode != 0:
            raise RuntimeError(f"onlyoffice baseline failed:\n{m.stderr[-3000:]}")
        bound, how = _bound(m, rtt_ms, cloud, 1)
        results.append(result_row(
            "onlyoffice", "plain dlt rest_api, defaults" + label, n, rtt_ms,
            count_rows(db, ["raw.invoices", "raw.invoice_details__invoice_lines"]), m, m.requests("onlyoffice"),
            bound, f"bound: {how}; list + every invoice's details every run, no taxes/currency snapshots, no delete "
                   "detection; trusts total, insert_values loader, amounts as double"))
    return results
