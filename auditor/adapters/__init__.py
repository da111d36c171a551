"""Position adapters: one module per venue or standard, each describing reads and decoding them into positions.

An adapter is a plan `collect(scope) -> Plan[Collected]` (auditor.chain.plan), registered by name with
`@adapter("name")`. It never talks to a node: it yields the reads and log scans it needs, and the audit runs
every adapter of every chain together, one batched call per chain per round. Adding a venue means adding
one file here and importing it in `load_all()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from auditor.chain.plan import Plan, reads
from auditor.chain.reader import ChainClient, Read, ReadResult
from auditor.model import Evidence, Gap, Market, Position, token_key
from auditor.spec import Registry, Venue


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

    def extend(self, other: Collected) -> None:
        self.positions += other.positions
        self.markets.update(other.markets)
        self.notes += other.notes
        self.gaps += other.gaps


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


# A venue's rates: the rate of one of its positions, given the audit's markets and the vault share-price APYs.
RateFn = Callable[[Position, Mapping[str, Market], Mapping[str, Decimal]], Rate]
RATES: dict[str, RateFn] = {}


def rate(name: str) -> Callable[[RateFn], RateFn]:
    def register(function: RateFn) -> RateFn:
        RATES[name] = function
        return function

    return register


CollectFn = Callable[[Scope], Plan[Collected]]
ADAPTERS: dict[str, CollectFn] = {}
TOKEN_ADAPTERS = ("erc20",)  # run on every chain; venue adapters run where the registry lists the venue


def adapter(name: str) -> Callable[[CollectFn], CollectFn]:
    def register(function: CollectFn) -> CollectFn:
        ADAPTERS[name] = function
        return function

    return register


def load_all() -> dict[str, CollectFn]:
    """Import every adapter module so that each registers itself."""
    from auditor.adapters import aave_v3, erc20, erc4626, morpho_blue  # noqa: F401

    return ADAPTERS


def load_rates() -> dict[str, RateFn]:
    """Every venue's rate function, by the venue name its positions carry."""
    load_all()
    return RATES
