"""The HTML file and its CSV files. Every table is a :class:`Table`: the same rows become an HTML table
(formatted for the locale) and a CSV (machine values: dot decimals, ISO dates), so the two never differ."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from html import escape
from pathlib import Path

from . import charts
from . import formatting as fmt
from .assets import CSP, CSS, JS
from .data import BUCKETS, ZERO, ReportData, top_clients
from .labels import CRM_NAMES, rule_text, t
from .links import crm_roots, invoice_url

ROW_CAP = 200  # rows shown per rule in the HTML; the CSV has all
NUMERIC = {"money", "int", "pct"}


@dataclass
class Table:
    name: str
    columns: list[tuple[str, str, str]]  # key, header, kind: money|int|pct|date|month|ts|text|link
    rows: list[dict] = field(default_factory=list)
    total: dict | None = None
    shown: int | None = None  # HTML rows (the CSV holds all)


class Page:
    def __init__(self, data: ReportData, lang: str, out: Path, warehouse: Path, notes: list[str]):
        self.data, self.lang, self.out, self.warehouse, self.notes = data, lang, out, warehouse, notes
        self.tables: list[Table] = []
        accounts: dict[str, set[str]] = defaultdict(set)
        for row in data.overdue_invoices:
            accounts[row["source_system"]].add(row["account"])
        for e in data.exceptions:
            accounts[e.source_system].add(e.account)
        self.roots = crm_roots(accounts)

    # ---- helpers ---------------------------------------------------------------------------------------
    def t(self, key: str, **kw) -> str:
        return t(self.lang, key, **kw)

    def csv_name(self, table: Table) -> str:
        return f"{self.out.stem}.{table.name}.csv"

    def cell(self, kind: str, value) -> str:
        lang = self.lang
        if kind == "money":
            return fmt.money(value, lang)
        if kind == "int":
            return fmt.integer(value, lang)
        if kind == "pct":
            return fmt.percent(value, lang) if value is not None else self.t("without_vat")
        if kind == "date":
            return fmt.day(value, lang)
        if kind == "month":
            return fmt.month(value, lang)
        if kind == "ts":
            return fmt.timestamp(value, lang)
        if kind == "crm":
            return CRM_NAMES.get(value, value or "")
        return "" if value is None else str(value)

    def table(self, table: Table) -> str:
        self.tables.append(table)
        head = "".join(f'<th data-col="{k}" class="{"num" if kind in NUMERIC else ""}">{escape(h)}</th>'
                       for k, h, kind in table.columns)
        body = []
        rows = table.rows if table.shown is None else table.rows[:table.shown]
        for row in rows:
            body.append("<tr>" + "".join(self._td(row, k, kind) for k, _h, kind in table.columns) + "</tr>")
        if table.total is not None:
            body.append('<tr class="total">' + "".join(self._td(table.total, k, kind) for k, _h, kind in table.columns)
                        + "</tr>")
        if not table.rows:
            body.append(f'<tr><td colspan="{len(table.columns)}">{escape(self.t("no_data"))}</td></tr>')
        link = f'<a class="csv" href="{escape(self.csv_name(table))}">{self.t("download_csv")}</a>'
        return (f'<div class="tablewrap"><table id="t-{table.name}" data-csv="{escape(self.csv_name(table))}">'
                f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{link}</div>')

    def _td(self, row: dict, key: str, kind: str) -> str:
        value = row.get(key)
        if kind == "link":
            url = row.get(key + "_url")
            text = escape("" if value is None else str(value))
            return (f'<td data-col="{key}"><a href="{escape(url)}" target="_blank" rel="noopener" '
                    f'title="{escape(self.t("open_in_crm"))}">{text}</a></td>') if url else f'<td data-col="{key}">{text}</td>'
        cls = ' class="num"' if kind in NUMERIC else ""
        return f'<td data-col="{key}"{cls}>{escape(self.cell(kind, value))}</td>'

    def write_csvs(self) -> list[Path]:
        paths = []
        for table in self.tables:
            path = self.out.with_name(self.csv_name(table))
            with path.open("w", newline="", encoding="utf-8-sig") as fh:  # the BOM makes Excel read UTF-8
                writer = csv.writer(fh)
                writer.writerow([k for k, _h, _kind in table.columns])
                for row in table.rows + ([table.total] if table.total else []):
                    writer.writerow([_plain(row.get(k)) for k, _h, _kind in table.columns])
            paths.append(path)
        return paths

    def link(self, source: str, account: str, source_invoice_id: str) -> str | None:
        return invoice_url(self.roots.get((source, account)), source, source_invoice_id)

    # ---- sections --------------------------------------------------------------------------------------
    def render(self, generated: datetime) -> str:
        d = self.data
        rc = d.reporting_currency
        meta = [f"{self.t('as_of')}: <b>{escape(fmt.day(d.as_of, self.lang))}</b>",
                f"{self.t('reporting_currency')}: <b>{escape(rc)}</b>",
                f"{self.t('generated')}: {escape(fmt.timestamp(generated, self.lang))}",
                f"{self.t('warehouse')}: <code>{escape(str(self.warehouse))}</code>"]
        notes = "".join(f'<p class="note">{escape(n)}</p>' for n in self.notes)
        sections = [self.headline(), self.aging(), self.vat(), self.flow(), self.reconciliation()]
        return (f'<!DOCTYPE html><html lang="{self.lang}" data-report="crm-invoices"><head><meta charset="utf-8">'
                f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f'<title>{escape(self.t("title"))} — {escape(fmt.day(d.as_of, self.lang))}</title>'
                f'<style>{CSS}</style><script>{JS}</script></head><body>'
                f'<header><h1>{escape(self.t("title"))}</h1><div class="meta">{"".join(f"<span>{m}</span>" for m in meta)}'
                f'</div>{notes}</header><main>{"".join(sections)}</main>'
                f'<footer><b>{escape(self.t("about"))}.</b> {escape(self.t("about_text"))}</footer></body></html>')

    def headline(self) -> str:
        d, lang, rc = self.data, self.lang, self.data.reporting_currency
        out = [f'<section id="headline"><h2>{escape(self.t("s_headline"))}</h2>']
        for f in d.freshness:
            if f.failure:
                out.append(f'<p class="banner" data-failed="{f.source}">' + escape(self.t(
                    "failed_banner", crm=CRM_NAMES[f.source], when=fmt.timestamp(f.failed_at, lang),
                    ok=fmt.timestamp(f.last_success, lang) if f.last_success else self.t("never"),
                    why=f.failure)) + "</p>")
        if not d.headline and not any(f.invoices for f in d.freshness):
            out.append(f'<p class="banner">{escape(self.t("no_invoices"))}</p>')
        keys = ("invoiced", "collected", "open", "overdue")
        total = {k: sum((r[f"{k}_reporting"] or ZERO for r in d.headline), ZERO) for k in keys}
        unconverted = sum(r["invoiced_unconverted"] for r in d.headline)
        cards = "".join(f'<div class="card" data-kpi="{k}"><div class="k">{escape(self.t(k))}, {escape(rc)}</div>'
                        f'<div class="v">{escape(fmt.money_cur(total[k], rc, lang))}</div></div>' for k in keys)
        out.append(f'<div class="cards">{cards}</div>')
        by_source = defaultdict(lambda: dict.fromkeys(keys, ZERO))
        for r in d.headline:
            for k in keys:
                by_source[r["source_system"]][k] += r[f"{k}_reporting"] or ZERO
        sources = sorted(by_source)
        series = [(self.t(k), charts.PALETTE[i], [by_source[s][k] for s in sources]) for i, k in enumerate(keys)]
        out.append(charts.bars("headline", f'{self.t("invoiced")} / {self.t("collected")} / {self.t("open")} / '
                               f'{self.t("overdue")}, {rc}', [CRM_NAMES[s] for s in sources], series, lang, rc,
                               stacked=False))
        # per currency (the exact figures), then every CRM × currency
        per_cur: dict[str, dict] = {}
        for r in d.headline:
            c = per_cur.setdefault(r["currency"], {"currency": r["currency"], "invoices": 0,
                                                   **{k: ZERO for k in keys}, **{f"{k}_reporting": None for k in keys}})
            c["invoices"] += r["invoices"]
            for k in keys:
                c[k] += r[k]
                if r[f"{k}_reporting"] is not None:
                    c[f"{k}_reporting"] = (c[f"{k}_reporting"] or ZERO) + r[f"{k}_reporting"]
        cols = [("currency", self.t("currency"), "text"), ("invoices", self.t("invoices"), "int")]
        cols += [(k, self.t(k), "money") for k in keys]
        cols += [(f"{k}_reporting", f'{self.t(k)}, {rc}', "money") for k in keys]
        tot = {"currency": f'{self.t("total")}, {rc}', "invoices": sum(c["invoices"] for c in per_cur.values()),
               **{f"{k}_reporting": total[k] for k in keys}}
        out.append(f'<h3>{escape(self.t("currency"))}</h3>')
        out.append(self.table(Table("headline_by_currency", cols, [per_cur[c] for c in sorted(per_cur)], tot)))
        rows = [{**r} for r in d.headline]
        cols2 = [("source_system", self.t("crm"), "crm"), ("currency", self.t("currency"), "text"),
                 ("invoices", self.t("invoices"), "int")] + [(k, self.t(k), "money") for k in keys]
        cols2 += [(f"{k}_reporting", f'{self.t(k)}, {rc}', "money") for k in keys]
        out.append(f'<h3>{escape(self.t("crm"))} × {escape(self.t("currency"))}</h3>')
        out.append(self.table(Table("headline_by_crm", cols2, rows)))
        if unconverted:
            out.append(f'<p class="note" data-unconverted="{unconverted}">'
                       f'{escape(self.t("unconverted_note", n=unconverted, cur=rc))}</p>')
        out.append(f'<p class="note">{escape(self.t("headline_note"))}</p>')
        fresh = [{"source_system": f.source, "state": self.t("st_failed") if f.failure else
                  (self.t("st_ok") if f.last_success else self.t("st_not_loaded")),
                  "last_success": f.last_success, "invoices": f.invoices} for f in d.freshness]
        out.append(f'<h3>{escape(self.t("freshness"))}</h3>')
        out.append(self.table(Table("freshness", [("source_system", self.t("crm"), "crm"),
                                                  ("state", self.t("state"), "text"),
                                                  ("last_success", self.t("last_success"), "ts"),
                                                  ("invoices", self.t("invoices"), "int")], fresh)))
        out.append("</section>")
        return "".join(out)

    def aging(self) -> str:
        d, lang = self.data, self.lang
        out = [f'<section id="aging"><h2>{escape(self.t("s_aging"))}</h2>']
        cells: dict[tuple[str, str], dict] = {}
        for r in d.aging:
            row = cells.setdefault((r["currency"], r["source_system"]), {
                "currency": r["currency"], "source_system": r["source_system"], "invoice_count": 0, "total": ZERO,
                **{f"b_{b}": ZERO for b in BUCKETS}})
            row[f"b_{r['bucket']}"] += r["amount_due"]
            row["invoice_count"] += r["invoice_count"]
            row["total"] += r["amount_due"]
        currencies = sorted({c for c, _s in cells})
        if not currencies:
            out.append(charts.bars("aging", self.t("aging_chart", cur=""), [], [], lang, ""))
        grid = []
        for cur in currencies:
            sources = sorted(s for c, s in cells if c == cur)
            series = [(self.t(f"b_{b}"), charts.BUCKET_COLORS[b], [cells[(cur, s)][f"b_{b}"] for s in sources])
                      for b in BUCKETS]
            grid.append(charts.bars(f"aging-{cur}", self.t("aging_chart", cur=cur), [CRM_NAMES[s] for s in sources],
                                    series, lang, cur, size=(440, 280)))
        out.append(f'<div class="charts">{"".join(grid)}</div>')
        cols = [("currency", self.t("currency"), "text"), ("source_system", self.t("crm"), "crm"),
                ("invoice_count", self.t("invoices"), "int")]
        cols += [(f"b_{b}", self.t(f"b_{b}"), "money") for b in BUCKETS] + [("total", self.t("total"), "money")]
        out.append(self.table(Table("ar_aging", cols, [cells[k] for k in sorted(cells)])))
        # the top overdue clients, each with its invoices
        rc = d.reporting_currency
        top = top_clients(d.overdue_invoices)
        rows = []
        for rank, c in enumerate(top, 1):
            for inv in c["invoices"]:
                rows.append({"rank": rank, "client_name": c["client_name"], "client_overdue_reporting": c["reporting"],
                             "source_system": inv["source_system"], "invoice_number": inv["invoice_number"] or
                             inv["source_invoice_id"], "invoice_number_url": self.link(
                                 inv["source_system"], inv["account"], inv["source_invoice_id"]),
                             "invoice_key": inv["invoice_key"], "issue_date": inv["issue_date"],
                             "due_date": inv["due_date"], "days_past_due": inv["days_past_due"],
                             "currency": inv["currency"], "amount_due": inv["amount_due"],
                             "amount_due_reporting": inv["amount_due_reporting"]})
        summary = [{"rank": rank, "client_name": c["client_name"], "invoices": len(c["invoices"]),
                    "sources": ", ".join(sorted({CRM_NAMES[i["source_system"]] for i in c["invoices"]})),
                    "by_currency": "; ".join(fmt.money_cur(v, cur, lang) for cur, v in sorted(c["by_currency"].items())),
                    "client_overdue_reporting": c["reporting"],
                    "max_days_past_due": max(i["days_past_due"] for i in c["invoices"])}
                   for rank, c in enumerate(top, 1)]
        out.append(f'<h3>{escape(self.t("top_clients"))}</h3>')
        out.append(self.table(Table("top_overdue_summary", [
            ("rank", "#", "int"), ("client_name", self.t("client"), "text"), ("sources", self.t("crm"), "text"),
            ("invoices", self.t("invoices"), "int"), ("by_currency", self.t("overdue"), "text"),
            ("client_overdue_reporting", f'{self.t("overdue_reporting")}, {rc}', "money"),
            ("max_days_past_due", self.t("days_past_due"), "int")], summary)))
        out.append(f'<details><summary>{escape(self.t("rows_of_rule", n=fmt.integer(len(rows), lang)))}</summary>')
        out.append(self.table(Table("top_overdue_clients", [
            ("rank", "#", "int"), ("client_name", self.t("client"), "text"),
            ("client_overdue_reporting", f'{self.t("overdue_reporting")}, {rc}', "money"),
            ("source_system", self.t("crm"), "crm"), ("invoice_number", self.t("invoice"), "link"),
            ("issue_date", self.t("issue_date"), "date"), ("due_date", self.t("due_date"), "date"),
            ("days_past_due", self.t("days_past_due"), "int"), ("currency", self.t("currency"), "text"),
            ("amount_due", self.t("amount_due"), "money"),
            ("amount_due_reporting", f'{self.t("amount_due")}, {rc}', "money")], rows)))
        out.append("</details></section>")
        return "".join(out)

    def vat(self) -> str:
        d, lang = self.data, self.lang
        out = [f'<section id="vat"><h2>{escape(self.t("s_vat"))}</h2>']
        rated = [r for r in d.vat if r["vat_rate"] is not None]
        unrated = [r for r in d.vat if r["vat_rate"] is None]
        # chart per currency: VAT per month stacked by rate, the 2026 rate change marked
        grid = []
        for cur in sorted({r["currency"] for r in rated if r["vat_amount"]}):
            rows = [r for r in rated if r["currency"] == cur]
            months = sorted({r["month"] for r in d.vat})
            rates = sorted({r["vat_rate"] for r in rows})
            series = []
            for i, rate in enumerate(rates):
                per = defaultdict(lambda: ZERO)
                for r in rows:
                    if r["vat_rate"] == rate:
                        per[r["month"]] += r["vat_amount"]
                series.append((fmt.percent(rate, lang), _rate_color(rate, i), [per[m] for m in months]))
            switch = next((i for i, m in enumerate(months) if m >= date(2026, 1, 1)), None)
            grid.append(charts.bars(f"vat-{cur}", self.t("vat_chart", cur=cur), [fmt.month(m, lang) for m in months],
                                    series, lang, cur, marker=(switch, self.t("vat_switch")) if switch else None))
        out.append(f'<div class="charts wide">{"".join(grid)}</div>')
        if not rated:
            out.append(charts.bars("vat", self.t("vat_chart", cur=""), [], [], lang, ""))
        # quarter totals per currency and rate (what the return needs), then without VAT apart
        quarters: dict[tuple, dict] = {}
        for r in rated:
            q = (r["month"].year, (r["month"].month - 1) // 3 + 1)
            row = quarters.setdefault((q, r["currency"], r["vat_rate"]), {
                "quarter": fmt.quarter(q[0], q[1], lang), "quarter_start": date(q[0], (q[1] - 1) * 3 + 1, 1),
                "currency": r["currency"], "vat_rate": r["vat_rate"], "amount_net": ZERO, "vat_amount": ZERO,
                "amount_gross": ZERO})
            for k in ("amount_net", "vat_amount", "amount_gross"):
                row[k] += r[k]
        money_cols = [("amount_net", self.t("base"), "money"), ("vat_amount", self.t("vat"), "money"),
                      ("amount_gross", self.t("gross"), "money")]
        out.append(f'<h3>{escape(self.t("vat_quarters"))}</h3>')
        out.append(self.table(Table("vat_by_quarter", [
            ("quarter", self.t("quarter"), "text"), ("currency", self.t("currency"), "text"), ("vat_rate", self.t("vat_rate"), "pct")] + money_cols,
            [quarters[k] for k in sorted(quarters, key=lambda k: (k[1], k[0], k[2]))])))
        out.append(f'<h3>{escape(self.t("vat_months"))}</h3>')
        month_cols = [("month", self.t("month"), "month"), ("source_system", self.t("crm"), "crm"),
                      ("currency", self.t("currency"), "text"), ("vat_rate", self.t("vat_rate"), "pct"),
                      ("invoice_count", self.t("invoices"), "int")] + money_cols
        out.append(self.table(Table("vat_by_month", month_cols, rated)))
        out.append(f'<h3>{escape(self.t("without_vat"))}</h3>')
        out.append(self.table(Table("vat_without", month_cols, unrated)))
        leaked = defaultdict(lambda: ZERO)
        for r in unrated:
            leaked[r["currency"]] += r["vat_amount"]
        for cur, amount in sorted(leaked.items()):
            if amount:
                out.append(f'<p class="banner">{escape(self.t("without_vat_with_vat", amount=fmt.money_cur(amount, cur, lang)))}</p>')
        out.append(f'<p class="note">{escape(self.t("vat_note"))}</p></section>')
        return "".join(out)

    def flow(self) -> str:
        d, lang = self.data, self.lang
        out = [f'<section id="flow"><h2>{escape(self.t("s_flow"))}</h2>']
        currencies = sorted({r["currency"] for r in d.flow})
        grid = []
        for cur in currencies:
            rows = [r for r in d.flow if r["currency"] == cur]
            months = [r["month"] for r in rows]
            grid.append(charts.bars(f"flow-{cur}", self.t("flow_chart", cur=cur), [fmt.month(m, lang) for m in months],
                                   [(self.t("invoiced"), charts.PALETTE[0], [r["invoiced"] for r in rows]),
                                    (self.t("collected"), charts.PALETTE[2], [r["collected"] for r in rows])],
                                   lang, cur, stacked=False))
        out.append(f'<div class="charts wide">{"".join(grid)}</div>')
        if not currencies:
            out.append(charts.bars("flow", self.t("flow_chart", cur=""), [], [], lang, ""))
        out.append(self.table(Table("invoiced_collected_by_month", [
            ("month", self.t("month"), "month"), ("currency", self.t("currency"), "text"),
            ("invoiced", self.t("invoiced"), "money"), ("collected", self.t("collected"), "money")], d.flow)))
        out.append(f'<h3>{escape(self.t("undated"))}</h3>')
        out.append(self.table(Table("payments_without_date", [
            ("currency", self.t("currency"), "text"), ("payments", self.t("count"), "int"),
            ("amount", self.t("collected"), "money")], d.undated_payments)))
        out.append(f'<p class="note">{escape(self.t("flow_note"))}</p></section>')
        return "".join(out)

    def reconciliation(self) -> str:
        d, lang, rc = self.data, self.lang, self.data.reporting_currency
        out = [f'<section id="reconciliation"><h2>{escape(self.t("s_recon"))}</h2>']
        groups: dict[str, list] = defaultdict(list)
        for e in d.exceptions:
            groups[e.rule].append(e)
        order = sorted(groups, key=lambda r: (groups[r][0].severity != "error", -len(groups[r]), r))
        out.append(charts.hbars("reconciliation", self.t("recon_chart"),
                                [(r, len(groups[r]), charts.SEVERITY_COLORS[groups[r][0].severity]) for r in order],
                                lang))
        if not groups:
            out.append(f'<p>{escape(self.t("no_exceptions"))}</p>')
        summary, findings = [], []
        for rule in order:
            rows = groups[rule]
            stake_cur = defaultdict(lambda: ZERO)
            for e in rows:
                stake_cur[e.currency] += e.stake
            per_source = defaultdict(int)
            for e in rows:
                per_source[e.source_system] += 1
            shares = "; ".join(f"{CRM_NAMES[s]} {n}/{d.live_invoices.get(s, 0)} "
                               f"({fmt.share(n, d.live_invoices.get(s, 0), lang)})" for s, n in sorted(per_source.items()))
            summary.append({
                "rule": rule, "severity": self.t(f"sev_{rows[0].severity}"), "count": len(rows), "share": shares,
                "at_stake": "; ".join(fmt.money_cur(v, c, lang) for c, v in sorted(stake_cur.items())),
                # "—" when no row of the rule has a rate (missing_fx_rate), never a silent 0
                "at_stake_reporting": sum((e.stake_reporting for e in rows if e.stake_reporting is not None), ZERO)
                if any(e.stake_reporting is not None for e in rows) else None,
                "meaning": rule_text(lang, rule, "meaning"), "todo": rule_text(lang, rule, "todo")})
            for source, n in sorted(per_source.items()):
                total = d.live_invoices.get(source, 0)
                if n >= 10 and total and n * 2 >= total:
                    findings.append(self.t("systematic_note", rule=rule, n=fmt.integer(n, lang),
                                           total=fmt.integer(total, lang), crm=CRM_NAMES[source],
                                           pct=fmt.share(n, total, lang)))
        out.extend(f'<p class="systematic" data-systematic="1">{escape(f)}</p>' for f in findings)
        out.append(self.table(Table("reconciliation_by_rule", [
            ("rule", self.t("rule"), "text"), ("severity", self.t("severity"), "text"), ("count", self.t("count"), "int"),
            ("share", self.t("share"), "text"), ("at_stake", self.t("at_stake"), "text"),
            ("at_stake_reporting", f'{self.t("at_stake_reporting")}, {rc}', "money"),
            ("meaning", self.t("meaning"), "text"), ("todo", self.t("todo"), "text")], summary)))
        # patterns that explain many rows at once (the VAT rate actually charged vs the rate declared)
        patterns = defaultdict(lambda: {"count": 0, "stake": defaultdict(lambda: ZERO)})
        for e in d.exceptions:
            if e.pattern:
                p = patterns[(e.rule, e.source_system, e.pattern)]
                p["count"] += 1
                p["stake"][e.currency] += e.stake
        if patterns:
            prow = []
            for (rule, source, pattern), p in sorted(patterns.items(), key=lambda kv: -kv[1]["count"]):
                declared, implied = pattern.split("→")
                prow.append({"rule": rule, "source_system": source, "finding": self.t(
                    "vat_pattern", declared=fmt.percent(Decimal(declared), lang),
                    implied=fmt.percent(Decimal(implied), lang)), "count": p["count"],
                    "at_stake": "; ".join(fmt.money_cur(v, c, lang) for c, v in sorted(p["stake"].items()))})
            out.append(f'<h3>{escape(self.t("finding"))}</h3>')
            out.append(self.table(Table("reconciliation_patterns", [
                ("rule", self.t("rule"), "text"), ("source_system", self.t("crm"), "crm"),
                ("finding", self.t("finding"), "text"), ("count", self.t("count"), "int"),
                ("at_stake", self.t("at_stake"), "text")], prow)))
        # the rows, one collapsed list per rule; every row is in the CSV
        all_rows = []
        for rule in order:
            for e in groups[rule]:
                all_rows.append({"rule": rule, "severity": e.severity, "source_system": e.source_system,
                                 "invoice_number": e.invoice_number or e.source_invoice_id,
                                 "invoice_number_url": self.link(e.source_system, e.account, e.source_invoice_id),
                                 "invoice_key": e.invoice_key, "client_name": e.client_name, "issue_date": e.issue_date,
                                 "currency": e.currency, "expected": e.expected, "actual": e.actual,
                                 "stake": e.stake, "message": e.message})
        cols = [("rule", self.t("rule"), "text"), ("source_system", self.t("crm"), "crm"),
                ("invoice_number", self.t("invoice"), "link"), ("client_name", self.t("client"), "text"),
                ("issue_date", self.t("issue_date"), "date"), ("currency", self.t("currency"), "text"),
                ("expected", self.t("expected"), "text"), ("actual", self.t("actual"), "text"),
                ("stake", self.t("at_stake"), "money"), ("message", self.t("message"), "text"),
                ("invoice_key", "invoice_key", "text")]
        for rule in order:
            rows = [r for r in all_rows if r["rule"] == rule]
            shown = min(len(rows), ROW_CAP)
            sev = groups[rule][0].severity
            capped = (f'<p class="note">{escape(self.t("rows_capped", shown=shown, n=len(rows)))}</p>'
                      if shown < len(rows) else "")
            # one CSV for all rows (below); these per-rule tables are for reading
            html = self._rule_table(rule, cols, rows, shown)
            out.append(f'<details data-rule="{rule}"><summary><span class="sev-{sev}">{escape(self.t("sev_" + sev))}'
                       f'</span> {escape(rule)} — {escape(self.t("rows_of_rule", n=fmt.integer(len(rows), lang)))}'
                       f'</summary>{html}{capped}</details>')
        self.tables.append(Table("reconciliation_exceptions", cols, all_rows))
        out.append(f'<p><a class="csv" href="{escape(self.out.stem)}.reconciliation_exceptions.csv">'
                   f'{escape(self.t("download_csv"))}: reconciliation_exceptions</a></p></section>')
        return "".join(out)

    def _rule_table(self, rule: str, cols, rows, shown: int) -> str:
        head = "".join(f'<th data-col="{k}" class="{"num" if kind in NUMERIC else ""}">{escape(h)}</th>'
                       for k, h, kind in cols)
        body = "".join("<tr>" + "".join(self._td(r, k, kind) for k, _h, kind in cols) + "</tr>" for r in rows[:shown])
        return (f'<div class="tablewrap"><table id="t-exceptions-{rule}" data-csv="{escape(self.out.stem)}.'
                f'reconciliation_exceptions.csv"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def _rate_color(rate: Decimal, i: int) -> str:
    fixed = {Decimal(22): "#1f5f99", Decimal(20): "#7fa7cf", Decimal(10): "#3a9a5b", Decimal(0): "#9aa5b1"}
    return fixed.get(rate, charts.PALETTE[(i + 3) % len(charts.PALETTE)])


def _plain(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
