"""Simple pool kinds as price sources: `constant_price` (a price() getter, the lab's ConstantSumPool) and
`uniswap_v2` (getReserves). Each is a venue that prices the registry's pools of its kind."""

from __future__ import annotations

import decimal
from decimal import Decimal

from auditor.adapters import Quote, price_source
from auditor.chain.plan import Plan, reads
from auditor.chain.reader import Read
from auditor.numbers import context
from auditor.spec import Pool

RESERVES = ("uint112", "uint112", "uint32")


@price_source("constant_price")
def constant_price(pool: Pool) -> Plan[Quote]:
    """price(): quote per base, scaled by 1e18."""
    results = yield from reads([Read(pool.address, "price()")])
    failed = Quote.of(results)
    return failed or Quote(Decimal(results[0].one).scaleb(-18), results=tuple(results))


@price_source("uniswap_v2")
def uniswap_v2(pool: Pool) -> Plan[Quote]:
    """The reserves, which side is the base, and both tokens' decimals: the pool's marginal price."""
    results = yield from reads([
        Read(pool.address, "getReserves()", returns=RESERVES), Read(pool.address, "token0()", returns=("address",)),
        Read(pool.base, "decimals()", returns=("uint8",)), Read(pool.quote, "decimals()", returns=("uint8",))])
    failed = Quote.of(results)
    if failed is not None:
        return failed
    (reserve0, reserve1, _), token0 = results[0].value, results[1].one
    base_decimals, quote_decimals = results[2].one, results[3].one
    base, quote = (reserve0, reserve1) if token0.lower() == pool.base.lower() else (reserve1, reserve0)
    if base == 0:
        return Quote(None, "is empty", results=tuple(results))
    with decimal.localcontext(context()):
        price = Decimal(quote).scaleb(-quote_decimals) / Decimal(base).scaleb(-base_decimals)
    return Quote(price, results=tuple(results))
