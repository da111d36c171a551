"""Oracle checks over a window: sample oracle and pool prices at several blocks, and flag oracles that stay frozen."""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor import model
from auditor.adapters import quote
from auditor.adapters.morpho_blue import oracle_in_loan_tokens
from auditor.chain.plan import Plan, at_block, gather, reads
from auditor.chain.reader import Read, ReadResult
from auditor.model import HardAsset, Market, Universe
from auditor.numbers import PRECISION
from auditor.spec import Pool, Registry

# Defaults of the check. FlagConfig (risk.py) does not carry them yet; FlagConfig fields of the same name
# (oracle_frozen_threshold, oracle_still_tolerance) override them once the lead adds them.
DEFAULT_FROZEN_THRESHOLD = Decimal("0.05")  # the truth moved more than 5% over the window ...
# ... while the oracle moved no more than 0.1%: a hard-coded price moves 0, and an exchange-rate oracle that
# only creeps with accrued interest is as blind to a crash as a hard-coded one.
DEFAULT_STILL_TOLERANCE = Decimal("0.001")

ORACLE_GETTER = "price()"  # Morpho's IOracle: loan units per collateral unit, scaled by 1e36
POOL_GETTER = "price()"  # the lab's ConstantSumPool (and most fixed-price pools): quote per base, 1e18

RawSample = tuple[int, int | None]  # (block, raw answer), None when the read failed at that block
PriceSample = tuple[int, Decimal | None]  # (block, price), None when unreadable


@dataclass
class Samples:
    """Series sampled on one chain, and the reads the node could not answer (pruned old state, an outage):
    with any of those the check that asked is not evaluated, since a missing answer is not a frozen price."""

    series: dict[str, list[Any]]
    unavailable: list[str]


# ---------------------------------------------------------------------------------------------------------------
# Sampling: plans whose reads go out at earlier blocks of the pinned chain, in the audit's rounds.


def sample_blocks(first: int, last: int, count: int) -> list[int]:
    """`count` blocks spread evenly from `first` to `last`, both included, ascending and distinct."""
    if count < 1 or last < first:
        raise ValueError(f"cannot sample {count} blocks in {first}..{last}")
    if count == 1 or first == last:
        return [last]
    step = Decimal(last - first) / (count - 1)
    return sorted({first + int(step * k) for k in range(count - 1)} | {last})


def _missing(result: ReadResult, block: int) -> list[str]:
    return [f"{result.read.describe()} at block {block}: {result.error}"] if result.unavailable else []


def sample_getter(targets: Sequence[str], blocks: Sequence[int], signature: str) -> Plan[Samples]:
    """A uint256 getter of every target at every block, all blocks in one round: raw (block, answer) series."""
    targets = list(dict.fromkeys(targets))  # a target named twice is read once
    out = Samples({target: [] for target in targets}, [])
    if not targets:
        return out
    ordered = sorted(set(blocks))
    answers = yield from gather(*(at_block(block, reads([Read(t, signature) for t in targets])) for block in ordered))
    for block, results in zip(ordered, answers, strict=True):
        for target, result in zip(targets, results, strict=True):
            # Before its deployment a contract has no code: the call "succeeds" with no data and fails to decode.
            out.series[target].append((block, result.one if result.ok else None))
            out.unavailable += _missing(result, block)
    return out


def sample_oracle_prices(oracles: Sequence[str], blocks: Sequence[int]) -> Plan[Samples]:
    """Morpho-style oracle answers (`price()`, 1e36-scaled) of every oracle at every block."""
    return (yield from sample_getter(oracles, blocks, ORACLE_GETTER))


def sample_pool_prices(
    pools: Sequence[str | Pool], blocks: Sequence[int], *, getter: str = POOL_GETTER, scale: int = 18
) -> Plan[Samples]:
    """Quote per whole base token of each pool at each block, keyed by pool address.

    A plain address is read through `getter` (a uint256 scaled by 10**scale, as ConstantSumPool.price()).
    A registry Pool is read by its kind, through the venue module that prices pools of that kind.
    """
    plain = [p for p in pools if isinstance(p, str)]
    registered = [p for p in pools if not isinstance(p, str)]
    ordered = sorted(set(blocks))
    raw, quotes = yield from gather(
        sample_getter(plain, ordered, getter),
        gather(*(at_block(block, quote(pool)) for block in ordered for pool in registered)))
    out = Samples({}, list(raw.unavailable))
    for address, series in raw.series.items():
        out.series[address] = [(b, None if v is None else Decimal(v).scaleb(-scale)) for b, v in series]
    for pool in registered:
        out.series[pool.address] = []
    for index, found in enumerate(quotes):
        block, pool = ordered[index // len(registered)], registered[index % len(registered)]
        out.series[pool.address].append((block, found.price))
        if found.unavailable:
            out.unavailable.append(f"{pool.kind} pool {pool.name} at block {block}: {found.why}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Plain data the detector runs on.


@dataclass(frozen=True)
class OracleWatch:
    """One lending market's oracle and the truths it should follow, sampled over one window.

    Series are (block, value) pairs; values in any unit (only relative moves are compared). None marks a
    block where the value could not be read.
    """

    market: str  # market key
    chain: str
    oracle: str
    collateral: str  # token_key of the collateral
    oracle_prices: tuple[RawSample, ...]
    market_prices: tuple[PriceSample, ...] = ()
    market_price_source: str = ""
    look_through: tuple[PriceSample, ...] = ()  # r x par of the collateral's issuer at audited pins
    oracle_to_usd: Decimal | None = None  # raw oracle answer x this = USD per whole collateral token


def address_key(chain: str, address: str) -> str:
    """'chain:0xlower', the key of oracle and pool samples (the program's token_key format)."""
    return model.token_key(chain, address)


def watches_for_markets(
    markets: Iterable[Market],
    hard_assets: Mapping[str, HardAsset],
    oracle_samples: Mapping[str, Sequence[RawSample]],
    market_price_samples: Mapping[str, Sequence[PriceSample]] | None = None,
    look_through_samples: Mapping[str, Sequence[PriceSample]] | None = None,
    market_price_sources: Mapping[str, str] | None = None,
) -> list[OracleWatch]:
    """Join sampled series with the markets whose oracles they belong to.

    `oracle_samples` is keyed by address_key(chain, oracle); the other mappings by the collateral's token_key.
    Markets whose oracle was not sampled are left out.
    """
    prices, truths, sources = market_price_samples or {}, look_through_samples or {}, market_price_sources or {}
    watches = []
    for market in sorted(markets, key=lambda m: m.key):
        oracle_key = address_key(market.chain, market.oracle) if market.oracle else ""
        if oracle_key not in oracle_samples:
            continue
        collateral = model.token_key(market.chain, market.collateral_token)
        loan = hard_assets.get(model.token_key(market.chain, market.loan_token))
        to_usd = None
        if loan is not None:
            to_usd = oracle_in_loan_tokens(1, market.loan_decimals, market.collateral_decimals) * loan.price_usd
        watches.append(OracleWatch(
            market=market.key, chain=market.chain, oracle=market.oracle, collateral=collateral,
            oracle_prices=tuple(oracle_samples[oracle_key]),
            market_prices=tuple(prices.get(collateral, ())), market_price_source=sources.get(collateral, ""),
            look_through=tuple(truths.get(collateral, ())), oracle_to_usd=to_usd,
        ))
    return watches


def sample_markets(universe: Universe, registry: Registry, chain: str, blocks: Sequence[int]
                   ) -> Plan[tuple[Samples, Samples, list[Pool]]]:
    """Every market oracle of `chain` in the universe and every registry pool there, on the same blocks."""
    oracles = sorted({m.oracle for m in universe.markets.values() if m.chain == chain and m.oracle})
    pools = sorted(registry.pools.get(chain, {}).values(), key=lambda p: p.name)
    oracle_samples, pool_samples = yield from gather(sample_oracle_prices(oracles, blocks),
                                                     sample_pool_prices(pools, blocks))
    return oracle_samples, pool_samples, pools


def watch_markets(
    universe: Universe,
    sampled: Mapping[str, tuple[Samples, Samples, list[Pool]]],
    look_through_samples: Mapping[str, Sequence[PriceSample]] | None = None,
) -> list[OracleWatch]:
    """Join every chain's samples (`sample_markets`) with the markets whose oracles they belong to.

    Pool prices are in the pool's quote asset; relative moves need no USD conversion (a par-priced quote
    is assumed not to move itself).
    """
    oracle_samples: dict[str, list[RawSample]] = {}
    pool_samples: dict[str, list[PriceSample]] = {}
    pool_sources: dict[str, str] = {}
    for chain, (oracles, prices, pools) in sorted(sampled.items()):
        for oracle, series in oracles.series.items():
            oracle_samples[address_key(chain, oracle)] = series
        for pool in pools:
            key = model.token_key(chain, pool.base)
            pool_samples[key] = prices.series[pool.address]
            pool_sources[key] = f"{pool.kind} pool {pool.name} ({pool.address})"
    return watches_for_markets(universe.markets.values(), universe.hard_assets, oracle_samples, pool_samples,
                               look_through_samples, pool_sources)


# ---------------------------------------------------------------------------------------------------------------
# The pure check.


@dataclass(frozen=True)
class Move:
    """How far a series moved over the window: the largest distance from its first valid value, relative."""

    first: Decimal
    last: Decimal
    low: Decimal
    high: Decimal
    relative: Decimal  # max |v - first| / first
    first_block: int
    last_block: int
    points: int


def relative_move(series: Iterable[tuple[int, Any]]) -> Move | None:
    """The move of a (block, value) series; None with fewer than two positive readable values."""
    valid = sorted((block, Decimal(value)) for block, value in series if value is not None and value > 0)
    if len(valid) < 2:
        return None
    with decimal.localcontext(decimal.Context(prec=PRECISION)):
        first = valid[0][1]
        values = [v for _, v in valid]
        return Move(first, values[-1], min(values), max(values), max(abs(v - first) for v in values) / first,
                    valid[0][0], valid[-1][0], len(valid))


@dataclass(frozen=True)
class FrozenOracle:
    """An oracle that stayed still while what it prices moved."""

    watch: OracleWatch
    oracle: Move
    truth: str  # "market price" or "look-through value": the larger mover
    truth_move: Move
    market_price: Move | None
    look_through: Move | None


def frozen_oracles(
    watches: Iterable[OracleWatch],
    *,
    threshold: Decimal = DEFAULT_FROZEN_THRESHOLD,
    still_tolerance: Decimal = DEFAULT_STILL_TOLERANCE,
) -> list[FrozenOracle]:
    """Oracles whose price moved no more than `still_tolerance` while the collateral's market price or
    look-through value moved more than `threshold` (both relative to their first sample in the window)."""
    found = []
    for watch in watches:
        oracle = relative_move(watch.oracle_prices)
        if oracle is None or oracle.relative > still_tolerance:
            continue
        market_price = relative_move(watch.market_prices)
        look_through = relative_move(watch.look_through)
        truths = [(name, move) for name, move in (("market price", market_price), ("look-through value", look_through))
                  if move is not None and move.relative > threshold]
        if not truths:
            continue
        name, move = max(truths, key=lambda t: t[1].relative)
        found.append(FrozenOracle(watch, oracle, name, move, market_price, look_through))
    return found


def _move_dict(move: Move | None) -> dict[str, Any] | None:
    if move is None:
        return None
    return {"first": move.first, "last": move.last, "low": move.low,
            "high": move.high, "move": move.relative, "first_block": move.first_block,
            "last_block": move.last_block, "samples": move.points}


def _series(series: Iterable[tuple[int, Any]]) -> list[list[Any]]:
    return [[block, None if value is None else str(value)] for block, value in series]


__all__ = [
    "DEFAULT_FROZEN_THRESHOLD",
    "DEFAULT_STILL_TOLERANCE",
    "FrozenOracle",
    "Move",
    "OracleWatch",
    "Samples",
    "address_key",
    "frozen_oracles",
    "relative_move",
    "sample_blocks",
    "sample_getter",
    "sample_markets",
    "sample_oracle_prices",
    "sample_pool_prices",
    "watch_markets",
    "watches_for_markets",
]
