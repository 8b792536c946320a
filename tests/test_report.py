"""`crm-invoices report`: the HTML is parsed (what a reader sees, not a copy of the queries) and its figures
compared with SQL over the marts, to the kopeck; the CSV beside it says the same; the file needs no network;
and an empty warehouse, one CRM only and a failed last load give a sensible report or a clear message."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from crm_invoices.pipelines.registry import NAMES
from crm_invoices.sandbox.server import Sandbox
from crm_invoices.sandbox.world import World

from tests.conftest import Workdir, assert_ok

AS_OF = date(2026, 11, 20)
CRM = {"SalesMan": "salesman", "Bitrix24": "bitrix24", "ONLYOFFICE": "onlyoffice"}
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
CENT = Decimal("0.01")
ENGLISH = {"LC_ALL": "en_US.UTF-8"}  # the report's default language follows the locale


class Report(HTMLParser):
    """The tables (by id: columns, rows of cell text, links), KPI cards, banners and charts of a report."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict] = {}
        self.kpis: dict[str, str] = {}
        self.banners: list[tuple[dict, str]] = []
        self.charts: list[str] = []
        self.root: dict = {}
        self.fetching: list[tuple[str, str, str]] = []  # (tag, attribute, value) that a browser would load
        self.anchors: list[str] = []
        self._table = self._row = self._col = self._kpi = self._banner = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root = a
        for key in ("src", "srcset", "poster", "data", "action"):
            if key in a:
                self.fetching.append((tag, key, a[key]))
        if tag in ("link", "use", "image") and ("href" in a or "xlink:href" in a):
            self.fetching.append((tag, "href", a.get("href") or a.get("xlink:href")))
        if tag == "a" and "href" in a:
            self.anchors.append(a["href"])
        if tag == "table":
            self._table = self.tables.setdefault(a["id"], {"cols": [], "rows": [], "links": [], "csv": a.get("data-csv")})
        elif tag == "th" and self._table is not None:
            self._table["cols"].append(a.get("data-col"))
        elif tag == "tr" and self._table is not None:
            self._row = {"_total": "total" in (a.get("class") or "")}
            self._links = {}
        elif tag == "td" and self._row is not None and "data-col" in a:
            self._col, self._text = a["data-col"], []
        elif tag == "a" and self._col is not None:
            self._links[self._col] = a["href"]
        elif tag == "div" and "data-kpi" in a:
            self._kpi = a["data-kpi"]
        elif tag == "div" and self._kpi and a.get("class") == "v":
            self._text, self._col = [], "__kpi"
        elif tag == "p" and "banner" in (a.get("class") or ""):
            self._banner, self._text = a, []
        elif tag == "figure" and "data-chart" in a:
            self.charts.append(a["data-chart"])

    def handle_endtag(self, tag):
        if tag == "td" and self._col is not None and self._row is not None:
            self._row[self._col] = "".join(self._text).strip()
            self._col = None
        elif tag == "div" and self._col == "__kpi":
            self.kpis[self._kpi] = "".join(self._text).strip()
            self._col = self._kpi = None
        elif tag == "tr" and self._row is not None:
            if len(self._row) > 1:
                self._table["rows"].append(self._row)
                self._table["links"].append(self._links)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._banner is not None:
            self.banners.append((self._banner, "".join(self._text).strip()))
            self._banner = None

    def handle_data(self, data):
        if self._col is not None or self._banner is not None:
            self._text.append(data)

    def rows(self, table: str) -> list[dict]:
        return [r for r in self.tables["t-" + table]["rows"] if not r["_total"]]


def num(text: str, lang: str) -> Decimal | None:
    """A figure as the reader sees it, back to a Decimal: ru «1 234 567,89», en «1,234,567.89»."""
    text = re.sub(r"\s[A-Z]{3}$", "", text.strip())
    if text in ("", "—"):
        return None
    text = text.replace("\u00a0", "").replace(" ", "")
    text = text.replace(",", ".") if lang == "ru" else text.replace(",", "")
    assert re.fullmatch(r"-?\d+(\.\d{2})?", text), text
    return Decimal(text)


def ru_date(text: str) -> date:
    d, m, y = text.split(".")
    return date(int(y), int(m), int(d))


def to_reporting(amount: Decimal, fx: Decimal | None) -> Decimal | None:
    return None if fx is None else (amount * fx).quantize(CENT, ROUND_HALF_UP)


def report_args(out: Path, *extra: str) -> list[str]:
    return ["report", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """All three CRMs (one planted case of every reconciliation rule), marts at a fixed as_of, a report in
    Russian and one in English (written with the CRMs' configuration, so the links are resolved)."""
    world = World.generate(seed=2026, invoices=dict.fromkeys(NAMES, 45),
                           anomalies=True)
    sandbox = Sandbox(world, salesman={"page_size": 10}).start()
    workdir = Workdir(tmp_path_factory.mktemp("report"))
    try:
        run = workdir.cli("run", "--no-progress", sandbox=sandbox)
        assert_ok(run)
        assert_ok(workdir.cli("models", "--vars", f'{{"as_of": "{AS_OF.isoformat()}"}}'))
        reports = {}
        for lang in ("ru", "en"):
            out = workdir.path / "out" / f"report_{lang}.html"
            proc = workdir.cli(*report_args(out, "--lang", lang), sandbox=sandbox)
            assert_ok(proc)
            assert f"report: {out}" in proc.stdout
            reports[lang] = (out, Report(out.read_text(encoding="utf-8")))
        yield {"world": world, "workdir": workdir, "run": run, "reports": reports, "base_url": sandbox.base_url}
    finally:
        sandbox.stop()


def test_run_ends_by_writing_the_report(built):
    run, workdir = built["run"], built["workdir"]
    default = workdir.data / "report.html"
    assert f"report: {default}" in run.stdout
    assert Report(default.read_text(encoding="utf-8")).root["data-report"] == "crm-invoices"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_headline_per_currency_equals_the_marts(built, lang):
    workdir, (_out, page) = built["workdir"], built["reports"][lang]
    billed = {c: (n, g, p) for c, n, g, p in workdir.query(
        "select currency, count(*), sum(amount_gross), sum(amount_paid) from marts.fct_invoices "
        "where not is_deleted and status not in ('draft', 'cancelled') and issue_date <= ? group by 1", [AS_OF])}
    aging = {c: (o, d) for c, o, d in workdir.query(
        "select currency, sum(amount_due), coalesce(sum(amount_due) filter (where bucket <> 'current'), 0) "
        "from marts.rpt_ar_aging group by 1")}
    got = {r["currency"]: r for r in page.rows("headline_by_currency")}
    assert set(got) == set(billed) | set(aging)
    for cur, row in got.items():
        n, gross, paid = billed.get(cur, (0, Decimal(0), Decimal(0)))
        open_, overdue = aging.get(cur, (Decimal(0), Decimal(0)))
        assert num(row["invoices"], lang) == n
        assert (num(row["invoiced"], lang), num(row["collected"], lang)) == (gross, paid)
        assert (num(row["open"], lang), num(row["overdue"], lang)) == (open_, overdue)


def test_headline_in_the_reporting_currency_uses_each_invoices_own_rate(built):
    workdir, (_out, page) = built["workdir"], built["reports"]["ru"]
    rows = workdir.query_dicts("select * from marts.fct_invoices where not is_deleted and issue_date <= "
                               f"date '{AS_OF}'")
    billed = [r for r in rows if r["status"] not in ("draft", "cancelled")]
    open_ = [r for r in rows if r["status"] in ("issued", "partially_paid") and r["amount_due"] > 0]
    overdue = [r for r in open_ if r["due_date"] is not None and r["due_date"] < AS_OF]

    def total(items, column):
        return sum((to_reporting(r[column], r["fx_rate_to_reporting"]) or 0 for r in items), Decimal("0.00"))

    expected = {"invoiced": sum((r["amount_gross_reporting"] or 0 for r in billed), Decimal(0)),
                "collected": total(billed, "amount_paid"), "open": total(open_, "amount_due"),
                "overdue": total(overdue, "amount_due")}
    assert {k: num(v, "ru") for k, v in page.kpis.items()} == expected
    assert all(v.endswith("\u00a0RUB") for v in page.kpis.values())
    # the one invoice without a rate is named, not silently converted 1:1
    unconverted = sum(1 for r in billed if r["fx_rate_to_reporting"] is None)
    assert unconverted == 1
    kzt = next(r for r in page.rows("headline_by_currency") if r["currency"] == "KZT")  # the planted one
    assert kzt["invoiced_reporting"] == "—" and num(kzt["invoiced"], "ru") > 0
    assert f"{unconverted} счетов без курса к RUB" in built["reports"]["ru"][0].read_text(encoding="utf-8")


def test_freshness_is_the_last_successful_load_per_crm(built):
    workdir, (_out, page) = built["workdir"], built["reports"]["ru"]
    rows = {CRM[r["source_system"]]: r for r in page.rows("freshness")}
    for source in ("salesman", "bitrix24", "onlyoffice"):
        (last,) = workdir.query(f"select max(inserted_at) from raw_{source}._dlt_loads where status = 0")[0]
        assert rows[source]["last_success"] == f"{last:%d.%m.%Y %H:%M} UTC"
        assert rows[source]["state"] == "загружено"
    assert not page.banners


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_aging_equals_rpt_ar_aging(built, lang):
    workdir, (_out, page) = built["workdir"], built["reports"][lang]
    expected = defaultdict(dict)
    for s, c, b, n, d in workdir.query("select source_system, currency, bucket, invoice_count, amount_due "
                                       "from marts.rpt_ar_aging"):
        expected[(c, s)][b] = (n, d)
    got = {(r["currency"], CRM[r["source_system"]]): r for r in page.rows("ar_aging")}
    assert set(got) == set(expected)
    for key, row in got.items():
        for b in BUCKETS:
            assert num(row[f"b_{b}"], lang) == expected[key].get(b, (0, Decimal(0)))[1], (key, b)
        assert num(row["invoice_count"], lang) == sum(n for n, _d in expected[key].values())
        assert num(row["total"], lang) == sum(d for _n, d in expected[key].values())
    assert {c for c, _s in expected} <= {chart.removeprefix("aging-") for chart in page.charts}


def test_top_overdue_clients_with_their_invoices(built):
    workdir, (_out, page) = built["workdir"], built["reports"]["ru"]
    overdue = workdir.query_dicts(f"""
        select trim(coalesce(client_name, '')) as client, invoice_number, source_invoice_id, currency, amount_due,
            fx_rate_to_reporting as fx, date '{AS_OF}' - due_date as days
        from marts.fct_invoices
        where not is_deleted and status in ('issued', 'partially_paid') and amount_due > 0
            and issue_date <= date '{AS_OF}' and due_date < date '{AS_OF}'""")
    by_client = defaultdict(lambda: Decimal(0))
    for r in overdue:
        by_client[r["client"]] += to_reporting(r["amount_due"], r["fx"]) or 0
    top = sorted(by_client, key=lambda c: (-by_client[c], c))[:10]
    summary = page.rows("top_overdue_summary")
    assert [r["client_name"] for r in summary] == top
    assert [num(r["client_overdue_reporting"], "ru") for r in summary] == [by_client[c] for c in top]
    rows = page.rows("top_overdue_clients")
    assert list(dict.fromkeys(r["client_name"] for r in rows)) == top
    for r in rows:
        assert num(r["client_overdue_reporting"], "ru") == by_client[r["client_name"]]
    # every overdue invoice of those clients is listed, with its amount and days past due
    expected = sorted((r["client"], r["invoice_number"], r["currency"], r["amount_due"], r["days"])
                      for r in overdue if r["client"] in top)
    got = sorted((r["client_name"], r["invoice_number"], r["currency"], num(r["amount_due"], "ru"),
                  int(r["days_past_due"].replace("\u00a0", ""))) for r in rows)
    assert got == expected


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_vat_by_month_and_quarter_equal_rpt_vat_by_month(built, lang):
    workdir, (out, page) = built["workdir"], built["reports"][lang]

    def rows_of(table):
        return sorted((CRM[r["source_system"]], r["currency"], r["vat_rate"], num(r["invoice_count"], lang),
                       num(r["amount_net"], lang), num(r["vat_amount"], lang), num(r["amount_gross"], lang))
                      for r in page.rows(table))

    def rate_text(rate):
        if rate is None:
            return "Без НДС" if lang == "ru" else "Without VAT (без НДС)"
        text = format(rate.normalize(), "f")
        return f"{text}\u00a0%" if lang == "ru" else f"{text}%"

    mart = workdir.query("select source_system, currency, vat_rate, invoice_count, amount_net, vat_amount, "
                         "amount_gross from marts.rpt_vat_by_month")
    assert rows_of("vat_by_month") == sorted((s, c, rate_text(r), n, a, v, g) for s, c, r, n, a, v, g in mart
                                             if r is not None)
    assert rows_of("vat_without") == sorted((s, c, rate_text(r), n, a, v, g) for s, c, r, n, a, v, g in mart
                                            if r is None)
    quarters = workdir.query("""
        select year(month), quarter(month), currency, vat_rate, sum(amount_net), sum(vat_amount), sum(amount_gross)
        from marts.rpt_vat_by_month where vat_rate is not null group by all""")
    label = "{q} кв. {y}" if lang == "ru" else "Q{q} {y}"
    assert sorted((r["quarter"], r["currency"], r["vat_rate"], num(r["amount_net"], lang), num(r["vat_amount"], lang),
                   num(r["amount_gross"], lang)) for r in page.rows("vat_by_quarter")) == sorted(
        (label.format(q=q, y=y), c, rate_text(r), n, v, g) for y, q, c, r, n, v, g in quarters)
    # both standard rates are there, and the chart marks the switch to 22 % on 2026-01-01
    rates = {r["vat_rate"] for r in page.rows("vat_by_quarter") if r["currency"] == "RUB"}
    assert {rate_text(Decimal(20)), rate_text(Decimal(22))} <= rates
    switch = "22 % с 01.01.2026" if lang == "ru" else "22% from 1 Jan 2026"
    assert switch in out.read_text(encoding="utf-8") and "vat-RUB" in page.charts


def test_invoiced_vs_collected_per_month(built):
    workdir, (_out, page) = built["workdir"], built["reports"]["en"]
    invoiced = dict(((m, c), v) for m, c, v in workdir.query(f"""
        select cast(date_trunc('month', issue_date) as date), currency, sum(amount_gross) from marts.fct_invoices
        where not is_deleted and status not in ('draft', 'cancelled') and issue_date <= date '{AS_OF}'
        group by all"""))
    collected = dict(((m, c), v) for m, c, v in workdir.query(f"""
        select cast(date_trunc('month', p.paid_date) as date), p.currency, sum(p.amount) from marts.fct_payments p
        join marts.fct_invoices f using (invoice_key) where not f.is_deleted and p.paid_date <= date '{AS_OF}'
        group by all"""))
    months = {"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10,
              "Nov": 11, "Dec": 12}
    got = {}
    for r in page.rows("invoiced_collected_by_month"):
        mon, year = r["month"].split()
        got[(date(int(year), months[mon], 1), r["currency"])] = (num(r["invoiced"], "en"), num(r["collected"], "en"))
    keys = set(invoiced) | set(collected)
    assert got == {k: (invoiced.get(k, Decimal(0)), collected.get(k, Decimal(0))) for k in keys}
    undated = dict(workdir.query("select p.currency, sum(p.amount) from marts.fct_payments p join marts.fct_invoices "
                                 f"f using (invoice_key) where not f.is_deleted and p.paid_date is null and "
                                 f"f.issue_date <= date '{AS_OF}' group by 1"))
    assert {r["currency"]: num(r["amount"], "en") for r in page.rows("payments_without_date")} == undated
    assert undated  # ONLYOFFICE records no payment dates


def test_reconciliation_grouped_by_rule_then_every_row_with_a_link(built):
    workdir, (out, page) = built["workdir"], built["reports"]["en"]
    counts = dict(workdir.query("select rule, count(*) from marts.rpt_reconciliation_exceptions group by 1"))
    assert len(counts) == 11
    summary = {r["rule"]: r for r in page.rows("reconciliation_by_rule")}
    assert {rule: int(r["count"]) for rule, r in summary.items()} == counts
    for rule, r in summary.items():
        assert r["meaning"] and r["todo"], rule
    assert summary["missing_fx_rate"]["at_stake_reporting"] == "—"  # no rate: not a silent 0
    # money at stake, exact: the overpayment is what was paid beyond the invoice
    (gross, paid, cur), = workdir.query(
        "select f.amount_gross, f.amount_paid, f.currency from marts.rpt_reconciliation_exceptions e join "
        "marts.fct_invoices f using (invoice_key) where rule = 'payments_exceed_invoice'")
    assert summary["payments_exceed_invoice"]["at_stake"] == f"{paid - gross:,.2f}\u00a0{cur}"
    # every exception row is there, in its rule's list, linked to the invoice's page in its CRM
    mart = workdir.query_dicts("select e.rule, e.invoice_key, f.source_invoice_id, f.source_system from "
                               "marts.rpt_reconciliation_exceptions e join marts.fct_invoices f using (invoice_key)")
    got = set()
    base = built["base_url"]
    for rule in counts:
        table = page.tables[f"t-exceptions-{rule}"]
        for row, links in zip(table["rows"], table["links"], strict=True):
            got.add((rule, row["invoice_key"]))
            m = next(x for x in mart if x["invoice_key"] == row["invoice_key"] and x["rule"] == rule)
            sid = m["source_invoice_id"]
            expected_url = {"salesman": f"{base}/card.deal?did={sid.split(':')[0]}",
                            "bitrix24": f"{base}/crm/type/31/details/{sid.removeprefix('SI:')}/" if sid.startswith("SI:")
                            else f"{base}/crm/invoice/show/{sid.removeprefix('I:')}/",
                            "onlyoffice": f"{base}/Products/CRM/Invoices.aspx?id={sid}"}[m["source_system"]]
            assert links["invoice_number"] == expected_url
    assert got == {(m["rule"], m["invoice_key"]) for m in mart}
    # the webhook's secret path never reaches the file, only the portal's origin
    assert "sbx4hook" not in out.read_text(encoding="utf-8")


def test_a_systematic_cause_reads_as_one_finding(built):
    """Many rows of one rule in one CRM (SalesMan's own VAT default on a real account: 423 of 489) are one
    finding with a total, not rows to scroll: the pattern table groups them by the rate actually charged."""
    workdir, (_out, page) = built["workdir"], built["reports"]["en"]
    rows = workdir.query_dicts("select e.actual, f.amount_gross, f.vat_rate from marts.rpt_reconciliation_exceptions e "
                               "join marts.fct_invoices f using (invoice_key) where rule = 'vat_rate_mismatch'")
    patterns = page.rows("reconciliation_patterns")
    assert sum(int(p["count"]) for p in patterns) == len(rows)
    for r in rows:
        implied = (Decimal(r["actual"]) * 100 / (r["amount_gross"] - Decimal(r["actual"]))).quantize(Decimal("0.1"))
        text = f"invoice rate {format(r['vat_rate'].normalize(), 'f')}%, VAT charged at {format(implied.normalize(), 'f')}%"
        assert any(p["finding"] == text for p in patterns), text


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_table_has_its_csv_with_the_same_figures(built, lang):
    out, page = built["reports"][lang]
    for table_id, table in page.tables.items():
        path = out.with_name(table["csv"])
        with path.open(encoding="utf-8-sig", newline="") as fh:
            records = list(csv.DictReader(fh))
        if table_id.startswith("t-exceptions-"):
            rule = table_id.removeprefix("t-exceptions-")
            records = [r for r in records if r["rule"] == rule]
        html_rows = [r for r in table["rows"]]
        if not records:
            assert len(html_rows) <= 1  # the "no data" row
            continue
        assert len(records) == len(html_rows), table_id
        assert list(records[0]) == table["cols"], table_id
        for rec, row in zip(records, html_rows, strict=True):
            for col, text in row.items():
                if col == "_total" or not rec.get(col) or not re.fullmatch(r"-?\d+\.\d{2}", rec[col]):
                    continue
                assert num(text, lang) == Decimal(rec[col]), (table_id, col)


def test_the_file_works_offline(built):
    out, page = built["reports"]["ru"]
    text = out.read_text(encoding="utf-8")
    assert page.fetching == []  # no script, style sheet, image, font or frame from anywhere
    assert not re.search(r"@import|url\(", text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    external = [a for a in page.anchors if re.match(r"https?://", a)]
    assert external and all(a.startswith(built["base_url"]) for a in external)  # only the links into the CRMs


def test_locale_formats(built):
    ru, en = built["reports"]["ru"][0].read_text(encoding="utf-8"), built["reports"]["en"][0].read_text(encoding="utf-8")
    assert "На дату: <b>20.11.2026</b>" in ru and "As of: <b>20 Nov 2026</b>" in en
    assert re.search(r"\d{1,3}(\u00a0\d{3})+,\d{2}\u00a0RUB", ru)
    assert re.search(r"\d{1,3}(,\d{3})+\.\d{2}\u00a0RUB", en)
    assert '<html lang="ru"' in ru and '<html lang="en"' in en
    ru_page = built["reports"]["ru"][1]
    assert all(ru_date(r["issue_date"]) <= AS_OF for r in ru_page.rows("top_overdue_clients"))


def test_the_default_language_follows_the_locale(built):
    workdir = built["workdir"]
    for locale, lang in (("ru_RU.UTF-8", "ru"), ("en_GB.UTF-8", "en"), ("C.UTF-8", "en")):
        out = workdir.path / "out" / f"locale_{lang}.html"
        assert_ok(workdir.cli(*report_args(out), env={"LC_ALL": locale}))
        assert Report(out.read_text(encoding="utf-8")).root["lang"] == lang


def test_bad_arguments_are_usage_errors(built):
    workdir = built["workdir"]
    proc = workdir.cli("report", "--as-of", "31.10.2026")
    assert proc.returncode == 3 and "--as-of '31.10.2026' is not a date" in proc.stderr
    proc = workdir.cli("report", "--reporting-currency", "euro")
    assert proc.returncode == 3 and "is not an ISO 4217 code" in proc.stderr
    proc = workdir.cli("report", "--out", "/proc/no/such/dir/report.html")
    assert proc.returncode == 5 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_another_as_of_and_currency_equal_the_marts_built_with_those_vars(built):
    """Runs last in this module: it finally rebuilds the marts with the same vars to compare."""
    workdir = built["workdir"]
    before = hashlib.sha256(workdir.db.read_bytes()).hexdigest()
    out = workdir.path / "out" / "eur.html"
    proc = workdir.cli(*report_args(out, "--as-of", "2026-10-31", "--reporting-currency", "EUR", "--lang", "en"))
    assert_ok(proc)
    assert hashlib.sha256(workdir.db.read_bytes()).hexdigest() == before  # the warehouse was only read
    page = Report(out.read_text(encoding="utf-8"))
    assert_ok(workdir.cli("models", "--vars", '{"as_of": "2026-10-31", "reporting_currency": "EUR"}'))
    aging = defaultdict(Decimal)
    for c, s, d in workdir.query("select currency, source_system, amount_due from marts.rpt_ar_aging"):
        aging[(c, s)] += d
    assert {(r["currency"], CRM[r["source_system"]]): num(r["total"], "en") for r in page.rows("ar_aging")} == aging
    (invoiced,), = workdir.query("select sum(amount_gross_reporting) from marts.fct_invoices where not is_deleted "
                                 "and status not in ('draft', 'cancelled') and issue_date <= date '2026-10-31'")
    assert num(page.kpis["invoiced"], "en") == invoiced and page.kpis["invoiced"].endswith("\u00a0EUR")
    assert "As of: <b>31 Oct 2026</b>" in out.read_text(encoding="utf-8")


# ---- warehouses that are not full ------------------------------------------------------------------------

def test_no_warehouse_is_a_clear_message(workdir):
    proc = workdir.cli("report")
    assert proc.returncode == 5
    assert proc.stderr.strip() == (f"crm-invoices: report: there is no warehouse at {workdir.db}. Fix: run "
                                   "`crm-invoices run` first (or point DESTINATION__DUCKDB__CREDENTIALS / "
                                   "CRM_INVOICES_DATA_DIR at the warehouse).")


def test_loaded_but_no_marts_is_a_clear_message(workdir, make_sandbox):
    sandbox = make_sandbox(invoices={"salesman": 5})
    proc = workdir.cli("run", "--no-progress", "--sources", "salesman", "--skip-models", sandbox=sandbox)
    assert_ok(proc)
    assert "report: skipped (--skip-models" in proc.stdout
    proc = workdir.cli("report")
    assert proc.returncode == 5 and "has no marts yet" in proc.stderr and "crm-invoices models" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_empty_warehouse_gives_an_empty_report(workdir, make_sandbox):
    sandbox = make_sandbox(invoices={"salesman": 0})
    assert_ok(workdir.cli("run", "--no-progress", "--sources", "salesman", sandbox=sandbox, env=ENGLISH))
    out = workdir.data / "report.html"
    page = Report(out.read_text(encoding="utf-8"))
    assert any("holds no invoices" in text for _a, text in page.banners)
    assert {k: num(v, "en") for k, v in page.kpis.items()} == dict.fromkeys(
        ("invoiced", "collected", "open", "overdue"), Decimal("0.00"))
    assert page.rows("ar_aging") == [] and page.rows("vat_by_month") == []
    assert "No data" in out.read_text(encoding="utf-8")


def test_one_crm_only(workdir, make_sandbox):
    sandbox = make_sandbox(invoices={"onlyoffice": 30})
    assert_ok(workdir.cli("run", "--no-progress", "--sources", "onlyoffice", sandbox=sandbox))
    out = workdir.path / "one.html"
    assert_ok(workdir.cli(*report_args(out, "--lang", "en")))
    page = Report(out.read_text(encoding="utf-8"))
    fresh = {CRM[r["source_system"]]: r["state"] for r in page.rows("freshness")}
    assert fresh["onlyoffice"] == "loaded"
    assert {fresh[s] for s in fresh if s != "onlyoffice"} <= {"never loaded"}
    assert {CRM[r["source_system"]] for r in page.rows("headline_by_crm")} == {"onlyoffice"}
    (due,), = workdir.query("select sum(amount_due) from marts.rpt_ar_aging")
    assert sum(num(r["total"], "en") for r in page.rows("ar_aging")) == due


def test_a_failed_last_load_is_named_with_the_last_good_one(workdir, make_sandbox):
    sandbox = make_sandbox(invoices={"salesman": 12})
    assert_ok(workdir.cli("run", "--no-progress", "--sources", "salesman", sandbox=sandbox))
    (good,), = workdir.query("select max(inserted_at) from raw_salesman._dlt_loads where status = 0")
    failed = workdir.cli("run", "--no-progress", "--sources", "salesman", sandbox=sandbox,
                         env={"SOURCES__SALESMAN__API_KEY": "a-wrong-key", **ENGLISH})
    assert failed.returncode == 1
    assert f"report: {workdir.data / 'report.html'}" in failed.stdout  # the run still ends with the report
    for path in (workdir.data / "report.html", workdir.path / "later.html"):
        if path.name == "later.html":  # a report written later, from dlt's trace of the failed run
            assert_ok(workdir.cli(*report_args(path, "--lang", "en")))
        page = Report(path.read_text(encoding="utf-8"))
        (attrs, text), = [(a, t) for a, t in page.banners if a.get("data-failed")]
        assert attrs["data-failed"] == "salesman"
        assert text.startswith("SalesMan: the last load failed (")
        assert f"as of its last successful load ({good.day} {good:%b %Y %H:%M} UTC)" in text
        assert "the API rejected the credentials" in text and "a-wrong-key" not in text
        assert {r["state"] for r in page.rows("freshness") if r["source_system"] == "SalesMan"} == {"last load FAILED"}


def test_a_systematic_vat_default_reads_as_one_finding(workdir):
    """As on a real SalesMan account (423 of 489 invoices): VAT charged at 20 % on most invoices whose rate
    says 22 %. The report names it once, with the count, the share and the money, and the pattern."""
    from crm_invoices.sandbox.world import q2

    world = World.generate(seed=5, invoices={"salesman": 40, "bitrix24": 0, "onlyoffice": 0})
    for inv in world.invoices["salesman"]:
        if inv.lines and all(line.vat_rate == 22 for line in inv.lines):
            inv.vat_override = q2(inv.totals()[2] * 20 / 120)
    sandbox = Sandbox(world).start()
    try:
        assert_ok(workdir.cli("run", "--no-progress", "--sources", "salesman", sandbox=sandbox, env=ENGLISH))
    finally:
        sandbox.stop()
    (n,), = workdir.query("select count(*) from marts.rpt_reconciliation_exceptions where rule = 'vat_rate_mismatch'")
    (total,), = workdir.query("select count(*) from marts.fct_invoices where not is_deleted")
    assert n >= 10 and 2 * n >= total, (n, total)
    text = (workdir.data / "report.html").read_text(encoding="utf-8")
    page = Report(text)
    share = (Decimal(n) * 100 / total).quantize(Decimal(1), ROUND_HALF_UP)
    assert (f"vat_rate_mismatch: {n} of {total} SalesMan invoices ({share}%) — one systematic cause, not {n} "
            "separate errors") in text.replace("\u00a0", " ")
    (row,) = [r for r in page.rows("reconciliation_by_rule") if r["rule"] == "vat_rate_mismatch"]
    stake = sum((abs(Decimal(e) - Decimal(a)) for e, a in workdir.query(
        "select expected, actual from marts.rpt_reconciliation_exceptions where rule = 'vat_rate_mismatch'")),
        Decimal("0.00"))
    assert row["count"] == str(n) and num(row["at_stake"], "en") == stake
    assert {(p["finding"], p["count"]) for p in page.rows("reconciliation_patterns")} == {
        ("invoice rate 22%, VAT charged at 20%", str(n))}


def test_a_warehouse_held_by_a_writer_is_a_clear_message(workdir):
    import duckdb

    workdir.data.mkdir(parents=True)
    with duckdb.connect(str(workdir.db)) as con:  # a writer (a load, a notebook) holds the file
        con.execute("create schema marts")
        proc = workdir.cli("report")
    assert proc.returncode == 5
    assert proc.stderr.startswith(f"crm-invoices: report: cannot open the warehouse {workdir.db} (")
    assert "Fix: wait for the run that writes it to finish" in proc.stderr and "Traceback" not in proc.stderr
