"""Pure backing engine: look-through valuation, circular backing and expansion ratios of every issuer at once."""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from auditor import model
from auditor.model import Market, OffchainClaim, Position, Universe
from auditor.numbers import context, exact

DEFAULT_TOLERANCE = Decimal("1e-12")
DEFAULT_MAX_ITERATIONS = 10_000

# Asset classes of the verifiable backing breakdown.
HARD = "hard"  # hard assets held directly (balances, vault underlying, posted collateral)
ISSUED = "issued"  # other issuers' tokens, by look-through (r_j * par_j)
LENDING_SUPPLY = "lending_supply"  # loans made in lending markets, worth what borrowers can repay
ASSET_CLASSES = (HARD, ISSUED, LENDING_SUPPLY)

_HOLDING_KINDS = frozenset({model.BALANCE, model.VAULT_SHARE, model.COLLATERAL})
_ZERO = Decimal(0)
_ONE = Decimal(1)


_context = context


# ---------------------------------------------------------------------------------------------------------------
# Public results.


@dataclass(frozen=True)
class UnverifiableHolding:
    """A position the engine cannot value (unknown token, missing market): listed, counted as 0."""

    issuer: str
    chain: str
    account: str
    venue: str
    kind: str
    token_key: str
    amount: int  # raw units
    decimals: int
    tokens: Decimal  # whole tokens
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "account": self.account,
            "venue": self.venue,
            "kind": self.kind,
            "token_key": self.token_key,
            "amount": str(self.amount),  # raw uint256 as text: JSON numbers lose precision past 2**53
            "decimals": self.decimals,
            "tokens": exact(self.tokens),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class IssuerFigures:
    """Everything the engine concluded about one issuer (USD values are Decimal; see BackingResult.as_dict)."""

    issuer: str
    symbol: str
    par_usd: Decimal
    supply_tokens: Decimal
    supply_usd: Decimal  # supply_tokens * par_usd
    backing_ratio: Decimal | None  # r at the least fixed point (verifiable); None when supply_usd is 0
    claimed_ratio: Decimal | None  # r at the fixed point reached from r = 1 (as claimed)
    verifiable_backing_usd: Decimal  # max(0, net assets) at the verifiable ratios
    verifiable_by_class_usd: dict[str, Decimal]  # gross verifiable assets by ASSET_CLASSES
    gross_assets_usd: Decimal  # sum of verifiable_by_class_usd
    debt_usd: Decimal  # debts, valued with the claimed ratios when a debt is in an issued token (conservative)
    net_assets_usd: Decimal  # gross_assets_usd - debt_usd; negative means insolvent at the verifiable ratios
    claimed_assets_usd: Decimal | None  # the spec's claims.assets_usd
    claimed_backing_usd: Decimal  # max(0, net assets) at the fixed point from r = 1
    backing_at_par_usd: Decimal  # max(0, net assets) valuing every other issuer's token at par (one evaluation)
    gross_assets_at_par_usd: Decimal
    circular_backing_usd: Decimal  # claimed_backing_usd - verifiable_backing_usd
    look_through_gap_usd: Decimal  # backing_at_par_usd - verifiable_backing_usd (floored at 0)
    # What the issuer would gain if only its cycle-mates' tokens were worth par (everything else at its
    # verifiable ratio), minus its verifiable backing: the part of its balance sheet the cycle props up.
    cycle_gap_usd: Decimal
    expansion_ratio: Decimal | None  # supply_usd / verifiable_backing_usd; None when backing is 0 (unbounded)
    leverage: Decimal | None  # gross_assets_usd / net_assets_usd; None when net assets <= 0
    offchain: tuple[OffchainClaim, ...]
    offchain_usd: Decimal  # claimed off-chain: listed, never counted
    unverifiable: tuple[UnverifiableHolding, ...]
    self_held_tokens: Decimal  # own tokens held or posted by the issuer: part of supply, worth 0 as assets
    issued_holdings_tokens: dict[str, Decimal]  # issuer id -> its tokens held directly (own included)
    depends_on: tuple[str, ...]  # issuer graph successors (holdings, or loans against / in their tokens)
    cycle: int | None  # index into BackingResult.cycles, when the issuer is on a cycle
    claimed_apy: Decimal | None
    notes: tuple[str, ...]
    attested: tuple[model.AttestedReserve, ...] = ()  # proof-of-reserve feeds: listed, never verifiable

    @property
    def attested_usd(self) -> Decimal:
        """Off-chain reserves a fresh proof-of-reserve feed attests at the pin (a third tier, not verifiable)."""
        return sum((a.usd for a in self.attested if a.status == "fresh" and a.usd is not None), _ZERO)

    def as_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "symbol": self.symbol,
            "par_usd": exact(self.par_usd),
            "supply_tokens": exact(self.supply_tokens),
            "supply_usd": exact(self.supply_usd),
            "backing_ratio": exact(self.backing_ratio),
            "claimed_ratio": exact(self.claimed_ratio),
            "verifiable_backing_usd": exact(self.verifiable_backing_usd),
            "verifiable_by_class_usd": {k: exact(self.verifiable_by_class_usd[k]) for k in ASSET_CLASSES},
            "gross_assets_usd": exact(self.gross_assets_usd),
            "debt_usd": exact(self.debt_usd),
            "net_assets_usd": exact(self.net_assets_usd),
            "claimed_assets_usd": None if self.claimed_assets_usd is None else exact(self.claimed_assets_usd),
            "claimed_backing_usd": exact(self.claimed_backing_usd),
            "backing_at_par_usd": exact(self.backing_at_par_usd),
            "gross_assets_at_par_usd": exact(self.gross_assets_at_par_usd),
            "circular_backing_usd": exact(self.circular_backing_usd),
            "look_through_gap_usd": exact(self.look_through_gap_usd),
            "cycle_gap_usd": exact(self.cycle_gap_usd),
            "expansion_ratio": exact(self.expansion_ratio),
            "leverage": exact(self.leverage),
            "attested_usd": exact(self.attested_usd),
            "attested": [{**a.as_dict(), "usd": exact(a.usd)} for a in self.attested],
            "unverifiable": {
                "offchain_usd": exact(self.offchain_usd),
                "offchain": [{"label": c.label, "usd": exact(c.usd)} for c in self.offchain],
                "holdings": [h.as_dict() for h in self.unverifiable],
            },
            "self_held_tokens": exact(self.self_held_tokens),
            "issued_holdings_tokens": {k: exact(v) for k, v in sorted(self.issued_holdings_tokens.items())},
            "depends_on": list(self.depends_on),
            "cycle": self.cycle,
            "claimed_apy": exact(self.claimed_apy),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Cycle:
    """A strongly connected group of issuers (or one issuer with a self-loop) and what it carries."""

    index: int
    issuers: tuple[str, ...]  # sorted
    circular_backing_usd: Decimal  # sum of the members' circular backing
    cycle_gap_usd: Decimal  # sum of the members' cycle gap: what the cycle's tokens add if taken at par

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "issuers": list(self.issuers),
            "circular_backing_usd": exact(self.circular_backing_usd),
            "cycle_gap_usd": exact(self.cycle_gap_usd),
        }


@dataclass(frozen=True)
class BackingResult:
    """The solved system: per-issuer figures, the cycles, and how the iteration ended."""

    issuers: dict[str, IssuerFigures]  # sorted by issuer id
    cycles: tuple[Cycle, ...]
    converged: bool
    iterations: int
    max_change: Decimal  # largest change of any ratio in the last iteration
    tolerance: Decimal
    max_iterations: int
    notes: tuple[str, ...] = field(default=())

    def cycle_of(self, issuer: str) -> Cycle | None:
        index = self.issuers[issuer].cycle
        return None if index is None else self.cycles[index]

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-safe data.

        Every Decimal becomes a string with fixed formatting (ROUND_HALF_EVEN): USD figures to 2 decimals
        ('1234.50'), ratios, rates and multiples (backing/claimed ratio, expansion ratio, leverage, APY)
        to 6 decimals ('0.250000'), token amounts and par exactly in plain notation ('1.5'), raw amounts as
        integer strings. Undefined figures (ratio of a zero supply, expansion of zero backing) are null.
        """
        return {
            "converged": self.converged,
            "iterations": self.iterations,
            "max_change": exact(self.max_change),
            "tolerance": exact(self.tolerance),
            "max_iterations": self.max_iterations,
            "notes": list(self.notes),
            "issuers": {k: v.as_dict() for k, v in sorted(self.issuers.items())},
            "cycles": [c.as_dict() for c in self.cycles],
        }


# ---------------------------------------------------------------------------------------------------------------
# Compiled balance sheets: each issuer's positions reduced to linear terms in the ratio vector r.


@dataclass(frozen=True)
class _Price:
    """USD value of one whole token from one issuer's point of view: `constant`, or r[issuer] * constant (par)."""

    constant: Decimal
    issuer: int | None = None

    def value(self, ratios: Sequence[Decimal]) -> Decimal:
        return self.constant if self.issuer is None else ratios[self.issuer] * self.constant


_WORTHLESS = _Price(_ZERO)


@dataclass(frozen=True)
class _Holding:
    tokens: Decimal
    price: _Price
    asset_class: str


@dataclass(frozen=True)
class _Loan:
    """A supply position: `share` of idle liquidity plus, per borrower, min(debt, collateral) at look-through."""

    share: Decimal
    idle_tokens: Decimal
    loan_price: _Price
    collateral_price: _Price
    borrowers: tuple[tuple[Decimal, Decimal], ...]  # (debt tokens, collateral tokens)


@dataclass
class _Sheet:
    issuer: str
    symbol: str = ""
    supply_tokens: Decimal = _ZERO
    supply_usd: Decimal = _ZERO
    par_usd: Decimal = _ZERO
    holdings: list[_Holding] = field(default_factory=list)
    loans: list[_Loan] = field(default_factory=list)
    debts: list[tuple[Decimal, _Price]] = field(default_factory=list)
    unverifiable: list[UnverifiableHolding] = field(default_factory=list)
    self_held_tokens: Decimal = _ZERO
    issued_holdings: dict[str, Decimal] = field(default_factory=dict)
    depends_on: set[str] = field(default_factory=set)
    offchain: tuple[OffchainClaim, ...] = ()
    offchain_usd: Decimal = _ZERO
    attested: tuple[model.AttestedReserve, ...] = ()
    claimed_assets_usd: Decimal | None = None
    claimed_apy: Decimal | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Valuation:
    by_class: dict[str, Decimal]
    debt: Decimal

    @property
    def gross(self) -> Decimal:
        return sum(self.by_class.values(), _ZERO)

    @property
    def net(self) -> Decimal:
        return self.gross - self.debt


def _loan_value(loan: _Loan, ratios: Sequence[Decimal]) -> Decimal:
    loan_price = loan.loan_price.value(ratios)
    collateral_price = loan.collateral_price.value(ratios)
    # Never the market's oracle: a borrower repays at most what its collateral is worth by look-through.
    repayable = loan.idle_tokens * loan_price
    for debt_tokens, collateral_tokens in loan.borrowers:
        repayable += min(debt_tokens * loan_price, collateral_tokens * collateral_price)
    return loan.share * repayable


def _valuate(sheet: _Sheet, asset_ratios: Sequence[Decimal], debt_ratios: Sequence[Decimal]) -> _Valuation:
    by_class = dict.fromkeys(ASSET_CLASSES, _ZERO)
    for holding in sheet.holdings:
        by_class[holding.asset_class] += holding.tokens * holding.price.value(asset_ratios)
    for loan in sheet.loans:
        by_class[LENDING_SUPPLY] += _loan_value(loan, asset_ratios)
    debt = sum((tokens * price.value(debt_ratios) for tokens, price in sheet.debts), _ZERO)
    return _Valuation(by_class, debt)


def _net(sheet: _Sheet, asset_ratios: Sequence[Decimal], debt_ratios: Sequence[Decimal]) -> Decimal:
    # The hot loop of the iteration: same arithmetic as _valuate, without building the breakdown.
    total = _ZERO
    for holding in sheet.holdings:
        total += holding.tokens * holding.price.value(asset_ratios)
    for loan in sheet.loans:
        total += _loan_value(loan, asset_ratios)
    for tokens, price in sheet.debts:
        total -= tokens * price.value(debt_ratios)
    return total


def _ratio(net_usd: Decimal, supply_usd: Decimal) -> Decimal:
    return min(_ONE, max(_ZERO, net_usd) / supply_usd)


def _tokens(amount: int, decimals: int) -> Decimal:
    # scaleb only moves the exponent: exact for any amount that fits the context precision.
    return Decimal(amount).scaleb(-decimals)


def _normalize_key(key: str) -> str:
    chain, sep, address = key.partition(":")
    return model.token_key(chain, address) if sep else key.lower()


def _finite(value: Any) -> Decimal | None:
    """A finite Decimal, or None for NaN, infinities and anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        return None
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


class _Compiler:
    """Turns the universe into per-issuer linear terms, collecting notes about anything it had to skip."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self.ids = sorted(universe.sheets)
        self.index = {issuer: k for k, issuer in enumerate(self.ids)}
        self.notes: list[str] = []
        self.par: dict[str, Decimal] = {}
        self.owner: dict[str, str] = {}
        for issuer in self.ids:
            sheet = universe.sheets[issuer]
            par = _finite(sheet.par_usd)
            self.par[issuer] = par if par is not None and par > 0 else _ZERO
            for key in sorted(_normalize_key(k) for k in sheet.token_keys):
                if key in self.owner and self.owner[key] != issuer:
                    self.notes.append(
                        f"token {key} is listed by issuers {self.owner[key]} and {issuer}; "
                        f"valued as {self.owner[key]}'s token"
                    )
                    continue
                self.owner[key] = issuer
        self.hard: dict[str, Decimal] = {}
        for raw_key, asset in sorted(universe.hard_assets.items()):
            key = _normalize_key(raw_key)
            price = _finite(asset.price_usd)
            if price is None or price < 0:
                self.notes.append(f"hard asset {key} has no usable price ({asset.price_usd!r}); treated as unknown")
                continue
            if key in self.owner:
                # A token with a spec is valued by look-through even if the registry also lists it.
                self.notes.append(
                    f"token {key} is both a hard asset and issued by {self.owner[key]}; valued by look-through"
                )
                continue
            self.hard[key] = price
        self.markets = {key: market for key, market in universe.markets.items()}
        self.derived = {_normalize_key(k): d for k, d in universe.derived.items()}

    def price(self, issuer: str, key: str) -> _Price | None:
        """How `issuer` values one whole token `key`; None when nobody can value it."""
        owner = self.owner.get(key)
        if owner == issuer:
            return _WORTHLESS  # a claim on yourself is not backing
        if owner is not None:
            return _Price(self.par[owner], self.index[owner])
        if key in self.hard:
            return _Price(self.hard[key])
        return self._derived_price(issuer, key)

    def _derived_price(self, issuer: str, key: str, depth: int = 3) -> _Price | None:
        """A token worth `factor` of another (a Pendle PT): factor times that token's own look-through price, still
        linear in the ratios (a PT of an issued token is r * par * factor; of the issuer's own token, worthless)."""
        derived = self.derived.get(key)
        if derived is None or depth == 0:
            return None
        factor = _finite(derived.factor)
        underlying = _normalize_key(derived.underlying)
        if factor is None or factor < 0 or underlying == key:
            return None
        if underlying in self.owner or underlying in self.hard:
            base = self.price(issuer, underlying)
        else:
            base = self._derived_price(issuer, underlying, depth - 1)
        return None if base is None else _Price(base.constant * factor, base.issuer)

    def look_through_owner(self, key: str) -> str | None:
        """The issuer whose token `key` is, or is a derived claim on (a PT of its token)."""
        for _ in range(4):
            if key in self.owner:
                return self.owner[key]
            derived = self.derived.get(key)
            if derived is None:
                return None
            key = _normalize_key(derived.underlying)
        return None

    def compile(self, issuer: str) -> _Sheet:
        source = self.universe.sheets[issuer]
        sheet = _Sheet(issuer=issuer, symbol=source.symbol, par_usd=self.par[issuer])
        if source.issuer != issuer:
            sheet.notes.append(f"balance sheet says issuer {source.issuer!r} but is filed under {issuer!r}")
        if self.par[issuer] == 0:
            sheet.notes.append(f"par_usd {source.par_usd!r} is not a positive number: supply value taken as 0")
        supply = _ZERO
        for deployment in source.supply.deployments:
            if deployment.escrowed > deployment.total_supply:
                sheet.notes.append(
                    f"escrow on {deployment.chain} {deployment.address} holds more than the total supply"
                )
            supply += _tokens(deployment.total_supply - deployment.escrowed, deployment.decimals)
        sheet.supply_tokens = supply
        sheet.supply_usd = max(_ZERO, supply) * self.par[issuer]
        if sheet.supply_usd == 0:
            sheet.notes.append("supply is zero: no backing ratio or expansion ratio (nothing to back)")
        for position in sorted(source.positions, key=_position_order):
            self._position(sheet, position)
        offchain: list[OffchainClaim] = []
        for claim in source.offchain:
            usd = _finite(claim.usd)
            if usd is None:
                sheet.notes.append(f"off-chain claim {claim.label!r} has no usable amount ({claim.usd!r})")
                continue
            offchain.append(claim)
            sheet.offchain_usd += usd
        sheet.offchain = tuple(offchain)
        sheet.attested = tuple(source.attested)
        if source.claimed_assets_usd is not None:
            sheet.claimed_assets_usd = _finite(source.claimed_assets_usd)
            if sheet.claimed_assets_usd is None:
                sheet.notes.append(f"claimed assets {source.claimed_assets_usd!r} is not a number: ignored")
        if source.claimed_apy is not None:
            sheet.claimed_apy = _finite(source.claimed_apy)
            if sheet.claimed_apy is None:
                sheet.notes.append(f"claimed APY {source.claimed_apy!r} is not a number: ignored")
        sheet.notes.extend(source.notes)
        return sheet

    def _unverifiable(self, sheet: _Sheet, position: Position, key: str, reason: str) -> None:
        sheet.unverifiable.append(
            UnverifiableHolding(
                issuer=sheet.issuer,
                chain=position.chain,
                account=position.account,
                venue=position.venue,
                kind=position.kind,
                token_key=key,
                amount=position.amount,
                decimals=position.decimals,
                tokens=_tokens(position.amount, position.decimals),
                reason=reason,
            )
        )

    def _position(self, sheet: _Sheet, position: Position) -> None:
        issuer = sheet.issuer
        key = _normalize_key(position.token_key)
        where = f"{position.kind} of {key} at {position.venue} ({position.chain} {position.account})"
        if position.amount < 0:
            sheet.notes.append(f"negative amount in {where}: skipped")
            return
        tokens = _tokens(position.amount, position.decimals)
        owner = self.owner.get(key)
        if position.kind in _HOLDING_KINDS:
            if owner is not None:
                sheet.issued_holdings[owner] = sheet.issued_holdings.get(owner, _ZERO) + tokens
                sheet.depends_on.add(owner)
            if owner == issuer:
                sheet.self_held_tokens += tokens
                return
            price = self.price(issuer, key)
            if price is None:
                self._unverifiable(sheet, position, key, "unknown token: not a hard asset and no spec")
                return
            if owner is None and (through := self.look_through_owner(key)) is not None:
                sheet.depends_on.add(through)  # a PT of an issued token depends on that issuer
            sheet.holdings.append(_Holding(tokens, price, HARD if price.issuer is None else ISSUED))
        elif position.kind == model.DEBT:
            # Debt in the issuer's own token is still owed: value it like any issued token, at r * par.
            price = _Price(self.par[issuer], self.index[issuer]) if owner == issuer else self.price(issuer, key)
            if price is None:
                self._unverifiable(sheet, position, key, "debt in an unknown token: not subtracted")
                sheet.notes.append(f"debt in unpriced token ({where}) is not subtracted: backing may be overstated")
                return
            sheet.debts.append((tokens, price))
        elif position.kind == model.SUPPLY:
            self._supply(sheet, position, key, where)
        else:
            sheet.notes.append(f"unknown position kind {position.kind!r} in {where}: skipped")

    def _supply(self, sheet: _Sheet, position: Position, key: str, where: str) -> None:
        issuer = sheet.issuer
        market_key = position.details.get("market")
        if "market" in position.details and market_key is None:
            # A pool whose borrowers are not enumerated (Aave v3): the claim is valued at face, and said so.
            sheet.notes.append(f"{where}: supply in {position.venue} valued at face value (pool solvency not assessed)")
            price = self.price(issuer, key)
            if price is None:
                self._unverifiable(sheet, position, key, "supplied token is unknown")
                return
            sheet.holdings.append(_Holding(_tokens(position.amount, position.decimals), price, LENDING_SUPPLY))
            return
        market = self.markets.get(market_key) if isinstance(market_key, str) else None
        if market is None:
            self._unverifiable(sheet, position, key, f"lending market {market_key!r} not in the universe")
            return
        share = self._share(sheet, position, market, where)
        loan_key = model.token_key(market.chain, market.loan_token)
        collateral_key = model.token_key(market.chain, market.collateral_token)
        for dependency in (loan_key, collateral_key):
            if (through := self.look_through_owner(dependency)) is not None:
                sheet.depends_on.add(through)
        loan_price = self.price(issuer, loan_key)
        if loan_price is None:
            self._unverifiable(sheet, position, key, f"loan token of market {market.key} is unknown")
            return
        collateral_price = self.price(issuer, collateral_key)
        if collateral_price is None:
            sheet.notes.append(f"collateral {collateral_key} of market {market.key} is unknown: valued 0")
            collateral_price = _WORTHLESS
        borrowers: list[tuple[Decimal, Decimal]] = []
        described = 0
        for borrower in sorted(market.borrowers, key=lambda b: (b.address.lower(), b.debt, b.collateral)):
            debt, collateral = max(0, borrower.debt), max(0, borrower.collateral)
            described += debt
            borrowers.append((_tokens(debt, market.loan_decimals), _tokens(collateral, market.collateral_decimals)))
        if market.total_borrow_assets > described:
            # Conservative: borrowing we cannot attribute to a borrower has no known collateral.
            sheet.notes.append(
                f"market {market.key}: {market.total_borrow_assets - described} loan-token units borrowed "
                f"without borrower detail are valued 0"
            )
        sheet.loans.append(
            _Loan(share, _tokens(market.idle, market.loan_decimals), loan_price, collateral_price, tuple(borrowers))
        )

    @staticmethod
    def _share(sheet: _Sheet, position: Position, market: Market, where: str) -> Decimal:
        shares = position.details.get("supply_shares")
        if isinstance(shares, int) and not isinstance(shares, bool) and shares >= 0:
            if market.total_supply_shares <= 0:
                sheet.notes.append(f"market {market.key} reports no supply shares: {where} valued 0")
                return _ZERO
            share = Decimal(shares) / Decimal(market.total_supply_shares)
        else:
            if market.total_supply_assets <= 0:
                sheet.notes.append(f"market {market.key} reports no supplied assets: {where} valued 0")
                return _ZERO
            sheet.notes.append(f"{where} has no supply_shares: pro-rata share taken from assets instead")
            share = Decimal(position.amount) / Decimal(market.total_supply_assets)
        if share > 1:
            sheet.notes.append(f"{where} claims more than the whole market: share capped at 1")
            share = _ONE
        return share


def _position_order(position: Position) -> tuple[str, ...]:
    # The answer must not depend on input order: sum in one canonical order (Decimal sums round).
    return (
        position.kind,
        position.chain,
        position.account.lower(),
        position.token.lower(),
        position.venue,
        f"{position.amount:080d}",
        f"{position.decimals:04d}",
        repr(position.details.get("market")),
        repr(position.details.get("supply_shares")),
    )


# ---------------------------------------------------------------------------------------------------------------
# Issuer graph.


def strongly_connected_components(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, ...]]:
    """Strongly connected components of the issuer graph (networkx), each sorted, listed in sorted order."""
    import networkx as nx

    digraph: nx.DiGraph = nx.DiGraph()
    for node, targets in graph.items():
        digraph.add_node(node)
        digraph.add_edges_from((node, target) for target in targets)
    return sorted(tuple(sorted(component)) for component in nx.strongly_connected_components(digraph))
# ---------------------------------------------------------------------------------------------------------------
# The solver.


def solve(
    universe: Universe,
    *,
    tolerance: Decimal = DEFAULT_TOLERANCE,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> BackingResult:
    """Solve every issuer's backing ratio at once and return the figures.

    Two sequences run together: `low` from r = 0 and `high` from r = 1. Each step sets
    r_i = min(1, max(0, assets_i - debts_i) / supply_usd_i). Assets rise with r, so `low` values assets
    at `low` and debts at `high`, `high` the reverse: both sequences are then monotone (low rises, high
    falls) and bracket every fixed point, so `low` converges to the least fixed point (verifiable backing)
    and `high` to the greatest (as claimed). When no debt is owed in an issued token this is exactly
    the plain iteration from 0 and from 1. If the cap is reached first, `low` is still a lower bound.
    """
    tolerance = Decimal(tolerance)
    if not tolerance.is_finite() or tolerance <= 0:
        raise ValueError(f"tolerance must be a positive number, got {tolerance!r}")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 0:
        raise ValueError(f"max_iterations must be a non-negative integer, got {max_iterations!r}")
    with decimal.localcontext(_context()):
        return _solve(universe, tolerance, max_iterations)


def _solve(universe: Universe, tolerance: Decimal, max_iterations: int) -> BackingResult:
    compiler = _Compiler(universe)
    ids = compiler.ids
    sheets = [compiler.compile(issuer) for issuer in ids]
    has_supply = [sheet.supply_usd > 0 for sheet in sheets]
    # An issuer with nothing to back has no ratio; its token (nobody should hold it) is worth 0 when
    # verifying and par when taking claims at face value.
    low = [_ZERO for _ in ids]
    high = [_ONE for _ in ids]
    iterations = 0
    max_change = _ZERO
    converged = not ids
    while not converged and iterations < max_iterations:
        iterations += 1
        new_low = [
            _ratio(_net(sheet, low, high), sheet.supply_usd) if has_supply[k] else _ZERO
            for k, sheet in enumerate(sheets)
        ]
        new_high = [
            _ratio(_net(sheet, high, low), sheet.supply_usd) if has_supply[k] else _ONE
            for k, sheet in enumerate(sheets)
        ]
        max_change = max(abs(new - old) for new, old in zip([*new_low, *new_high], [*low, *high], strict=True))
        low, high = new_low, new_high
        converged = max_change < tolerance
    notes = list(compiler.notes)
    if not converged:
        notes.append(
            f"did not converge within {max_iterations} iterations (last change {max_change:.3E} >= tolerance "
            f"{tolerance}): verifiable figures are lower bounds and claimed figures upper bounds of the true ones"
        )

    graph = {sheet.issuer: sheet.depends_on for sheet in sheets}
    cycle_members = [
        component
        for component in strongly_connected_components(graph)
        if len(component) > 1 or component[0] in graph[component[0]]
    ]
    cycle_index = {issuer: k for k, members in enumerate(cycle_members) for issuer in members}

    par_ratios = [_ONE for _ in ids]
    figures: dict[str, IssuerFigures] = {}
    for k, sheet in enumerate(sheets):
        verifiable = _valuate(sheet, low, high)
        cycle_gap = _ZERO
        members = cycle_members[cycle_index[sheet.issuer]] if sheet.issuer in cycle_index else ()
        if len(members) > 1:
            mates = {compiler.index[m] for m in members if m != sheet.issuer}
            mates_at_par = [_ONE if j in mates else r for j, r in enumerate(low)]
            debts_mates_at_par = [_ONE if j in mates else r for j, r in enumerate(high)]
            propped = _valuate(sheet, mates_at_par, debts_mates_at_par).net
            cycle_gap = max(_ZERO, max(_ZERO, propped) - max(_ZERO, verifiable.net))
        figures[sheet.issuer] = _figures(
            sheet,
            verifiable=verifiable,
            cycle_gap=cycle_gap,
            claimed=_valuate(sheet, high, low),
            at_par=_valuate(sheet, par_ratios, par_ratios),
            ratio=low[k] if has_supply[k] else None,
            claimed_ratio=high[k] if has_supply[k] else None,
            cycle=cycle_index.get(sheet.issuer),
        )
    cycles = tuple(
        Cycle(
            index=k,
            issuers=members,
            circular_backing_usd=sum((figures[m].circular_backing_usd for m in members), _ZERO),
            cycle_gap_usd=sum((figures[m].cycle_gap_usd for m in members), _ZERO),
        )
        for k, members in enumerate(cycle_members)
    )
    return BackingResult(
        issuers=figures,
        cycles=cycles,
        converged=converged,
        iterations=iterations,
        max_change=max_change,
        tolerance=tolerance,
        max_iterations=max_iterations,
        notes=tuple(notes),
    )


def _figures(
    sheet: _Sheet,
    *,
    verifiable: _Valuation,
    cycle_gap: Decimal,
    claimed: _Valuation,
    at_par: _Valuation,
    ratio: Decimal | None,
    claimed_ratio: Decimal | None,
    cycle: int | None,
) -> IssuerFigures:
    notes = list(sheet.notes)
    verifiable_backing = max(_ZERO, verifiable.net)
    claimed_backing = max(_ZERO, claimed.net)
    backing_at_par = max(_ZERO, at_par.net)
    expansion: Decimal | None = None
    if sheet.supply_usd > 0:
        if verifiable_backing > 0:
            expansion = sheet.supply_usd / verifiable_backing
        else:
            notes.append("expansion ratio unbounded: no verifiable backing")
    leverage: Decimal | None = None
    if verifiable.net > 0:
        leverage = verifiable.gross / verifiable.net
    else:
        notes.append("leverage undefined: net assets are not positive")
    if sheet.unverifiable:
        notes.append(f"{len(sheet.unverifiable)} position(s) could not be valued: listed as unverifiable, counted 0")
    return IssuerFigures(
        issuer=sheet.issuer,
        symbol=sheet.symbol,
        par_usd=sheet.par_usd,
        supply_tokens=sheet.supply_tokens,
        supply_usd=sheet.supply_usd,
        backing_ratio=ratio,
        claimed_ratio=claimed_ratio,
        verifiable_backing_usd=verifiable_backing,
        verifiable_by_class_usd=dict(verifiable.by_class),
        gross_assets_usd=verifiable.gross,
        debt_usd=verifiable.debt,
        net_assets_usd=verifiable.net,
        claimed_assets_usd=sheet.claimed_assets_usd,
        claimed_backing_usd=claimed_backing,
        backing_at_par_usd=backing_at_par,
        gross_assets_at_par_usd=at_par.gross,
        circular_backing_usd=max(_ZERO, claimed_backing - verifiable_backing),
        look_through_gap_usd=max(_ZERO, backing_at_par - verifiable_backing),
        cycle_gap_usd=cycle_gap,
        expansion_ratio=expansion,
        leverage=leverage,
        offchain=sheet.offchain,
        offchain_usd=sheet.offchain_usd,
        unverifiable=tuple(sheet.unverifiable),
        self_held_tokens=sheet.self_held_tokens,
        issued_holdings_tokens=dict(sorted(sheet.issued_holdings.items())),
        depends_on=tuple(sorted(sheet.depends_on)),
        cycle=cycle,
        claimed_apy=sheet.claimed_apy,
        notes=tuple(notes),
        attested=sheet.attested,
    )


__all__ = [
    "ASSET_CLASSES",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_TOLERANCE",
    "HARD",
    "ISSUED",
    "LENDING_SUPPLY",
    "BackingResult",
    "Cycle",
    "IssuerFigures",
    "UnverifiableHolding",
    "solve",
    "strongly_connected_components",
]
