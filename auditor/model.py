"""Plain data passed between stages: positions, markets, supplies and balance sheets (no I/O, no logic)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# Position kinds: what an account holds or owes at a venue.
BALANCE = "balance"  # plain ERC-20 balance
VAULT_SHARE = "vault_share"  # ERC-4626 shares, valued through their underlying
SUPPLY = "supply"  # a loan the account made in a lending market (worth what borrowers can repay)
COLLATERAL = "collateral"  # tokens the account posted as collateral (still its asset)
DEBT = "debt"  # what the account borrowed (subtracted)
KINDS = (BALANCE, VAULT_SHARE, SUPPLY, COLLATERAL, DEBT)


def token_key(chain: str, address: str) -> str:
    """The one identity of a token in the whole program: 'chain:0xlowercase'."""
    return f"{chain}:{address.lower()}"


@dataclass(frozen=True)
class Evidence:
    """One read that proves a figure: which contract was asked what, at which block, and the answer."""

    chain: str
    block: int
    contract: str
    call: str  # e.g. "balanceOf(0xabc...)"
    result: str  # the decoded answer as text

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "block": self.block, "contract": self.contract, "call": self.call,
                "result": self.result}


@dataclass(frozen=True)
class Gap:
    """Something the audit needed and could not read: the figures that depend on it are not the audit's result."""

    chain: str
    block: int | None
    what: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "block": self.block, "what": self.what, "reason": self.reason}

    def line(self) -> str:
        at = f" at block {self.block}" if self.block is not None else ""
        return f"{self.chain}{at}: {self.what}: {self.reason}"


@dataclass(frozen=True)
class Position:
    """What one account holds or owes at one venue, in raw token units.

    For `vault_share` the `token` is the vault's underlying and `amount` is the shares converted to
    underlying at the pin (details keep the shares and the vault). For `supply` in a lending
    market, `amount` is the supplied assets as the market accounts them, and `details["market"]`
    names the Market whose borrowers decide what the loan is really worth.
    """

    chain: str
    account: str
    venue: str
    kind: str
    token: str  # token address the amount is denominated in
    amount: int
    decimals: int
    symbol: str = ""  # read from chain: untrusted text, escape before display
    details: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()

    @property
    def token_key(self) -> str:
        return token_key(self.chain, self.token)


@dataclass(frozen=True)
class Borrower:
    address: str
    debt: int  # loan-token units (borrow shares converted up, as Morpho rounds)
    collateral: int  # collateral-token units


@dataclass(frozen=True)
class Market:
    """A lending market as the backing engine needs it: what its suppliers can get back."""

    key: str  # e.g. "plume:morpho_blue:0x<id>"
    chain: str
    venue: str
    loan_token: str
    loan_decimals: int
    collateral_token: str
    collateral_decimals: int
    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    borrowers: tuple[Borrower, ...] = ()
    lltv: int = 0  # 1e18 = 100%
    oracle: str = ""
    oracle_price: int | None = None  # Morpho scale: 1e36 * loan units per collateral unit
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def idle(self) -> int:
        return max(0, self.total_supply_assets - self.total_borrow_assets)

    def shortfall_usd(self, loan_usd: Decimal, collateral_usd: Decimal) -> Decimal:
        """Debt beyond each borrower's collateral, summed, with the loan token and the collateral at these USD
        prices per whole token: the bad debt the market holds at that valuation."""
        loan_unit, collateral_unit = Decimal(10) ** self.loan_decimals, Decimal(10) ** self.collateral_decimals
        return sum((max(Decimal(0), Decimal(b.debt) / loan_unit * loan_usd
                        - Decimal(b.collateral) / collateral_unit * collateral_usd) for b in self.borrowers),
                   Decimal(0))


@dataclass(frozen=True)
class Deployment:
    chain: str
    address: str
    decimals: int
    total_supply: int  # raw units
    escrowed: int = 0  # canonical tokens held by escrows for bridged copies (subtracted)
    bridged: bool = False
    symbol_onchain: str = ""


@dataclass(frozen=True)
class Supply:
    """How much of a token exists: totalSupply over deployments minus what escrows hold."""

    deployments: tuple[Deployment, ...]

    @property
    def tokens(self) -> Decimal:
        """Supply in whole tokens (decimals applied per deployment, which may differ by chain)."""
        return sum(
            (Decimal(d.total_supply - d.escrowed) / Decimal(10) ** d.decimals for d in self.deployments),
            Decimal(0),
        )


@dataclass(frozen=True)
class HardAsset:
    key: str  # token_key
    symbol: str
    decimals: int
    price_usd: Decimal  # par = 1, or a feed read at the pin
    price_source: str = "par"


@dataclass(frozen=True)
class OffchainClaim:
    label: str
    usd: Decimal


@dataclass(frozen=True)
class AttestedReserve:
    """A proof-of-reserve feed read at the pin: attested, between verifiable on chain and unverifiable.

    status: "fresh" (counted as attested), "stale" (older than its heartbeat), "non-positive" or "unreadable";
    only a fresh answer is a figure (`usd`), the others are flagged."""

    label: str
    chain: str
    feed: str
    status: str
    usd: Decimal | None
    age_s: int | None
    heartbeat_s: int
    round_id: int | None = None
    evidence: tuple[Evidence, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "chain": self.chain, "feed": self.feed, "status": self.status,
                "usd": self.usd, "age_s": self.age_s, "heartbeat_s": self.heartbeat_s, "round_id": self.round_id}


@dataclass
class BalanceSheet:
    """One issuer at the pins: its supply, what its accounts hold and owe, and what it claims."""

    issuer: str  # spec id
    symbol: str
    par_usd: Decimal
    token_keys: frozenset[str]  # every deployment of the issued token (a holder of these holds this issuer)
    supply: Supply
    positions: list[Position] = field(default_factory=list)
    offchain: list[OffchainClaim] = field(default_factory=list)
    claimed_assets_usd: Decimal | None = None
    claimed_apy: Decimal | None = None
    notes: list[str] = field(default_factory=list)  # what could not be read, depth limits reached, ...
    attested: list[AttestedReserve] = field(default_factory=list)  # proof-of-reserve feeds read at the pin


@dataclass(frozen=True)
class DerivedPrice:
    """A token worth `factor` whole units of another token per whole unit, by what it redeems for (a Pendle PT: its
    SY's accounting asset at maturity, discounted at the market's implied rate): valued at `factor` times the
    underlying's own look-through value, whatever holds it (a balance, posted collateral, a borrower's collateral)."""

    key: str  # token_key of the derived token
    underlying: str  # token_key of what it is worth a share of
    factor: Decimal
    source: str
    evidence: tuple[Evidence, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "underlying": self.underlying, "factor": str(self.factor), "source": self.source,
                **self.details}


EXIT_DROPS = (Decimal("0.02"), Decimal("0.05"), Decimal("0.10"))  # price drops exit liquidity is read at
THIN_DROP = EXIT_DROPS[0]  # a pool is thin by what sells before this drop


@dataclass(frozen=True)
class ExitPoint:
    """Exit liquidity at one price drop: how many whole tokens sell into the pool before its price falls by `drop`,
    and the USD they fetch (the pool's quote asset at its price)."""

    drop: Decimal
    tokens: Decimal
    usd: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {"drop": self.drop, "tokens": self.tokens, "usd": self.usd}


@dataclass(frozen=True)
class MarketPrice:
    """A token's price on a DEX pool at the pin, in USD (through the pool's quote asset), and, for pools whose
    maths the venue module knows, the pool's exit liquidity (`depth`, smallest drop first)."""

    key: str  # token_key of the priced token
    price_usd: Decimal
    source: str
    evidence: tuple[Evidence, ...] = ()
    depth: tuple[ExitPoint, ...] = ()
    twap_usd: Decimal | None = None  # the pool's time-weighted price over TWAP_SECONDS, when it keeps one
    twap_why: str = ""  # why there is none

    @property
    def steady_usd(self) -> Decimal:
        """The price a check may lean on: the lower of spot and TWAP (one block's trade can move spot)."""
        return self.price_usd if self.twap_usd is None else min(self.price_usd, self.twap_usd)

    def sellable_usd(self, drop: Decimal) -> Decimal | None:
        """USD that selling into the pool fetches before its price falls by `drop` (None: no depth known)."""
        return next((p.usd for p in self.depth if p.drop == drop), None)

    def thin(self, threshold_usd: Decimal) -> bool:
        """Whether the pool fetches less than `threshold_usd` before its price falls 2% (unknown depth: not thin)."""
        sellable = self.sellable_usd(THIN_DROP)
        return sellable is not None and sellable < threshold_usd

    def shown(self, threshold_usd: Decimal) -> str:
        """The price as a flag writes it: marked when the pool is thin."""
        from auditor.numbers import usd

        if not self.thin(threshold_usd):
            return usd(self.price_usd)
        return f"{usd(self.price_usd)} (thin pool: {usd(self.sellable_usd(THIN_DROP))} sells before a 2% drop)"


@dataclass
class Universe:
    """Everything the backing engine values against: issuers, hard assets and lending markets."""

    sheets: dict[str, BalanceSheet]
    hard_assets: dict[str, HardAsset]
    markets: dict[str, Market] = field(default_factory=dict)
    holders: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # token_key -> top holders
    market_prices: dict[str, MarketPrice] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)  # what the balance sheets needed and could not read
    # auditor.discovery.Counterparties: whom the issuer accounts moved value with, and the coverage
    counterparties: Any = None
    bridges: list[Any] = field(default_factory=list)  # auditor.adapters.layerzero_oft.Mesh: OFT meshes found
    derived: dict[str, DerivedPrice] = field(default_factory=dict)  # token_key -> its look-through in another token

    def collateral_posted(self, key: str, *, lending_only: bool = False) -> tuple[Decimal, list[Market]]:
        """Whole tokens of `key` that borrowers post in the audit's markets, and those markets (only those with
        debt outstanding when `lending_only`)."""
        markets = [m for m in self.markets.values() if token_key(m.chain, m.collateral_token) == key
                   and (m.total_borrow_assets > 0 or not lending_only)]
        posted = sum((Decimal(sum(b.collateral for b in m.borrowers)) / Decimal(10) ** m.collateral_decimals
                      for m in markets), Decimal(0))
        return posted, sorted(markets, key=lambda m: m.key)
