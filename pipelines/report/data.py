"""The report's figures: SQL over the marts, on a read-only connection. Nothing here computes money in
Python except exact Decimal sums of what SQL returned (quarter totals, per-client totals)."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

MARTS = ("fct_invoices", "fct_invoice_lines", "fct_payments", "rpt_vat_by_month", "rpt_ar_aging",
         "rpt_reconciliation_exceptions")
BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
ZERO = Decimal("0.00")
# conversion of a per-invoice amount with the invoice's own mart rate; wide, so a large amount never overflows
TO_REPORTING = "cast({amount} * fx_rate_to_reporting as decimal(38,2))"


@dataclass
class Freshness:
    source: str
    last_success: datetime | None
    invoices: int
    failed_at: datetime | None = None
    failure: str | None = None


@dataclass
class Exception_:
    rule: str
    severity: str
    source_system: str
    invoice_key: str
    message: str
    expected: str | None
    actual: str | None
    invoice_number: str | None
    client_name: str | None
    issue_date: date | None
    currency: str
    account: str
    source_invoice_id: str
    stake: Decimal
    stake_reporting: Decimal | None
    pattern: str | None = None  # a systematic cause shared by many rows (e.g. the VAT rate pair)


@dataclass
class ReportData:
    as_of: date
    reporting_currency: str
    headline: list[dict]          # per source and currency
    freshness: list[Freshness]
    aging: list[dict]             # rpt_ar_aging rows
    overdue_invoices: list[dict]  # invoices behind the top-client table
    vat: list[dict]               # rpt_vat_by_month rows
    flow: list[dict]              # month, currency, invoiced, collected
    undated_payments: list[dict]  # currency, payments, amount
    exceptions: list[Exception_]
    live_invoices: dict[str, int]  # per source, for the share of a rule
    extra: dict = field(default_factory=dict)


def missing_marts(con) -> list[str]:
    have = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts'").fetchall()}
    return [m for m in MARTS if m not in have]


def marts_as_of(con) -> date | None:
    row = con.execute("select max(as_of) from marts.rpt_ar_aging").fetchone()
    return row[0] if row else None


def marts_reporting_currency(con) -> str | None:
    """The reporting currency the marts were built with, read from the marts themselves: an invoice converted
    as 'same currency' is in it; failing that, missing_fx_rate names it in `expected`."""
    row = con.execute("select min(currency) from marts.fct_invoices where fx_rate_source = 'same currency'").fetchone()
    if row and row[0]:
        return row[0]
    row = con.execute("select min(expected) from marts.rpt_reconciliation_exceptions "
                      "where rule = 'missing_fx_rate'").fetchone()
    return row[0] if row and row[0] else None


def _dicts(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def load(con, as_of: date, reporting_currency: str, sources: list[str]) -> ReportData:
    return ReportData(
        as_of=as_of,
        reporting_currency=reporting_currency,
        headline=headline(con, as_of),
        freshness=freshness(con, sources),
        aging=_dicts(con, "select source_system, currency, bucket, invoice_count, amount_due from marts.rpt_ar_aging "
                          "order by currency, source_system, bucket"),
        overdue_invoices=overdue_invoices(con, as_of),
        vat=_dicts(con, "select month, source_system, currency, vat_rate, invoice_count, amount_net, vat_amount, "
                        "amount_gross from marts.rpt_vat_by_month order by month, currency, source_system, "
                        "vat_rate nulls last"),
        flow=flow(con, as_of),
        undated_payments=_dicts(con, """
            select p.currency, count(*) as payments, sum(p.amount) as amount
            from marts.fct_payments p join marts.fct_invoices f on f.invoice_key = p.invoice_key
            where not f.is_deleted and p.paid_date is null and f.issue_date <= ?
            group by all order by all""", [as_of]),
        exceptions=exceptions(con),
        live_invoices=dict(con.execute("select source_system, count(*) from marts.fct_invoices where not is_deleted "
                                       "group by all").fetchall()),
    )


def headline(con, as_of: date) -> list[dict]:
    """Per source and currency. Billed: live, not draft or cancelled, issued by as_of. Open: the aging's own
    filter (rpt_ar_aging); overdue: open and past the due date (days past due > 0)."""
    amounts = {"invoiced": "amount_gross", "collected": "amount_paid", "open": "amount_due", "overdue": "amount_due"}
    sets = {"invoiced": "billed", "collected": "billed", "open": "open", "overdue": "open and overdue"}
    cols = []
    for name, amount in amounts.items():
        cols.append(f"coalesce(sum({amount}) filter (where {sets[name]}), 0) as {name}")
        # null (not 0) when no invoice of the group has a rate: "—", never a silent zero
        cols.append(f"sum({TO_REPORTING.format(amount=amount)}) filter (where {sets[name]}) as {name}_reporting")
        cols.append(f"count(*) filter (where {sets[name]} and fx_rate_to_reporting is null) as {name}_unconverted")
    return _dicts(con, f"""
        with flagged as (
            select *,
                not is_deleted and status not in ('draft', 'cancelled') and issue_date <= $as_of as billed,
                not is_deleted and status in ('issued', 'partially_paid') and amount_due > 0
                    and issue_date <= $as_of as open,
                coalesce(due_date < $as_of, false) as overdue
            from marts.fct_invoices
        )
        select source_system, currency,
            count(*) filter (where billed) as invoices,
            count(*) filter (where open) as open_invoices,
            {', '.join(cols)}
        from flagged
        where billed or open
        group by all order by currency, source_system""", {"as_of": as_of})


def overdue_invoices(con, as_of: date) -> list[dict]:
    return _dicts(con, f"""
        select trim(coalesce(client_name, '')) as client_name, source_system, account, source_invoice_id,
            invoice_key, invoice_number, issue_date, due_date, $as_of - due_date as days_past_due, currency,
            amount_due, {TO_REPORTING.format(amount='amount_due')} as amount_due_reporting
        from marts.fct_invoices
        where not is_deleted and status in ('issued', 'partially_paid') and amount_due > 0
            and issue_date <= $as_of and due_date < $as_of
        order by client_name, due_date, invoice_key""", {"as_of": as_of})


def flow(con, as_of: date) -> list[dict]:
    return _dicts(con, """
        with invoiced as (
            select cast(date_trunc('month', issue_date) as date) as month, currency, sum(amount_gross) as invoiced
            from marts.fct_invoices
            where not is_deleted and status not in ('draft', 'cancelled') and issue_date <= $as_of
            group by all
        ),
        collected as (
            select cast(date_trunc('month', p.paid_date) as date) as month, p.currency, sum(p.amount) as collected
            from marts.fct_payments p join marts.fct_invoices f on f.invoice_key = p.invoice_key
            where not f.is_deleted and p.paid_date <= $as_of
            group by all
        )
        select month, currency, coalesce(invoiced, 0) as invoiced, coalesce(collected, 0) as collected
        from invoiced full outer join collected using (month, currency)
        order by currency, month""", {"as_of": as_of})


def freshness(con, sources: list[str]) -> list[Freshness]:
    schemas = {r[0] for r in con.execute("select table_schema from information_schema.tables "
                                          "where table_name = '_dlt_loads'").fetchall()}
    counts = dict(con.execute("select source_system, count(*) from marts.fct_invoices where not is_deleted "
                              "group by all").fetchall())
    out = []
    for name in sources:
        last = None
        if f"raw_{name}" in schemas:
            last = con.execute(f'select max(inserted_at) from "raw_{name}"._dlt_loads where status = 0').fetchone()[0]
        out.append(Freshness(name, last, counts.get(name, 0)))
    return out


_OTHER_KEY = re.compile(r"\(([^()]+)\) has another amount")


def _num(text: str | None) -> Decimal | None:
    try:
        return Decimal(text.split()[-1]) if text else None
    except (ArithmeticError, ValueError, IndexError):
        return None


def stake(rule: str, row: dict) -> Decimal:
    """Money at stake for one exception, in the invoice currency; each rule names what it puts at risk."""
    expected, actual = _num(row["expected"]), _num(row["actual"])
    if rule in ("lines_total_mismatch", "vat_lines_mismatch", "vat_rate_mismatch"):
        return abs((expected or ZERO) - (actual or ZERO))
    if rule == "payments_exceed_invoice":
        return row["amount_paid"] - row["amount_gross"]
    if rule == "payments_without_paid_status":
        return actual or ZERO
    if rule == "due_before_issue":
        return max(row["amount_due"], ZERO)
    if rule == "cross_system_amount_mismatch":
        # both invoices of a pair are exceptions: the difference is counted once, on the smaller key
        other = _OTHER_KEY.search(row["message"] or "")
        if other and other.group(1) < row["invoice_key"]:
            return ZERO
        same_currency = row["expected"] and row["actual"] and row["expected"].split()[0] == row["actual"].split()[0]
        return abs((expected or ZERO) - (actual or ZERO)) if same_currency else abs(row["amount_gross"])
    return abs(row["amount_gross"])  # paid_without_payments, declared_paid_not_booked, missing_fx_rate, non_positive


def _vat_pattern(row: dict) -> str | None:
    """The rate an invoice's VAT was actually charged at, next to the rate it declares: '22→20'."""
    vat, gross, rate = _num(row["actual"]), row["amount_gross"], row["vat_rate"]
    if vat is None or rate is None or gross is None or gross == vat:
        return None
    implied = (vat * 100 / (gross - vat)).quantize(Decimal("0.1"))
    return f"{format(rate.normalize(), 'f')}→{format(implied.normalize(), 'f')}"


def exceptions(con) -> list[Exception_]:
    rows = _dicts(con, """
        select e.rule, e.severity, e.source_system, e.invoice_key, e.message, e.expected, e.actual,
            f.invoice_number, f.client_name, f.issue_date, f.currency, f.account, f.source_invoice_id,
            f.amount_gross, f.amount_paid, f.amount_due, f.vat_rate, f.fx_rate_to_reporting
        from marts.rpt_reconciliation_exceptions e join marts.fct_invoices f on f.invoice_key = e.invoice_key
        order by e.severity, e.rule, e.source_system, f.issue_date, e.invoice_key""")
    out = []
    for row in rows:
        amount = stake(row["rule"], row)
        fx = row["fx_rate_to_reporting"]
        # the same rounding as the SQL conversions above (DuckDB's decimal cast rounds half away from zero)
        reporting = None if fx is None else (amount * fx).quantize(Decimal("0.01"), "ROUND_HALF_UP")
        out.append(Exception_(
            row["rule"], row["severity"], row["source_system"], row["invoice_key"], row["message"], row["expected"],
            row["actual"], row["invoice_number"], row["client_name"], row["issue_date"], row["currency"],
            row["account"], row["source_invoice_id"], amount, reporting,
            _vat_pattern(row) if row["rule"] == "vat_rate_mismatch" else None))
    return out


def top_clients(invoices: list[dict], limit: int = 10) -> list[dict]:
    """Clients ranked by overdue in the reporting currency (unconverted amounts rank by what converted)."""
    clients: dict[str, dict] = {}
    for inv in invoices:
        c = clients.setdefault(inv["client_name"], {"client_name": inv["client_name"], "reporting": ZERO,
                                                    "unconverted": 0, "by_currency": defaultdict(lambda: ZERO),
                                                    "invoices": []})
        c["invoices"].append(inv)
        c["by_currency"][inv["currency"]] += inv["amount_due"]
        if inv["amount_due_reporting"] is None:
            c["unconverted"] += 1
        else:
            c["reporting"] += inv["amount_due_reporting"]
    ranked = sorted(clients.values(), key=lambda c: (-c["reporting"], c["client_name"]))
    return ranked[:limit]
