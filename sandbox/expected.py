"""What every mart must hold, computed from the world: the ground truth the end-to-end tests compare with.

Each provider module knows its own dialect's rules (``expected_invoices``, ``expected_lines``,
``expected_payments``); the reports are derived here from those, with the marts' documented definitions.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from crm_invoices.pipelines.registry import spec

from .world import SYSTEMS, World, cross_rate, to_reporting

BASE = "RUB"  # every sandbox account keeps its books in roubles


def _module(system: str):
    return spec(system).truth()


def expected(world: World, what: str, systems=SYSTEMS) -> list[dict]:
    out: list[dict] = []
    for system in systems:
        rows = getattr(_module(system), f"expected_{what}")(world)
        for row in rows:
            row.setdefault("source_system", system)
        out += rows
    return out


def vat_by_month(world: World, systems=SYSTEMS) -> dict[tuple, tuple]:
    """(month, source_system, currency, vat_rate) -> (invoice_count, net, vat, gross)."""
    invoices = [i for i in expected(world, "invoices", systems)
                if not i["is_deleted"] and i["status"] not in ("draft", "cancelled")]
    lines = defaultdict(list)
    for line in expected(world, "lines", systems):
        lines[line["invoice_key"]].append(line)
    groups: dict[tuple, list] = defaultdict(lambda: [set(), Decimal(0), Decimal(0), Decimal(0)])
    for inv in invoices:
        parts = lines.get(inv["invoice_key"]) or [inv]
        for part in parts:
            rate = part["vat_rate"]
            key = (inv["issue_date"].replace(day=1), inv["source_system"], inv["currency"],
                   None if rate is None else Decimal(rate))
            g = groups[key]
            g[0].add(inv["invoice_key"])
            g[1] += part["amount_net"]
            g[2] += part["vat_amount"]
            g[3] += part["amount_gross"]
    return {k: (len(v[0]), v[1], v[2], v[3]) for k, v in groups.items()}


def ar_aging(world: World, as_of: date, systems=SYSTEMS) -> dict[tuple, tuple]:
    """(source_system, currency, bucket) -> (invoice_count, amount_due)."""
    out: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for inv in expected(world, "invoices", systems):
        if inv["is_deleted"] or inv["status"] not in ("issued", "partially_paid") or inv["amount_due"] <= 0 \
                or inv["issue_date"] > as_of:
            continue
        days = (as_of - inv["due_date"]).days if inv["due_date"] else None
        bucket = ("current" if days is None or days <= 0 else "1-30" if days <= 30 else "31-60" if days <= 60
                  else "61-90" if days <= 90 else "90+")
        g = out[(inv["source_system"], inv["currency"], bucket)]
        g[0] += 1
        g[1] += inv["amount_due"]
    return {k: tuple(v) for k, v in out.items()}


def exceptions(world: World, systems=SYSTEMS) -> set[tuple[str, str]]:
    """(rule, invoice_key) of every planted disagreement: the exceptions report must hold exactly these."""
    keys: dict[tuple[str, str], str] = {}
    for inv in expected(world, "invoices", systems):
        keys[(inv["source_system"], inv["invoice_number"])] = inv["invoice_key"]
    numbers = {(s, i.id): i.number for s in systems for i in world.invoices[s]}
    return {(p["rule"], keys[(p["system"], numbers[(p["system"], p["id"])])])
            for p in world.planted if p["system"] in systems}


# ---- the reporting currency ----------------------------------------------------------------------------------
def fx_rates(world: World, system: str) -> dict[str, Decimal]:
    """What ``int_fx_rates`` holds for one CRM after a run: currency -> rate to the base, as the CRM serves it."""
    return spec(system).rates().fx_rates(world)


def rates_to_base(world: World, system: str) -> dict[str, Decimal | None]:
    """invoice_key -> the rate of the invoice's currency to the base that the CRM carries for it (None: none).
    A CRM whose invoices carry their own rate says so (``rates.rates_to_base``); else the invoice's currency is
    looked up in what the CRM serves (``rates.own_rates`` when its invoices use other rates than that)."""
    rates = spec(system).rates()
    if hasattr(rates, "rates_to_base"):
        return rates.rates_to_base(world, BASE)
    known = rates.own_rates(world, BASE) if hasattr(rates, "own_rates") else fx_rates(world, system)
    return {row["invoice_key"]: known.get(row["currency"]) for row in expected(world, "invoices", [system])}


def reporting(world: World, currency: str, systems=SYSTEMS) -> dict[str, tuple[Decimal | None, Decimal | None]]:
    """invoice_key -> (fx_rate_to_reporting, amount_gross_reporting) that ``fct_invoices`` must hold with the dbt
    var ``reporting_currency`` = ``currency``: the same currency at 1; the CRM's own rate when the base is the
    reporting currency; else the cross rate through the same CRM's rate of the reporting currency."""
    out: dict[str, tuple[Decimal | None, Decimal | None]] = {}
    for system in systems:
        own, quoted = rates_to_base(world, system), fx_rates(world, system)
        for row in expected(world, "invoices", [system]):
            rate = own[row["invoice_key"]]
            if row["currency"] == currency:
                rate = Decimal(1)
            elif BASE != currency:
                rate = cross_rate(rate, quoted[currency]) if rate is not None and currency in quoted else None
            out[row["invoice_key"]] = (rate, None if rate is None else to_reporting(row["amount_gross"], rate))
    return out
