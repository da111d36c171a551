"""DEX pools the registry names, as price sources: what to read for a pool's price, and how to read it."""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal

from auditor.chain.reader import Read, ReadResult
from auditor.numbers import context
from auditor.spec import Pool

RESERVES = ("uint112", "uint112", "uint32")


def quote_reads(pool: Pool) -> list[Read]:
    """The reads that price `pool`'s base token in its quote token at one block."""
    if pool.kind == "constant_price":  # price(): quote per base, 1e18 (the lab's ConstantSumPool and its kind)
        return [Read(pool.address, "price()")]
    # uniswap_v2: the reserves, which side is the base, and both tokens' decimals.
    return [Read(pool.address, "getReserves()", returns=RESERVES), Read(pool.address, "token0()", returns=("address",)),
            Read(pool.base, "decimals()", returns=("uint8",)), Read(pool.quote, "decimals()", returns=("uint8",))]


def quote_of(pool: Pool, results: Sequence[ReadResult]) -> tuple[Decimal | None, str]:
    """Whole quote tokens per whole base token from `quote_reads`' answers; None and why when there is none."""
    if not all(r.ok for r in results):
        return None, "could not be read"
    if pool.kind == "constant_price":
        return Decimal(results[0].one).scaleb(-18), ""
    (reserve0, reserve1, _), token0 = results[0].value, results[1].one
    base_decimals, quote_decimals = results[2].one, results[3].one
    base, quote = (reserve0, reserve1) if token0.lower() == pool.base.lower() else (reserve1, reserve0)
    if base == 0:
        return None, "is empty"
    with decimal.localcontext(context()):
        return Decimal(quote).scaleb(-quote_decimals) / Decimal(base).scaleb(-base_decimals), ""
