"""The rates SalesMan serves (ground truth for ``int_fx_rates``): currency/list's course, base units per unit."""

from __future__ import annotations

from decimal import Decimal

from ..world import World
from .provider import CURRENCIES


def fx_rates(world: World) -> dict[str, Decimal]:
    return {code: world.rate(code, world.today) for code in CURRENCIES}


def own_rates(world: World, base: str) -> dict[str, Decimal]:
    """Every SalesMan amount is kept in the account's base currency: its invoices carry the base at 1."""
    return {base: Decimal(1)}
