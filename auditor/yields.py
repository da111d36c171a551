"""Yield sources: what an issuer's positions earn and pay on chain, as APY on its supply, against its claim."""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor import model
from auditor.backing import BackingResult
from auditor.chain.plan import Plan, reads
from auditor.chain.reader import Read, ReadResult
from auditor.flags.base import DEFAULT_CONFIG
from auditor.model import Evidence, Position, Universe
from auditor.numbers import PRECISION, exact
from auditor.rates import (
    SECONDS_PER_YEAR,
    market_borrow_apy,
    market_supply_apy,
    per_second_apy,
    ray_apy,
    utilization,
)

# Defaults of the checks in this module. FlagConfig (risk.py) does not carry them yet; a FlagConfig field of
# the same name (unexplained_yield_margin, principal_tolerance) overrides them once the lead adds it.
DEFAULT_UNEXPLAINED_MARGIN = Decimal("0.02")  # claimed APY above explained APY + 2 points is unexplained
DEFAULT_PRINCIPAL_TOLERANCE = Decimal("0.0001")  # unfunded share-price rise below 1 bp of the price is rounding

VALUE_BASIS = (
    "face: lending supply and debt are weighted by the amount the venue accounts (interest accrues on face, "
    "not on look-through value); tokens are priced as the backing engine prices them (hard assets at their "
    "registry price, other issuers' tokens at r x par, the issuer's own tokens at 0)"
)

_ZERO = Decimal(0)
_ONE = Decimal(1)

EARNED, PAID, IDLE = "earned", "paid", "none"


def _context() -> decimal.Context:
    return decimal.Context(prec=PRECISION, rounding=decimal.ROUND_HALF_EVEN)


# ---------------------------------------------------------------------------------------------------------------
# Rate maths.


# ---------------------------------------------------------------------------------------------------------------
# Per-position decomposition.


@dataclass(frozen=True)
class YieldSource:
    """One position of the issuer: its value and what it earns (positive) or pays (negative) per year."""

    chain: str
    account: str
    venue: str
    kind: str
    token: str
    symbol: str
    market: str | None
    value_usd: Decimal  # face value (VALUE_BASIS); never negative, the direction says earned or paid
    apy: Decimal | None  # None: a rate should exist but could not be read (counted as 0)
    usd_per_year: Decimal  # value_usd x apy, negative for debts
    direction: str  # EARNED, PAID or IDLE
    rate: dict[str, str]  # the inputs the APY was computed from, as text
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "account": self.account,
            "venue": self.venue,
            "kind": self.kind,
            "token": self.token,
            "symbol": self.symbol,
            "market": self.market,
            "value_usd": self.value_usd,
            "apy": self.apy,
            "usd_per_year": self.usd_per_year,
            "direction": self.direction,
            "rate": dict(self.rate),
            "note": self.note,
        }


@dataclass(frozen=True)
class YieldBreakdown:
    """Where an issuer's verifiable yield comes from, and how it compares with its claim and a benchmark."""

    issuer: str
    symbol: str
    supply_usd: Decimal
    sources: tuple[YieldSource, ...]
    earned_usd_per_year: Decimal
    paid_usd_per_year: Decimal  # positive: what the debts cost
    explained_apy: Decimal | None  # (earned - paid) / supply_usd; None when there is no supply
    claimed_apy: Decimal | None
    benchmark_apy: Decimal | None
    complete: bool  # False when some lending position's rate could not be read (counted as 0)
    notes: tuple[str, ...]

    @property
    def net_usd_per_year(self) -> Decimal:
        return self.earned_usd_per_year - self.paid_usd_per_year

    @property
    def unexplained_apy(self) -> Decimal | None:
        """Claimed minus explained APY (None when either is undefined)."""
        if self.claimed_apy is None or self.explained_apy is None:
            return None
        with decimal.localcontext(_context()):
            return self.claimed_apy - self.explained_apy

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: every figure in its exact spelling (auditor.numbers.exact)."""

        def minus(a: Decimal | None, b: Decimal | None) -> str | None:
            if a is None or b is None:
                return None
            with decimal.localcontext(_context()):  # the JSON keeps every digit, not the default 28
                return exact(a - b)

        return {
            "issuer": self.issuer,
            "symbol": self.symbol,
            "supply_usd": self.supply_usd,
            "value_basis": VALUE_BASIS,
            "sources": [s.as_dict() for s in self.sources],
            "earned_usd_per_year": self.earned_usd_per_year,
            "paid_usd_per_year": self.paid_usd_per_year,
            "net_usd_per_year": self.net_usd_per_year,
            "explained_apy": self.explained_apy,
            "claimed_apy": self.claimed_apy,
            "benchmark_apy": self.benchmark_apy,
            "claimed_minus_explained": minus(self.claimed_apy, self.explained_apy),
            "claimed_minus_benchmark": minus(self.claimed_apy, self.benchmark_apy),
            "explained_minus_benchmark": minus(self.explained_apy, self.benchmark_apy),
            "complete": self.complete,
            "notes": list(self.notes),
        }


class _Pricer:
    """USD per whole token the way backing.py values it: hard assets at registry price, issued at r x par."""

    def __init__(self, universe: Universe, result: BackingResult, issuer: str) -> None:
        self.universe = universe
        self.result = result
        self.issuer = issuer
        self.owners = {key: owner for owner, sheet in universe.sheets.items() for key in sheet.token_keys}

    def price(self, key: str, *, debt: bool) -> Decimal | None:
        hard = self.universe.hard_assets.get(key)
        if hard is not None:
            return hard.price_usd
        owner = self.owners.get(key)
        if owner is None:
            return None
        figures = self.result.issuers.get(owner)
        if figures is None:
            return None
        if owner == self.issuer and not debt:
            return _ZERO  # a claim on yourself is not backing, and interest on it is not yield
        # Debts at the claimed ratio, as the backing engine values them (conservative: the cost is not understated).
        ratio = figures.claimed_ratio if debt else figures.backing_ratio
        return (ratio or _ZERO) * figures.par_usd


def _key(position: Position) -> str:
    chain, _, address = position.token_key.partition(":")
    return model.token_key(chain, address)


def _rate_of(
    position: Position, universe: Universe, vault_apys: Mapping[str, Decimal]
) -> tuple[Decimal | None, str | None, dict[str, str], str]:
    """(APY, market key, rate inputs, note) of one position, from its venue's module; 0 for what earns nothing."""
    from auditor.adapters import load_rates

    venue_rate = load_rates().get(position.venue)
    if venue_rate is not None and position.kind != model.BALANCE:
        found = venue_rate(position, universe.markets, vault_apys)
        return found.apy, found.market, found.inputs, found.note
    if position.kind in (model.SUPPLY, model.DEBT):
        return None, None, {}, "no rate is known for this lending position"
    # Plain balances and posted collateral earn nothing by themselves.
    return _ZERO, None, {}, ""


def analyse_yield(
    universe: Universe,
    result: BackingResult,
    issuer: str,
    *,
    benchmark_apy: Decimal | None = None,
    vault_apys: Mapping[str, Decimal] | None = None,
) -> YieldBreakdown:
    """Decompose `issuer`'s verifiable yield position by position (typed; see `yield_sources` for plain data).

    `benchmark_apy` defaults to FlagConfig.benchmark_lending_rate. `vault_apys` maps a vault's token key
    ('chain:0xlower') to the APY of its share-price growth over a window (`share_price_apy`); vault shares
    without one earn 0.
    """
    with decimal.localcontext(_context()):
        return _analyse(universe, result, issuer, benchmark_apy, dict(vault_apys or {}))


def _analyse(
    universe: Universe,
    result: BackingResult,
    issuer: str,
    benchmark_apy: Decimal | None,
    vault_apys: Mapping[str, Decimal],
) -> YieldBreakdown:
    sheet = universe.sheets[issuer]
    figures = result.issuers.get(issuer)
    supply_usd = figures.supply_usd if figures is not None else Decimal(sheet.supply.tokens) * sheet.par_usd
    pricer = _Pricer(universe, result, issuer)
    sources: list[YieldSource] = []
    notes: list[str] = []
    complete = True
    earned, paid = _ZERO, _ZERO
    ordered = sorted(sheet.positions, key=lambda p: (p.kind, p.chain, p.account.lower(), p.token.lower(), p.venue,
                                                    repr(p.details.get("market")), p.amount))
    for position in ordered:
        debt = position.kind == model.DEBT
        apy, market_key, inputs, note = _rate_of(position, universe, vault_apys)
        price = pricer.price(_key(position), debt=debt)
        where = f"{position.kind} of {position.symbol or position.token} at {position.venue} ({position.chain})"
        if price is None:
            note = "; ".join(n for n in (note, "unpriced token: valued 0") if n)
            price = _ZERO
        if apy is None:
            complete = False
            notes.append(f"{where}: {note or 'rate unknown'}; counted as earning 0")
        value = Decimal(max(0, position.amount)).scaleb(-position.decimals) * price
        per_year = value * (apy or _ZERO)
        if debt:
            paid += per_year
        else:
            earned += per_year
        direction = IDLE if per_year == 0 else (PAID if debt else EARNED)
        sources.append(YieldSource(
            chain=position.chain, account=position.account, venue=position.venue, kind=position.kind,
            token=position.token, symbol=position.symbol, market=market_key, value_usd=value, apy=apy,
            usd_per_year=-per_year if debt else per_year, direction=direction, rate=inputs, note=note,
        ))
    explained = (earned - paid) / supply_usd if supply_usd > 0 else None
    if explained is None:
        notes.append("no supply value: the yield cannot be expressed as an APY on supply")
    benchmark = DEFAULT_CONFIG.benchmark_lending_rate if benchmark_apy is None else benchmark_apy
    return YieldBreakdown(
        issuer=issuer,
        symbol=sheet.symbol,
        supply_usd=supply_usd,
        sources=tuple(sources),
        earned_usd_per_year=earned,
        paid_usd_per_year=paid,
        explained_apy=explained,
        claimed_apy=sheet.claimed_apy,
        benchmark_apy=benchmark,
        complete=complete,
        notes=tuple(notes),
    )


def yield_sources(
    universe: Universe,
    result: BackingResult,
    issuer: str,
    *,
    benchmark_apy: Decimal | None = None,
    vault_apys: Mapping[str, Decimal] | None = None,
) -> dict[str, Any]:
    """The yield decomposition of `issuer` as plain JSON-safe data (YieldBreakdown.as_dict)."""
    return analyse_yield(universe, result, issuer, benchmark_apy=benchmark_apy, vault_apys=vault_apys).as_dict()


# ---------------------------------------------------------------------------------------------------------------
# The flag.


# ---------------------------------------------------------------------------------------------------------------
# Share-price growth against backing growth.


@dataclass(frozen=True)
class SharePriceSample:
    """A token's price per share at one pin: underlying assets per whole share (ERC-4626 convertToAssets)."""

    chain: str
    block: int
    timestamp: int
    token: str
    asset: str | None  # the underlying (ERC-4626 asset()), None when the token has no asset()
    assets_per_share: Decimal | None  # whole underlying tokens per whole share; None when unreadable
    method: str  # "convertToAssets" | "pricePerShare" | ""
    error: str = ""
    evidence: tuple[Evidence, ...] = ()
    unavailable: bool = False  # the node gave no answer (e.g. pruned old state): the check is not evaluated


def _evidence(chain: str, block: int, result: ReadResult) -> Evidence:
    value = result.value[0] if len(result.value) == 1 else result.value
    text = str(value) if result.ok else f"failed: {result.error}"
    return Evidence(chain, block, result.read.target, result.read.describe(), text)


def sample_share_price(chain: str, token: str, block: int, clock: str) -> Plan[SharePriceSample]:
    """Price per share of `token` at `block`, in two rounds; run it through `at_block` for a block before the pin.

    ERC-4626 `convertToAssets(10**decimals)` first; Yearn-style `pricePerShare()` (underlying per share,
    scaled by the share's decimals) when there is no ERC-4626 conversion. `clock` is the Multicall3 whose
    getCurrentBlockTimestamp() dates the sample. An unreadable sample has `assets_per_share` None and the reason
    in `error`; `unavailable` when the node gave no answer (pruned old state), not the contract.
    """
    first = yield from reads([Read(token, "decimals()", returns=("uint8",)),
                              Read(token, "asset()", returns=("address",)), Read(clock, "getCurrentBlockTimestamp()")])
    decimals, asset, stamp = first
    evidence = [_evidence(chain, block, r) for r in first]
    unavailable = any(r.unavailable for r in (decimals, stamp))
    if not decimals.ok or not stamp.ok:
        failed = decimals if not decimals.ok else stamp
        return SharePriceSample(chain, block, 0, token, None, None, "",
                                f"{failed.read.describe()} unreadable: {failed.error}", tuple(evidence), unavailable)
    unit = 10**decimals.one
    second_reads = [Read(token, "convertToAssets(uint256)", (unit,)), Read(token, "pricePerShare()")]
    if asset.ok:
        second_reads.append(Read(asset.one, "decimals()", returns=("uint8",)))
    second = yield from reads(second_reads)
    evidence += [_evidence(chain, block, r) for r in second]
    # The underlying's decimals scale the answer; without asset() the share's own decimals are the best guess.
    asset_decimals = second[2].one if asset.ok and second[2].ok else decimals.one
    converted, per_share = second[0], second[1]
    if converted.ok:
        value, method, error = Decimal(converted.one).scaleb(-asset_decimals), "convertToAssets", ""
    elif per_share.ok:
        value, method, error = Decimal(per_share.one).scaleb(-asset_decimals), "pricePerShare", ""
    else:
        value, method = None, ""
        error = f"neither convertToAssets nor pricePerShare answered: {converted.error}"
        unavailable = converted.unavailable or per_share.unavailable
    return SharePriceSample(chain, block, stamp.one, token, asset.one if asset.ok else None,
                            value, method, error, tuple(evidence), unavailable)


def share_price_apy(start: SharePriceSample, end: SharePriceSample) -> Decimal | None:
    """Annualised growth of the price per share between two samples; None if undefined or absurdly large."""
    seconds = end.timestamp - start.timestamp
    if (seconds <= 0 or start.assets_per_share is None or end.assets_per_share is None
            or start.assets_per_share <= 0 or end.assets_per_share <= 0):
        return None
    return _annualise(end.assets_per_share / start.assets_per_share, seconds)


def _annualise(growth_factor: Decimal, seconds: int) -> Decimal | None:
    with decimal.localcontext(_context()) as ctx:
        try:
            return (growth_factor.ln() * SECONDS_PER_YEAR / seconds).exp() - 1
        except decimal.Overflow:
            # A short window with any growth annualises past Decimal's exponent range: no meaningful APY.
            ctx.clear_flags()
            return None


@dataclass(frozen=True)
class SharePricePoint:
    """A token at one pin: what its share price says one token is worth, and what backs one token."""

    block: int
    timestamp: int
    share_price_usd: Decimal  # assets per share x the underlying's price
    backing_per_token_usd: Decimal  # verifiable backing / supply tokens at the same pin


def share_price_point(
    sample: SharePriceSample, universe: Universe, result: BackingResult, issuer: str
) -> SharePricePoint | None:
    """Join a share-price sample with the audit at the same pin; None when either side is not defined."""
    figures = result.issuers.get(issuer)
    if sample.assets_per_share is None or sample.asset is None or figures is None or figures.supply_tokens <= 0:
        return None
    key = model.token_key(sample.chain, sample.asset)
    price = _Pricer(universe, result, issuer).price(key, debt=False)
    if price is None:
        return None
    with decimal.localcontext(_context()):
        return SharePricePoint(sample.block, sample.timestamp, sample.assets_per_share * price,
                               figures.verifiable_backing_usd / figures.supply_tokens)


@dataclass(frozen=True)
class ShareGrowth:
    """Share-price growth against backing growth over one window: is the yield paid from principal?"""

    start: SharePricePoint
    end: SharePricePoint
    share_price_change_usd: Decimal
    backing_change_usd: Decimal
    unfunded_usd_per_token: Decimal  # share-price rise per token not matched by a rise of backing per token
    share_price_apy: Decimal | None
    tolerance: Decimal
    paid_from_principal: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "start_block": self.start.block,
            "end_block": self.end.block,
            "seconds": self.end.timestamp - self.start.timestamp,
            "share_price_start_usd": self.start.share_price_usd,
            "share_price_end_usd": self.end.share_price_usd,
            "backing_per_token_start_usd": self.start.backing_per_token_usd,
            "backing_per_token_end_usd": self.end.backing_per_token_usd,
            "share_price_change_usd": self.share_price_change_usd,
            "backing_change_usd": self.backing_change_usd,
            "unfunded_usd_per_token": self.unfunded_usd_per_token,
            "share_price_apy": self.share_price_apy,
            "tolerance": self.tolerance,
            "paid_from_principal": self.paid_from_principal,
        }


def share_price_growth(
    start: SharePricePoint, end: SharePricePoint, *, tolerance: Decimal = DEFAULT_PRINCIPAL_TOLERANCE
) -> ShareGrowth:
    """Compare the rise of the share price with the rise of backing per token, in USD per token.

    Yield that is earned raises backing per token by as much as it raises the price (the money came in);
    yield paid from principal raises the price while backing per token stays flat (the money moved
    around). Absolute changes are compared, not relative ones: an issuer holding more than its supply
    would otherwise look under-funded for an honestly funded rise. The rise is paid from principal when its
    unfunded part exceeds `tolerance` x the starting share price (rounding of share conversions stays below).
    """
    with decimal.localcontext(_context()):
        rise = end.share_price_usd - start.share_price_usd
        backing_rise = end.backing_per_token_usd - start.backing_per_token_usd
        unfunded = min(rise, max(_ZERO, rise - max(_ZERO, backing_rise))) if rise > 0 else _ZERO
        seconds = end.timestamp - start.timestamp
        apy = None
        if seconds > 0 and start.share_price_usd > 0 and end.share_price_usd > 0:
            apy = _annualise(end.share_price_usd / start.share_price_usd, seconds)
        return ShareGrowth(
            start=start,
            end=end,
            share_price_change_usd=rise,
            backing_change_usd=backing_rise,
            unfunded_usd_per_token=unfunded,
            share_price_apy=apy,
            tolerance=tolerance,
            paid_from_principal=unfunded > tolerance * start.share_price_usd,
        )


__all__ = [
    "DEFAULT_PRINCIPAL_TOLERANCE",
    "DEFAULT_UNEXPLAINED_MARGIN",
    "SECONDS_PER_YEAR",
    "VALUE_BASIS",
    "ShareGrowth",
    "SharePricePoint",
    "SharePriceSample",
    "YieldBreakdown",
    "YieldSource",
    "analyse_yield",
    "market_borrow_apy",
    "market_supply_apy",
    "per_second_apy",
    "ray_apy",
    "sample_share_price",
    "share_price_apy",
    "share_price_growth",
    "share_price_point",
    "utilization",
    "yield_sources",
]
