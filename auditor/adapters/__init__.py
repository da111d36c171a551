"""Venues: one module per venue or standard owns everything specific to it, registered under its name.

A venue module registers what it can answer, each a plan (auditor.chain.plan) that yields the reads and log
scans it needs and never talks to a node itself:
- `@adapter(name)`: `collect(scope) -> Plan[Collected]`, the positions of the issuer's accounts (balance sheets);
- `@rate(name)`: what one of its positions earns or costs a year (yields);
- `@price_source(name)`: `quote(pool) -> Plan[Quote]`, the price of a registry pool of that kind (market prices
  and the oracle checks' samples, at the pin or, through `at_block`, before it);
- `@exposure_source(name)`: who lends against a token there (the exposure map, auditor/lending.py);
- `@flow_source(name)`: `flows(scope, accounts, window) -> Plan[VenueFlows]`, the lending events of issuer
  accounts in a block window (the tracer);
- `@depth_source(name)`: `depth(pool, drops) -> Plan[(points, why)]`, how much of a pool's base token sells before
  its price falls by each drop (exit liquidity), for pool kinds whose maths the module knows;
- `@twap_source(name)`: `twap(pool, seconds) -> Plan[(price, why)]`, a pool's time-weighted price over the
  seconds before the block, for pool kinds that keep a price oracle.
The registry's `venues:` and `pools: kind:` names are exactly the registered names. Adding a venue is adding
one module to this package (found by `load_all`), its lab deployment and its tests; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from auditor import catalogue
from auditor.chain.plan import Plan, reads
from auditor.chain.reader import ChainClient, Read, ReadResult
from auditor.chain.rpc import ConfigError
from auditor.lending import Ask, Lending, VenueFlows
from auditor.model import DerivedPrice, Evidence, Gap, Market, Position, token_key
from auditor.spec import Pool, Registry, Venue


@dataclass(frozen=True)
class Account:
    """An issuer account on one chain."""

    issuer: str
    address: str
    label: str


@dataclass(frozen=True)
class TokenInfo:
    """A token the audit cares about on one chain: a hard asset, an issued token, or one a spec names."""

    chain: str
    address: str
    role: str  # "hard" | "issued" | "holding"
    issuer: str = ""  # for role "issued": the spec id
    symbol: str = ""  # registry or spec symbol (trusted); on-chain symbols go in positions
    decimals: int | None = None
    discovered: bool = False  # found by the discovery scan of issuer accounts' transfers, listed nowhere

    @property
    def key(self) -> str:
        return token_key(self.chain, self.address)


@dataclass
class Scope:
    """What one adapter run sees: one chain, its pinned client, the accounts and the tokens of the audit."""

    chain: str
    client: ChainClient
    registry: Registry
    accounts: list[Account]
    tokens: dict[str, TokenInfo]
    venue: Venue | None = None
    vault_depth: int = 3

    @property
    def block(self) -> int:
        return self.client.pinned.number

    def gap(self, result: ReadResult, what: str) -> Gap:
        """A read the balance sheet needed that failed: the audit is incomplete, the amount is not taken as 0."""
        return Gap(self.chain, self.block, f"{what}: {result.read.describe()}", result.error or "failed")

    def evidence(self, result: ReadResult) -> Evidence:
        value = result.value[0] if len(result.value) == 1 else result.value
        text = _short(value) if result.ok else f"failed: {result.error}"
        return Evidence(self.chain, self.block, result.read.target, result.read.describe(), text)


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)


@dataclass
class Collected:
    positions: list[Position] = field(default_factory=list)
    markets: dict[str, Market] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)  # reads the balance sheet needs and did not get: never zeros
    # Contracts of a venue beyond its registry address (lower case -> label): an Aave aToken pays out the loans
    # and withdrawals of its reserve, so a transfer from it is the venue's (auditor/discovery.py).
    addresses: dict[str, str] = field(default_factory=dict)
    # Tokens a venue values by what they redeem for (token_key -> DerivedPrice): a Pendle PT, wherever it is held.
    derived: dict[str, DerivedPrice] = field(default_factory=dict)

    def extend(self, other: Collected) -> None:
        self.positions += other.positions
        self.markets.update(other.markets)
        self.notes += other.notes
        self.gaps += other.gaps
        self.addresses.update(other.addresses)
        self.derived.update(other.derived)


def metadata_reads(tokens: Sequence[str]) -> list[Read]:
    """decimals() and symbol() of each token address, to send in any round."""
    return [Read(address, signature, returns=(kind,)) for address in tokens
            for signature, kind in (("decimals()", "uint8"), ("symbol()", "string"))]


def decode_metadata(tokens: Sequence[str], results: Sequence[ReadResult]
                    ) -> dict[str, tuple[int | None, str, list[ReadResult]]]:
    """(decimals or None, symbol or '', the two results) per token; a token without decimals() is not an ERC-20."""
    out: dict[str, tuple[int | None, str, list[ReadResult]]] = {}
    for index, address in enumerate(tokens):
        decimals, symbol = results[2 * index], results[2 * index + 1]
        out[address] = (decimals.one if decimals.ok else None, symbol.one if symbol.ok else "", [decimals, symbol])
    return out


def token_metadata(tokens: list[str]) -> Plan[dict[str, tuple[int | None, str, list[ReadResult]]]]:
    results = yield from reads(metadata_reads(tokens))
    return decode_metadata(tokens, results)


@dataclass(frozen=True)
class Rate:
    """What a position earns (supply, vault share) or costs (debt) a year at the pin, and from what."""

    apy: Decimal | None  # None: the venue's rate could not be read
    market: str | None
    inputs: dict[str, str]
    note: str = ""


@dataclass(frozen=True)
class Quote:
    """A pool's price of its base token: whole quote tokens per whole base token, or why there is none."""

    price: Decimal | None
    why: str = ""  # "is empty", "could not be read: ..."
    unavailable: bool = False  # the node gave no answer (not: the pool has no price)
    results: tuple[ReadResult, ...] = ()  # the reads it was computed from, for evidence

    @staticmethod
    def of(results: Sequence[ReadResult]) -> Quote | None:
        """The Quote of reads that did not all succeed, or None when they all did."""
        failed = [r for r in results if not r.ok]
        if not failed:
            return None
        reason = f"could not be read: {failed[0].read.describe()}: {failed[0].error}"
        return Quote(None, reason, any(r.unavailable for r in failed), tuple(results))


# A venue's rates: the rate of one of its positions, given the audit's markets and the vault share-price APYs.
RateFn = Callable[[Position, Mapping[str, Market], Mapping[str, Decimal]], Rate]
CollectFn = Callable[[Scope], Plan[Collected]]
QuoteFn = Callable[[Pool], Plan[Quote]]
ExposureFn = Callable[[Scope, Ask], Plan[Lending]]
FlowFn = Callable[[Scope, Sequence[str], tuple[int, int]], Plan[VenueFlows]]
# (points with .drop, .base_in and .quote_out in whole tokens, or None; why not)
DepthFn = Callable[[Pool, Sequence[Decimal]], Plan[tuple[Sequence[Any] | None, str]]]
TwapFn = Callable[[Pool, int], Plan[tuple[Decimal | None, str]]]


@dataclass
class VenueModule:
    """What one venue answers; a capability it does not register is None."""

    name: str
    collect: CollectFn | None = None
    rate: RateFn | None = None
    quote: QuoteFn | None = None
    exposure: ExposureFn | None = None
    flows: FlowFn | None = None
    depth: DepthFn | None = None
    twap: TwapFn | None = None


VENUES: dict[str, VenueModule] = {}
TOKEN_ADAPTERS = catalogue.TOKEN_STANDARDS  # run on every chain; venue adapters run where the registry lists them


def _register(name: str, capability: str) -> Callable[[Any], Any]:
    def register(function: Any) -> Any:
        module = VENUES.setdefault(name, VenueModule(name))
        if getattr(module, capability) is not None:
            raise RuntimeError(f"venue {name} registers {capability} twice")
        setattr(module, capability, function)
        return function

    return register


def adapter(name: str) -> Callable[[CollectFn], CollectFn]:
    return _register(name, "collect")


def rate(name: str) -> Callable[[RateFn], RateFn]:
    return _register(name, "rate")


def price_source(name: str) -> Callable[[QuoteFn], QuoteFn]:
    return _register(name, "quote")


def exposure_source(name: str) -> Callable[[ExposureFn], ExposureFn]:
    return _register(name, "exposure")


def flow_source(name: str) -> Callable[[FlowFn], FlowFn]:
    return _register(name, "flows")


def depth_source(name: str) -> Callable[[DepthFn], DepthFn]:
    return _register(name, "depth")


def twap_source(name: str) -> Callable[[TwapFn], TwapFn]:
    return _register(name, "twap")


def load_venues() -> dict[str, VenueModule]:
    """Import every module of this package, so that each registers itself: a new module needs no edit here."""
    import importlib
    import pkgutil

    for found in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{found.name}")
    return VENUES


def load_all() -> dict[str, CollectFn]:
    """Every position adapter, by venue name."""
    return {name: v.collect for name, v in sorted(load_venues().items()) if v.collect is not None}


def load_rates() -> dict[str, RateFn]:
    """Every venue's rate function, by the venue name its positions carry."""
    return {name: v.rate for name, v in sorted(load_venues().items()) if v.rate is not None}


def quote(pool: Pool) -> Plan[Quote]:
    """The price of a registry pool, by the venue module of its kind."""
    source = load_venues().get(pool.kind)
    if source is None or source.quote is None:
        raise ConfigError(f"pool {pool.name}: no venue module prices pools of kind {pool.kind!r}")
    return (yield from source.quote(pool))


def depth(pool: Pool, drops: Sequence[Decimal]) -> Plan[tuple[Sequence[Any] | None, str]]:
    """Exit liquidity of a registry pool at each price drop, by the venue module of its kind (None and why when
    the kind has no depth maths or the pool cannot be read)."""
    source = load_venues().get(pool.kind)
    if source is None or source.depth is None:
        return None, f"no exit-liquidity maths for pools of kind {pool.kind!r}"
    return (yield from source.depth(pool, drops))


def twap(pool: Pool, seconds: int) -> Plan[tuple[Decimal | None, str]]:
    """A registry pool's time-weighted price of its base token over `seconds`, by its kind's venue module (None and
    why when the kind keeps no price oracle, or the pool's observations do not reach back that far)."""
    source = load_venues().get(pool.kind)
    if source is None or source.twap is None:
        return None, f"pools of kind {pool.kind!r} keep no price oracle"
    return (yield from source.twap(pool, seconds))
