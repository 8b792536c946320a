"""The rates Bitrix24 serves (ground truth for ``int_fx_rates``): crm.currency.list's AMOUNT / AMOUNT_CNT,
the base at 1."""

from __future__ import annotations

from decimal import Decimal

from ..world import World
from .render import portal_currencies


def fx_rates(world: World) -> dict[str, Decimal]:
    return {code: world.rate(code, world.today) for code in portal_currencies(world)}
