"""``make bench``: what a load costs the client, under real latency and at scale; figures go to bench/RESULTS.md.

Usage:
    python -m bench [--invoices N] [--sources salesman,bitrix24,onlyoffice] [--rtt-ms 0,80] [--no-rtt]
    python -m bench --scale [--sources salesman] [--sizes salesman=10000,100000,1000000]

Every run starts the sandbox in a process of its own (``bench.server``) and, for an RTT above 0, the delaying
proxy (``bench.proxy``) in another; our CLI and the plain-dlt baselines run as child processes, so the client
CPU (user + sys of the client's tree, interpreter startup included) is the client's and the server's is
reported apart.

``python -m bench`` (``make bench``): per source a CPU pass (N invoices, no added latency: first load,
unchanged rerun, baseline), an RTT pass (first load and baseline at each ``--rtt-ms``, on a smaller world:
the bounds are what is compared there; ONLYOFFICE with the cloud's 500 requests / 10 s), then the dbt
build over each source's warehouse. ``--scale``: SalesMan at 10k, 100k and 1M invoices (first load,
unchanged rerun, baseline up to ``--baseline-max``) and the dbt build over each warehouse.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from crm_invoices.pipelines.registry import ALL_SOURCES

from . import models
from .common import use_commit

RESULTS = Path(__file__).parent / "RESULTS.md"
# every CRM of the registry with its bench module (bench/<crm>.py): run(), and how the bench sizes it (CAP,
# RTT_INVOICES, SCALE_SIZES, BASELINE_MAX, SCALE_EXTRA); `--no-caps` lifts the caps
SOURCES = {spec.name: importlib.import_module(spec.bench_module) for spec in ALL_SOURCES
           if importlib.util.find_spec(spec.bench_module) is not None}
CAPS = {name: m.CAP for name, m in SOURCES.items() if m.CAP}
RTT_INVOICES = {name: m.RTT_INVOICES for name, m in SOURCES.items()}
SCALE_SIZES = {name: m.SCALE_SIZES for name, m in SOURCES.items()}
BASELINE_MAX = {name: m.BASELINE_MAX for name, m in SOURCES.items()}


def _per_source(text: str, cast=int) -> dict:
    out = {}
    for part in filter(None, text.split(";" if ";" in text else " ")):
        name, _, values = part.partition("=")
        out[name.strip()] = [cast(v) for v in values.split(",") if v]
    return out


def _say(text: str) -> None:
    print(f"bench [{datetime.now(UTC):%H:%M:%S}]: {text}", flush=True)


def _timed(label: str, fn, *args, **kwargs) -> list[dict]:
    _say(f"{label} ...")
    started = time.monotonic()
    rows = fn(*args, **kwargs)
    _say(f"{label} done in {time.monotonic() - started:.0f} s")
    return rows


def default_run(args, names: list[str], work: Path) -> list[dict]:
    rows: list[dict] = []
    for name in names:
        n = args.invoices if args.no_caps else min(args.invoices, CAPS.get(name, args.invoices))
        if not args.only_rtt:
            rows += _timed(f"{name}: CPU pass, {n} invoices", SOURCES[name].run, n, work / name / "cpu", rerun=True,
                           baseline=not args.no_baselines)
            rows += _timed(f"{name}: dbt build", lambda n=name: [models.run_one(work / n / "cpu" / "ours", n)])
        if args.no_rtt:
            continue
        for rtt in args.rtt_ms:
            extra = dict(SOURCES[name].RTT_EXTRA)
            n_rtt = args.rtt_invoices.get(name, RTT_INVOICES[name])
            rows += _timed(f"{name}: RTT {rtt:g} ms, {n_rtt} invoices", SOURCES[name].run, n_rtt,
                           work / name / f"rtt{rtt:g}", rtt_ms=rtt, rerun=False, baseline=not args.no_baselines,
                           **extra)
        shutil.rmtree(work / name, ignore_errors=True)
    return rows


def scale_run(args, names: list[str], work: Path) -> list[dict]:
    rows: list[dict] = []
    sizes = {**SCALE_SIZES, **_per_source(args.sizes)} if args.sizes else SCALE_SIZES
    for name in names:
        extra = dict(SOURCES[name].SCALE_EXTRA)
        for n in sizes[name]:
            where = work / name / str(n)
            rows += _timed(f"{name}: scale, {n} invoices", SOURCES[name].run, n, where, rerun=True,
                           baseline=not args.no_baselines and n <= args.baseline_max.get(name, 0), **extra)
            rows += _timed(f"{name}: dbt build over {n}", lambda w=where, s=name: [models.run_one(w / "ours", s)])
            shutil.rmtree(where, ignore_errors=True)  # a million invoices' warehouse is big
    return rows


HEADER = ("| source | variant | invoices | RTT ms | rows | wall s | client CPU s | client CPU per goal unit s | "
          "server CPU s | HTTP requests | bound s | wall / bound | client peak RSS MiB | notes |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def _cell(value, fmt: str = "{}") -> str:
    return "" if value is None else fmt.format(value)


def table(rows: list[dict]) -> str:
    lines = [f"| {r['source']} | {r['variant']} | {r['invoices']:,} | {r['rtt_ms']:g} | {r['rows']:,} | "
             f"{r['seconds']:.1f} | {r['client_cpu']:.1f} | {_cell(r['cpu_per_goal_unit'], '{:.1f}')} | "
             f"{r['server_cpu']:.1f} | {r['http_requests']:,} | {_cell(r['bound_s'], '{:.1f}')} | "
             f"{_cell(r['wall_per_bound'], '{:.2f}')} | {r['peak_rss_mib']:,} | {r['notes']} |" for r in rows]
    return HEADER + "\n" + "\n".join(lines)


def _note(row: dict, label: str) -> str:
    found = re.search(rf"{re.escape(label)} (\d+)", row["notes"])
    return found.group(1) if found else "-"


def growth(rows: list[dict]) -> str:
    """Per source and size: first load, unchanged rerun, baseline and dbt build side by side."""
    lines = ["| source | invoices | first load wall s | client CPU s | client peak RSS MiB | server CPU s | "
             "rerun wall s | rerun CPU s | rerun list pages / detail calls | baseline wall s | baseline CPU s | "
             "baseline peak RSS MiB | dbt build s | dbt peak RSS MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    keys = sorted({(r["source"], r["invoices"]) for r in rows if r["kind"] == "load" and not r["rtt_ms"]
                   and "cloud" not in r["variant"]})
    dbt_by_size, last = {}, {}  # a dbt row times the warehouse of the load just before it (its invoices are marts')
    for r in rows:
        if r["kind"] == "load" and not r["rtt_ms"] and "cloud" not in r["variant"]:
            last[r["source"]] = r["invoices"]
        elif r["kind"] == "models" and r["source"] in last:
            dbt_by_size.setdefault((r["source"], last[r["source"]]), r)
    for source, n in keys:
        def pick(prefix: str, n=n, source=source) -> dict | None:  # no added latency, no cloud limit
            return next((r for r in rows if r["source"] == source and r["kind"] == "load" and r["invoices"] == n
                         and r["variant"].startswith(prefix) and not r["rtt_ms"] and "cloud" not in r["variant"]), None)

        first, rerun, base = pick("crm-invoices, first"), pick("crm-invoices, rerun"), pick("plain dlt")
        dbt = dbt_by_size.get((source, n))
        detail = SOURCES[source].DETAIL_METHOD if source in SOURCES else ""
        lines.append("| " + " | ".join([
            source, f"{n:,}",
            *(["", "", "", ""] if not first else
              [f"{first['seconds']:.1f}", f"{first['client_cpu']:.1f}", f"{first['peak_rss_mib']:,}",
               f"{first['server_cpu']:.1f}"]),
            *(["", "", ""] if not rerun else
              [f"{rerun['seconds']:.1f}", f"{rerun['client_cpu']:.1f}",
               f"{_note(rerun, 'list pages')} / {_note(rerun, detail) if detail else '-'}"]),
            *(["", "", ""] if not base else
              [f"{base['seconds']:.1f}", f"{base['client_cpu']:.1f}", f"{base['peak_rss_mib']:,}"]),
            *(["", ""] if not dbt else [f"{dbt['seconds']:.1f}", f"{dbt['peak_rss_mib']:,}"])]) + " |")
    return "\n".join(lines)


def write_results(rows: list[dict], title: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (f"## {stamp}: {title}\n\nMachine: {platform.machine()}, {platform.python_implementation()} "
               f"{platform.python_version()}, sandbox in its own process on loopback (`bench.server`), RTT added by "
               f"`bench.proxy`. Client CPU = user + sys of the client's process tree, startup included; per goal "
               f"unit = scaled to 100k SalesMan / 20k Bitrix24 / 20k ONLYOFFICE invoices (goal: at most 10 s).\n\n"
               f"{table(rows)}\n\nBy size (no added latency):\n\n{growth(rows)}\n")
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    intro = ("# Benchmark results\n\nWritten by `make bench` / `python -m bench --scale` (newest first). rows = raw "
             "rows loaded; bound = the wall time the API itself imposes (see each section); peak RSS of the client "
             "process tree. The machine is shared: wall times are noisy, CPU seconds are the robust figure.\n\n")
    history = previous.split("\n## ", 1)[1] if "\n## " in previous else ""
    RESULTS.write_text(intro + section + ("\n## " + history if history else ""))
    return section


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=100_000, help="CPU pass: invoices per source (capped)")
    parser.add_argument("--sources", default=None, help="default: all three (--scale: salesman)")
    parser.add_argument("--no-caps", action="store_true", help="use --invoices for every source")
    parser.add_argument("--rtt-ms", default="0,80", help="round trips for the RTT pass, comma-separated")
    parser.add_argument("--rtt-invoices", default="", help="RTT pass sizes, e.g. 'salesman=20000;onlyoffice=1500'")
    parser.add_argument("--no-rtt", action="store_true", help="skip the RTT pass")
    parser.add_argument("--only-rtt", action="store_true", help="the RTT pass only")
    parser.add_argument("--no-baselines", action="store_true", help="our pipeline only")
    parser.add_argument("--scale", action="store_true", help="the growth runs (10k to 1M SalesMan invoices)")
    parser.add_argument("--sizes", default="", help="--scale: e.g. 'salesman=10000,100000;onlyoffice=20000'")
    parser.add_argument("--baseline-max", default="", help="--scale: largest N with a baseline, e.g. 'salesman=100000'")
    parser.add_argument("--commit", default=None,
                        help="measure the code of this commit (e.g. HEAD), not the working tree")
    parser.add_argument("--json", type=Path, default=None, help="also append the rows as JSON lines to this file")
    parser.add_argument("--from-json", type=Path, nargs="*", default=None,
                        help="run nothing: write one section from rows that --json saved (several runs' files)")
    parser.add_argument("--title", default=None, help="with --from-json: the section's title")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()
    args.rtt_ms = [float(v) for v in args.rtt_ms.split(",") if v.strip()]
    args.rtt_invoices = {k: v[0] for k, v in _per_source(args.rtt_invoices).items()}
    args.baseline_max = {**BASELINE_MAX, **{k: v[0] for k, v in _per_source(args.baseline_max).items()}}
    default_sources = ",".join(n for n, m in SOURCES.items() if m.SCALE_BY_DEFAULT) if args.scale else ",".join(SOURCES)
    names = [s.strip() for s in (args.sources or default_sources).split(",") if s.strip()]
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        parser.error(f"no benchmark for {', '.join(unknown)}")
    if args.from_json is not None:
        rows = [json.loads(line) for path in args.from_json for line in path.read_text().splitlines() if line.strip()]
        print(write_results(rows, args.title or "combined runs"))
        return
    work = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    try:
        code = "the working tree"
        if args.commit:
            sha = use_commit(args.commit, work)
            code = f"commit {sha[:7]}"
            _say(f"measuring {code}")
        rows = scale_run(args, names, work) if args.scale else default_run(args, names, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with args.json.open("a") as out:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    title = (f"scale, {', '.join(names)}" if args.scale else
             f"up to {args.invoices:,} invoices per source, RTT {', '.join(f'{r:g}' for r in args.rtt_ms)} ms")
    title += f" ({code})"
    if args.no_write:
        print(table(rows))
    else:
        print(write_results(rows, title))


if __name__ == "__main__":
    main()
