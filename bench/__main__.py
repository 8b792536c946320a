"""``make bench``: load N sandbox invoices per source and write the figures to bench/RESULTS.md.

Usage: python -m bench [--invoices N] [--sources salesman,bitrix24,onlyoffice]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"
# Per-source ceilings on N, each for a reason of the source's own: Bitrix24's rate limit (2 requests/s on
# the standard plan: 100k invoices take ~18 min for our pipeline and as long again for the baseline), and the
# ONLYOFFICE baseline's memory (dlt's default insert_values loader peaked at 9 GB for 20k invoices with lines;
# 100k would not fit the machine). `--no-caps` lifts them.
CAPS = {"bitrix24": 20_000, "onlyoffice": 20_000}
HEADER = ("| source | variant | invoices | rows | seconds | rows/s | HTTP requests | lower bound | peak RSS MiB | notes |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--sources", default="salesman,bitrix24,onlyoffice")
    parser.add_argument("--no-caps", action="store_true", help="use --invoices for every source")
    args = parser.parse_args()
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    try:
        for name in [s.strip() for s in args.sources.split(",") if s.strip()]:
            if importlib.util.find_spec(f"bench.{name}") is None:
                print(f"bench: no benchmark for {name} yet")
                continue
            n = args.invoices if args.no_caps else min(args.invoices, CAPS.get(name, args.invoices))
            print(f"bench: {name}, {n} invoices ...", flush=True)
            started = time.monotonic()
            rows += importlib.import_module(f"bench.{name}").run(n, work / name)
            print(f"bench: {name} done in {time.monotonic() - started:.0f}s", flush=True)
        rows += importlib.import_module("bench.models").run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(rows, args.invoices)


def write_results(rows: list[dict], n: int) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = "\n".join(
        f"| {r['source']} | {r['variant']} | {r['invoices']} | {r['rows']} | {r['seconds']:.1f} | "
        f"{r['rows_per_s']:,.0f} | {r['http_requests']} | {r['lower_bound']} | {r['peak_rss_mib']:.0f} | {r['notes']} |"
        for r in rows)
    section = (f"## {stamp}: up to {n} invoices per source\n\nMachine: {platform.machine()}, "
               f"{platform.python_implementation()} {platform.python_version()}, sandbox on loopback.\n\n"
               f"{HEADER}\n{table}\n")
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    intro = ("# Benchmark results\n\nWritten by `make bench` (newest first). rows = raw rows loaded; lower bound = "
             "the fewest HTTP requests the API allows for the invoice list; peak RSS of the loading process.\n\n")
    history = previous.split("\n## ", 1)[1] if "\n## " in previous else ""
    RESULTS.write_text(intro + section + ("\n## " + history if history else ""))
    print(section)


if __name__ == "__main__":
    main()
