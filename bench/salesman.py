"""SalesMan benchmark: our source (first load and an unchanged rerun) against a plain dlt rest_api baseline."""

from __future__ import annotations

import math
from pathlib import Path

from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

from .common import duckdb_count, measure_cli, measure_script, result_row

PAGE_SIZE = 30  # the account default (num_client)


def run(n: int, workdir: Path) -> list[dict]:
    world = World.generate(invoices={"salesman": n, "bitrix24": 0, "onlyoffice": 0})
    results = []
    with Sandbox(world, salesman={"page_size": PAGE_SIZE}) as sandbox:
        provider = sandbox["salesman"]
        rows = len(provider.rows)
        pages = math.ceil(rows / PAGE_SIZE)
        ours = workdir / "ours"
        for variant in ("crm-invoices, first load", "crm-invoices, rerun (nothing changed)"):
            sandbox.reset_counts()
            m = measure_cli(ours, sandbox.demo_env(), "run", "--sources", "salesman", "--skip-models",
                            "--no-progress")
            if m.returncode != 0:
                raise RuntimeError(f"{variant} failed:\n{m.stderr[-3000:]}")
            requests = sandbox.count("salesman")
            lists, infos = sandbox.count("salesman", "invoice/list"), sandbox.count("salesman", "invoice/info")
            loaded = duckdb_count(ours / "data" / "crm_invoices.duckdb", "raw_salesman.invoice_rows")
            results.append(result_row(
                variant, "salesman", n, loaded, m, requests, pages,
                f"list pages {lists}, invoice/info {infos} (details of new/changed rows), "
                f"other {requests - lists - infos} (deal/list: bulk details and deals; reference data)"))
        sandbox.reset_counts()
        base = workdir / "baseline"
        base.mkdir(parents=True, exist_ok=True)
        account = provider.account
        m = measure_script(base, {}, Path(__file__).parent / "baselines" / "salesman_rest_api.py", sandbox.base_url,
                           next(iter(account.logins)), account.api_key, str(base / "baseline.duckdb"))
        if m.returncode != 0:
            raise RuntimeError(f"baseline failed:\n{m.stderr[-3000:]}")
        loaded = duckdb_count(base / "baseline.duckdb", "raw.invoice_rows")
        results.append(result_row(
            "plain dlt rest_api, defaults", "salesman", n, loaded, m, sandbox.count("salesman"), pages,
            "list only (no VAT/paid details, no delete detection), insert_values loader, amounts as double"))
    return results
