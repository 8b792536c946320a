"""ONLYOFFICE benchmark: our source (first load and an unchanged rerun) against a plain dlt rest_api baseline."""

from __future__ import annotations

from pathlib import Path

from crm_invoices.sandbox.onlyoffice.ledger import DRAFT, state
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

from .common import duckdb_count, measure_cli, measure_script, result_row

PAGE = 1000  # the portal's maxPage


def run(n: int, workdir: Path) -> list[dict]:
    world = World.generate(invoices={"salesman": 0, "bitrix24": 0, "onlyoffice": n})
    results = []
    with Sandbox(world) as sandbox:
        provider = sandbox["onlyoffice"]
        drafts = sum(1 for i in world.invoices["onlyoffice"] if state(i).status == DRAFT)
        pages = -(-n // PAGE)  # the fewest list pages; we read one more: without a trustworthy total only a
        # short (or empty) page can end the scan
        reference = 4  # taxes, catalog (one page), default currency, currency rates
        ours = workdir / "ours"
        for variant, details in (("crm-invoices, first load", n), ("crm-invoices, rerun (nothing changed)", drafts)):
            sandbox.reset_counts()
            m = measure_cli(ours, sandbox.demo_env(), "run", "--sources", "onlyoffice", "--skip-models",
                            "--no-progress")
            if m.returncode != 0:
                raise RuntimeError(f"{variant} failed:\n{m.stderr[-3000:]}")
            requests = sandbox.count("onlyoffice")
            db = ours / "data" / "crm_invoices.duckdb"
            loaded = duckdb_count(db, "raw_onlyoffice.invoices") + duckdb_count(db, "raw_onlyoffice.invoice_lines")
            lists, detail_calls = sandbox.count("onlyoffice", "invoice/filter"), sandbox.count("onlyoffice", "invoice/{id}")
            results.append(result_row(
                variant, "onlyoffice", n, loaded, m, requests, 1 + pages + details + reference,
                f"login 1, list pages {lists} (1 row overlap each), invoice/{{id}} {detail_calls} "
                f"(new/changed/drafts), reference {requests - 1 - lists - detail_calls}; "
                f"lower bound = login + {pages} pages + {details} details + {reference} reference"))
        sandbox.reset_counts()
        base = workdir / "baseline"
        base.mkdir(parents=True, exist_ok=True)
        m = measure_script(base, {}, Path(__file__).parent / "baselines" / "onlyoffice_rest_api.py", sandbox.base_url,
                           provider.portal.token, str(base / "baseline.duckdb"))
        if m.returncode != 0:
            raise RuntimeError(f"baseline failed:\n{m.stderr[-3000:]}")
        db = base / "baseline.duckdb"
        loaded = duckdb_count(db, "raw.invoices") + duckdb_count(db, "raw.invoice_details__invoice_lines")
        results.append(result_row(
            "plain dlt rest_api, defaults", "onlyoffice", n, loaded, m, sandbox.count("onlyoffice"), pages + n,
            "list + every invoice's details every run, no taxes/currency snapshots, no delete detection; "
            "trusts total (cached 30 s: stale totals end the scan early or late), insert_values loader, "
            "amounts as double"))
    return results
