"""What a venue lends against a token, in the shape every venue module answers it (the exposure protocol).

A venue module registers `@exposure_source(name)`: `lending(scope, ask: Ask) -> Plan[Lending]`. It finds the
collateral tokens it lends against, asks `ask.look_through(candidates)` which of them are the audited token
(`ask.token`) or hold it, reads those markets, and in its last round also sends `ask.extras(lenders, tokens)`:
the map's own reads (lenders' vault profiles, token metadata, hard-asset prices), so that the map costs no round
of its own. It returns a `Lending`: its market models (for the audit's oracle checks) and a `value` function
that gives its markets and listings as plain data with the fields below once prices are known (pure). The
exposure map (auditor/exposure.py) merges every venue's answer.

Market fields every venue gives: key, venue, id, relation, collateral_path, loan_token/_symbol/_decimals,
collateral_token/_symbol/_decimals, total_supplied*, total_borrowed*, collateral_posted*, collateral_value_usd,
bad_debt_usd, suppliers [{address, supplied*, at_risk*, look_through_loss_usd}], borrowers, terms (the venue's
own parameters: LLTV, oracle, ...), evidence. `*`: `_raw`, whole tokens and `_usd` (see `amounts`).
Listings: reserves that accept the token as collateral from a pool-wide book (Aave): token, symbol, relation,
collateral_path, terms, supplied*, borrowed*, evidence.
"""

from __future__ import annotations

import decimal
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from auditor.chain.abi import EventDecoder
from auditor.chain.plan import Plan, gather, logs
from auditor.chain.reader import Log, ReadResult
from auditor.model import HardAsset, Market, token_key
from auditor.numbers import context, exact
from auditor.spec import Venue

MAX_TEXT = 64  # on-chain names and symbols are attacker-chosen: cap them before they reach a terminal


@dataclass(frozen=True)
class Collateral:
    """A token whose loss of value hits the audited token's lenders: the token itself or a token holding it."""

    address: str
    relation: str  # "direct" | "look-through"
    path: tuple[str, ...]  # audited token first, this collateral last
    via: str  # how the last hop was found: "token" | "asset()" | "SY()" | "yieldToken()" | "holders_of"

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "relation": self.relation, "path": list(self.path), "via": self.via}


@dataclass
class Extras:
    """The map's own reads, sent in a venue's last round: what it needs to value and name what the venue found."""

    profiles: dict[str, dict[str, ReadResult]]  # lender -> its vault getters' answers
    metadata: dict[str, tuple[int | None, str, list[ReadResult]]]  # token -> decimals, symbol, the reads
    hard: dict[str, HardAsset]  # hard assets of the chain at their registry price
    notes: list[str]


@dataclass(frozen=True)
class Ask:
    """What a venue's exposure plan may ask of the map: the audited token, the look-through of candidate
    collaterals (lower address -> Collateral, for those that are the token or hold it), and the map's extras."""

    token: str
    look_through: Callable[[set[str]], Plan[dict[str, Collateral]]]
    extras: Callable[[set[str], set[str]], Plan[Extras]]


@dataclass(frozen=True)
class Prices:
    """USD per whole token by token_key, and where each price came from."""

    usd: dict[str, Decimal]
    source: dict[str, str]

    def of(self, chain: str, address: str) -> Decimal | None:
        return self.usd.get(token_key(chain, address))


@dataclass
class Valuing:
    """What a venue's `value` gets: token metadata (decimals or None, printable symbol) and USD prices at the pin,
    and the map's notes to add to."""

    metadata: Mapping[str, tuple[int | None, str]]
    prices: Prices
    notes: list[str]


@dataclass
class Lending:
    """One venue's answer: who lends against the token there, read at the pin, valued later (pure)."""

    venue: str
    address: str
    facts: dict[str, Any]  # the venue's own header (Morpho: markets scanned, fee recipient)
    collaterals: dict[str, Collateral]
    extras: Extras | None = None  # None when the venue lends against none of them
    markets: dict[str, Market] = field(default_factory=dict)  # models for the audit's oracle checks
    value: Callable[[Valuing], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = lambda _v: ([], [])


def amounts(name: str, raw: int, decimals: int | None, price: Decimal | None,
            usd_name: str | None = "") -> dict[str, Any]:
    """`name_raw` (integer string), `name` (decimals applied, or null) and a USD value (null when unpriced)."""
    out: dict[str, Any] = {f"{name}_raw": str(raw), name: None if decimals is None else exact(
        usd_value(raw, decimals, Decimal(1)) or Decimal(0))}
    if usd_name is not None:
        value = usd_value(raw, decimals, price)
        out[usd_name or f"{name}_usd"] = None if value is None else exact(value)
    return out


def _wide() -> decimal.Context:
    return decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


def usd_value(raw: int, decimals: int | None, price: Decimal | None) -> Decimal | None:
    """Whole tokens times a USD price, at 60 digits so 30-digit raw amounts are not rounded."""
    if decimals is None or price is None:
        return None
    with decimal.localcontext(_wide()):
        return Decimal(raw) / Decimal(10) ** decimals * price


def pro_rata(amount: Decimal, part: int, whole: int) -> Decimal:
    with decimal.localcontext(_wide()):
        return amount * Decimal(part) / Decimal(whole)


def ratio(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    with decimal.localcontext(_wide()):
        return Decimal(part) / Decimal(whole)


def usd_sum(values: Any) -> str | None:
    """The exact sum, or None when any part is unpriced: a partial sum would read as complete."""
    total = Decimal(0)
    with decimal.localcontext(context()):  # full precision: the default context keeps only 28 digits
        for value in values:
            if value is None:
                return None
            total += Decimal(value)
    return exact(total)


def shortfall(debt: int, loan_decimals: int | None, loan_price: Decimal | None,
              collateral: int, collateral_decimals: int | None, collateral_price: Decimal | None) -> Decimal | None:
    """What one borrower's debt exceeds its collateral by, both in USD; None when either cannot be valued."""
    debt_usd = usd_value(debt, loan_decimals, loan_price)
    collateral_usd = usd_value(collateral, collateral_decimals, collateral_price)
    if debt_usd is None or collateral_usd is None:
        return None
    return max(Decimal(0), debt_usd - collateral_usd)


def printable(value: Any) -> str:
    """An on-chain string made safe to print: control and format characters (escapes, bidi overrides) dropped."""
    if not isinstance(value, str):
        return ""
    cleaned = "".join(ch for ch in value if not unicodedata.category(ch).startswith("C"))
    return cleaned if len(cleaned) <= MAX_TEXT else cleaned[: MAX_TEXT - 1] + "…"


def collaterals_among(found: Mapping[str, Collateral], tokens: Sequence[str]) -> list[str]:
    """The tokens (in order) that are the audited token or hold it."""
    return [t for t in tokens if t.lower() in found]


# ------------------------------------------------------------------ flows: the lending events the tracer reads


@dataclass(frozen=True)
class LendingFlow:
    """One lending event touching an issuer account, decoded by its venue: `token` moved from `src` to `dst`
    (the venue contract is one side), for the position of `account` in `market`. `kind` is one of
    auditor.flows.LENDING_KINDS."""

    block: int
    log_index: int
    tx_hash: str
    kind: str
    market: str  # market key
    token: str  # the token that moved: the loan token, or the collateral for collateral events
    amount: int  # raw units
    src: str
    dst: str
    account: str


@dataclass
class VenueFlows:
    """A venue's answer to the tracer for one block window."""

    flows: list[LendingFlow] = field(default_factory=list)
    markets: dict[str, tuple[str, str]] = field(default_factory=dict)  # market key -> (loan token, collateral)
    logs: int = 0  # lending logs read
    undecodable: int = 0
    notes: list[str] = field(default_factory=list)


def account_events(venue: Venue, decoders: Mapping[str, EventDecoder], accounts: Sequence[str],
                   window: tuple[int, int], out: VenueFlows) -> Plan[list[tuple[Log, dict[str, Any]]]]:
    """`account_logs` of the decoders' events, decoded, in chain order; counted in `out` (logs read, and those
    that did not decode: left out, never guessed)."""
    decoded = []
    for log in (yield from account_logs(venue, sorted(decoders), accounts, window)):
        out.logs += 1
        try:
            decoded.append((log, decoders[log.topics[0]].decode(log.topics, log.data)))
        except ValueError:
            out.undecodable += 1
    return decoded


def account_logs(venue: Venue, kinds: Sequence[str], accounts: Sequence[str], window: tuple[int, int]
                 ) -> Plan[list[Log]]:
    """A venue's events of `kinds` (topic0s) where one of `accounts` (address topics) is the second or the third
    indexed argument, in the window from the venue's deployment on: two filters in one round, each log once, in
    chain order. Lending venues index the caller / position owner there (Morpho, Aave)."""
    start = max(window[0], venue.from_block)
    if start > window[1] or not accounts:
        return []
    watched = list(accounts)
    first, second = yield from gather(logs([venue.address], [list(kinds), None, watched], start, window[1]),
                                      logs([venue.address], [list(kinds), None, None, watched], start, window[1]))
    seen = {a.lower() for a in watched}
    found = first + [log for log in second if not (len(log.topics) > 2 and log.topics[2].lower() in seen)]
    return sorted(found, key=lambda log: (log.block_number, log.log_index))
