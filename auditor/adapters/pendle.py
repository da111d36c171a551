"""Pendle v2: principal tokens valued by look-through (their SY's asset at maturity, discounted at the market's rate).

The registry's `pendle` venue on a chain is a Pendle market factory; its `CreateNewMarket(market, PT, ...)` logs since
`from_block` name every market and its PT. For each market the module reads the market's tokens (`readTokens()`:
SY, PT, YT), its state (`_storage()`: lastLnImpliedRate) and expiry, the SY's accounting asset (`assetInfo()`) and
exchange rate, and the YT's PY index, and says what one PT is worth in that asset (a DerivedPrice), so the backing
engine values a PT wherever it sits (held, posted as collateral, or a borrower's collateral in a loan the issuer
made) at that factor times the asset's own look-through value. The issuer accounts' PT balances are positions in
the PT; their YT and LP balances are listed (counted 0, see `collect`).

What one PT is worth, in whole units of the SY's accounting asset (Pendle docs, "PT Pricing" and "Pendle's AMM",
docs.pendle.finance; the same maths as `PendlePYOracleLib.getPtToAssetRate` in @pendle/core-v2 contracts/oracles):
- redeemable at maturity: one PT redeems SY worth one unit of the asset (`PendleYieldToken._calcSyRedeemableFromPY`
  divides by the PY index), unless the SY's exchange rate has fallen below the YT's stored PY index, when it redeems
  `exchangeRate / pyIndexStored` (the index never falls: PendleYieldToken `_pyIndexCurrent` takes the max);
- discount: the market's implied rate is continuously compounded, `lastLnImpliedRate` (1e18-scaled, per 365 days:
  MarketMathCore.IMPLIED_RATE_TIME), so a PT costs `exp(-lnImpliedRate * timeToExpiry / 365 days)` of the asset
  (MarketMathCore._getExchangeRateFromImpliedRate gives the inverse, asset per PT); at or after expiry: par, 1.
So factor = min(1, exchangeRate / pyIndexStored) * exp(-lnImpliedRate / 1e18 * max(0, expiry - t) / 31,536,000),
t the pinned block's timestamp, in Decimal at the project's precision (auditor.numbers.context).
The rate is the market's last traded one, which one large trade can move; it is the rate the market itself prices
PT at on the next trade (Pendle's AMM keeps the implied rate continuous over time), not a time-weighted one.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from auditor.adapters import Collected, Scope, adapter
from auditor.chain.abi import event_topic
from auditor.chain.plan import Plan, logs, reads
from auditor.chain.reader import Read
from auditor.model import BALANCE, DerivedPrice, Evidence, Gap, Position, token_key
from auditor.numbers import context

VENUE = "pendle"
# IPMarketFactory: CreateNewMarket(address indexed market, address indexed PT, int256 scalarRoot,
# int256 initialAnchor, uint256 lnFeeRateRoot), the same in market factories V3 to V7.
CREATE_NEW_MARKET = event_topic("CreateNewMarket(address,address,int256,int256,uint256)")
YEAR_SECONDS = 365 * 86_400  # MarketMathCore.IMPLIED_RATE_TIME
ONE = 10**18
STORAGE = ("int128", "int128", "uint96", "uint16", "uint16", "uint16")  # PendleMarketV7.MarketStorage
LP_DECIMALS = 18  # PendleMarketV7 is PendleERC20(name, symbol, 18)


def pt_discount(ln_implied_rate: int, seconds_to_expiry: int) -> Decimal:
    """Asset per PT before redemption risk: exp(-lnImpliedRate/1e18 * seconds/365 days); 1 at or after expiry."""
    if seconds_to_expiry <= 0:
        return Decimal(1)
    with decimal.localcontext(context()):
        return (-(Decimal(ln_implied_rate) / ONE) * Decimal(seconds_to_expiry) / YEAR_SECONDS).exp()


def redeemable_per_pt(exchange_rate: int, py_index_stored: int) -> Decimal:
    """Asset one PT redeems for at maturity: 1, or exchangeRate/pyIndexStored when the SY has lost value since the
    YT last stored its index (the index is the highest exchange rate seen)."""
    if py_index_stored <= 0 or exchange_rate >= py_index_stored:
        return Decimal(1)
    with decimal.localcontext(context()):
        return Decimal(exchange_rate) / Decimal(py_index_stored)


def pt_factor(ln_implied_rate: int, seconds_to_expiry: int, exchange_rate: int, py_index_stored: int,
              pt_decimals: int, asset_decimals: int) -> Decimal:
    """Whole units of the accounting asset one whole PT is worth (PT units redeem 1:1 in the asset's raw units)."""
    with decimal.localcontext(context()):
        return (redeemable_per_pt(exchange_rate, py_index_stored) * pt_discount(ln_implied_rate, seconds_to_expiry)
                * Decimal(10) ** (pt_decimals - asset_decimals))


@dataclass(frozen=True)
class PendleMarket:
    """A market as read at the pin, and the value of its PT (None when a read it needs failed: `why` says which)."""

    market: str
    pt: str
    sy: str = ""
    yt: str = ""
    expiry: int = 0
    asset: str = ""
    pt_decimals: int = 0
    asset_decimals: int = 0
    ln_implied_rate: int = 0
    exchange_rate: int = 0
    py_index: int = 0
    factor: Decimal | None = None
    why: str = ""
    evidence: tuple[Evidence, ...] = ()


def created_markets(scope: Scope) -> Plan[list[tuple[str, str]]]:
    """(market, PT) of every CreateNewMarket the registry's factory logged from its deployment block to the pin."""
    assert scope.venue is not None
    found = yield from logs([scope.venue.address], [CREATE_NEW_MARKET], scope.venue.from_block, scope.block)
    pairs = {("0x" + log.topics[1][-40:].lower(), "0x" + log.topics[2][-40:].lower())
             for log in found if len(log.topics) >= 3}
    return sorted(pairs)


def read_markets(scope: Scope, pairs: Sequence[tuple[str, str]]) -> Plan[list[PendleMarket]]:
    """Two rounds: the markets' tokens, state, expiry and PT decimals; then each SY's asset and rate and the YT's
    index. A market whose reads fail comes back with factor None and why."""
    first_reads: list[Read] = []
    for market, pt in pairs:
        first_reads += [Read(market, "readTokens()", returns=("address", "address", "address")),
                        Read(market, "_storage()", returns=STORAGE),
                        Read(market, "expiry()"),
                        Read(pt, "decimals()", returns=("uint8",))]
    first = yield from reads(first_reads)
    second_reads: list[Read] = []
    for index in range(len(pairs)):
        tokens = first[4 * index]
        if tokens.ok:
            sy, _pt, yt = tokens.value
            second_reads += [Read(sy, "exchangeRate()"), Read(sy, "assetInfo()", returns=("uint8", "address", "uint8")),
                             Read(yt, "pyIndexStored()")]
    second = (yield from reads(second_reads)) if second_reads else []
    out: list[PendleMarket] = []
    taken = 0
    for index, (market, pt) in enumerate(pairs):
        results = list(first[4 * index: 4 * index + 4])
        if results[0].ok:
            results += second[taken: taken + 3]
            taken += 3
        evidence = tuple(scope.evidence(r) for r in results)
        failed = next((r for r in results if not r.ok), None)
        if failed is not None:
            out.append(PendleMarket(market, pt, why=f"{failed.read.describe()}: {failed.error or 'failed'}",
                                    evidence=evidence))
            continue
        (sy, pt_read, yt), state = results[0].value, results[1].value
        expiry, pt_decimals, rate, py_index = results[2].one, results[3].one, results[4].one, results[6].one
        _asset_type, asset, asset_decimals = results[5].value
        if pt_read.lower() != pt:
            out.append(PendleMarket(market, pt, why=f"readTokens() names PT {pt_read}, the factory's log {pt}",
                                    evidence=evidence))
            continue
        seconds = max(0, expiry - scope.client.pinned.timestamp)
        factor = pt_factor(state[2], seconds, rate, py_index, pt_decimals, asset_decimals)
        out.append(PendleMarket(market, pt, sy.lower(), yt.lower(), expiry, asset.lower(), pt_decimals,
                                asset_decimals, state[2], rate, py_index, factor, evidence=evidence))
    return out


@adapter(VENUE)
def collect(scope: Scope) -> Plan[Collected]:
    """Every market's PT value (a DerivedPrice) and the issuer accounts' PT, YT and LP balances.

    PT balances are positions in the PT, which the engine values through its DerivedPrice. YT and LP balances are
    listed as positions in tokens the engine cannot value (counted 0): a YT is the yield until expiry, whose value
    rests on a forecast of the rate, not on anything redeemable at the pin; an LP share is SY plus PT, which this
    module does not take apart. A PT an issuer account holds whose value cannot be read is a gap, never a zero."""
    out = Collected()
    pairs = yield from created_markets(scope)
    if not pairs:
        return out
    markets = yield from read_markets(scope, pairs)
    holdings = [(m, token, role) for m in markets for token, role in ((m.pt, "pt"), (m.yt, "yt"), (m.market, "lp"))
                if token]
    balance_reads = [Read(token, "balanceOf(address)", (account.address,))
                     for _m, token, _r in holdings for account in scope.accounts]
    balances = iter((yield from reads(balance_reads)) if balance_reads else [])
    for m in markets:
        out.addresses[m.market] = f"Pendle market {m.market}"
        if m.factor is None:
            out.notes.append(f"{scope.chain}: Pendle market {m.market} (PT {m.pt}) could not be valued: {m.why}")
            continue
        out.addresses[m.pt] = f"Pendle PT of market {m.market}"
        out.addresses[m.yt] = f"Pendle YT of market {m.market}"
        out.derived[token_key(scope.chain, m.pt)] = DerivedPrice(
            token_key(scope.chain, m.pt), token_key(scope.chain, m.asset), m.factor,
            f"Pendle PT of market {m.market}: min(1, exchangeRate/pyIndex) x exp(-lnImpliedRate x time to expiry)",
            m.evidence,
            {"market": m.market, "expiry": m.expiry, "ln_implied_rate": str(m.ln_implied_rate),
             "exchange_rate": str(m.exchange_rate), "py_index": str(m.py_index)})
    for m, token, role in holdings:
        for account in scope.accounts:
            result = next(balances)
            if not result.ok:
                out.gaps.append(scope.gap(result, f"Pendle {role.upper()} balance of {account.label}"))
                continue
            if result.one == 0:
                continue
            if role == "pt" and m.factor is None:  # never a zero: the audit is incomplete
                out.gaps.append(Gap(scope.chain, scope.block, f"value of Pendle PT {m.pt} held by {account.label}",
                                    m.why))
                continue
            out.positions.append(Position(
                chain=scope.chain, account=account.address, venue=VENUE, kind=BALANCE, token=token,
                amount=result.one, decimals=LP_DECIMALS if role == "lp" else m.pt_decimals,  # YT: as its PT
                symbol=f"Pendle {role.upper()}",
                details={"issuer": account.issuer, "label": account.label, "role": "holding", "pendle": role,
                         "pendle_market": m.market,
                         **({"asset": m.asset, "asset_per_pt": str(m.factor), "expiry": m.expiry,
                             "ln_implied_rate": str(m.ln_implied_rate)} if role == "pt" else {})},
                evidence=(scope.evidence(result), *m.evidence)))
    return out
