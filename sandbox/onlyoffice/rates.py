"""The rates ONLYOFFICE serves (ground truth for ``int_fx_rates``): currency/rates with 2 decimals, where a 0.00
rate is no rate; each invoice carries its own exchangeRate."""

from __future__ import annotations

from decimal import Decimal

from ..world import World, q2
from .ledger import normalise_world, oo_id, state
from .provider import CURRENCY_INFO


def fx_rates(world: World, base: str = "RUB") -> dict[str, Decimal]:
    rates = {code: q2(world.rate(code, world.today) / world.rate(base, world.today))
             for code in CURRENCY_INFO if code != base and world.has_rate(code)}
    return {code: rate for code, rate in rates.items() if rate > 0}


def rates_to_base(world: World, base: str) -> dict[str, Decimal | None]:
    """invoice_key -> the invoice's own exchangeRate (None when it carries 0)."""
    normalise_world(world, base)
    return {f"onlyoffice:sandbox:{oo_id(inv)}": state(inv).exchange_rate if state(inv).exchange_rate > 0 else None
            for inv in world.invoices["onlyoffice"]}
