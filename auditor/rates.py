"""Rate maths of the lending venues at a pin: per-second and RAY rates to APYs, utilization (pure)."""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from auditor.model import Market
from auditor.numbers import context

SECONDS_PER_YEAR = 365 * 86_400  # the year of Morpho's and Aave's rate maths (leap years ignored)
WAD = Decimal(10) ** 18
RAY = Decimal(10) ** 27
_ZERO = Decimal(0)
_context = context


def per_second_apy(rate_per_s_wad: int) -> Decimal:
    """APY of a per-second rate in WAD, compounded continuously: exp(rate x year) - 1.

    Morpho accrues e^(rate x elapsed) - 1 (to third order) at every interaction, so with frequent accruals a
    borrow compounds continuously; this is the limit its Taylor steps approach.
    """
    with decimal.localcontext(_context()):
        return (Decimal(rate_per_s_wad) / WAD * SECONDS_PER_YEAR).exp() - 1


def ray_apy(rate_ray: int) -> Decimal:
    """APY of Aave's yearly rate in RAY, compounded per second as Aave's UI shows it: (1 + r/year)^year - 1."""
    with decimal.localcontext(_context()):
        return (1 + Decimal(rate_ray) / RAY / SECONDS_PER_YEAR) ** SECONDS_PER_YEAR - 1


def utilization(market: Market) -> Decimal:
    """Borrowed / supplied assets of a market (0 when nothing is supplied)."""
    if market.total_supply_assets <= 0:
        return _ZERO
    with decimal.localcontext(_context()):
        return Decimal(market.total_borrow_assets) / Decimal(market.total_supply_assets)


def _int_detail(details: Mapping[str, Any], key: str) -> int | None:
    value = details.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():  # findings documents carry big ints as strings
        return int(value)
    return None


def market_borrow_apy(market: Market) -> Decimal | None:
    """Borrow APY of a Morpho market from its IRM's borrowRateView at the pin; None when not read."""
    rate = _int_detail(market.details, "borrow_rate_per_s")
    return None if rate is None else per_second_apy(rate)


def market_supply_apy(market: Market) -> Decimal | None:
    """Supply APY of a Morpho market: borrow APY x utilization x (1 - fee).

    Over a year without new flows the borrowers' debt grows by B (e^(r year) - 1), of which suppliers get
    (1 - fee): their return on S is exactly borrow APY x B/S x (1 - fee). (Compounding the per-second supply
    rate instead, as some dashboards do, assumes utilization stays constant while interest accrues.)
    """
    borrow_apy = market_borrow_apy(market)
    fee = _int_detail(market.details, "fee") or 0
    if borrow_apy is None:
        return None
    with decimal.localcontext(_context()):
        return borrow_apy * utilization(market) * (1 - Decimal(fee) / WAD)
