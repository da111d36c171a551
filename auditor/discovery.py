"""Discovery and counterparties: every token an issuer account ever moved, and whom it moved value with.

An audit that reads only the tokens a spec lists and the venues the registry names cannot see two things: money
parked in a token nobody listed (the issuer looks under-backed) and cash borrowed from a lender nobody listed (the
cash counts as backing with no debt against it: backing overstated, silently). This module scans the Transfer logs
into and out of every issuer account (a plan: two scans and one code lookup per chain, in the audit's rounds),
returns the tokens found, and classifies every counterparty:

- `issuer`: an account, token or escrow of an issuer in the audit;
- `venue`: a lending venue of the registry, or a contract its module named (an Aave aToken that pays out loans);
- `market`: a registry pool (a sale through it is a sale);
- `token`: a registry hard asset's own contract;
- `mint-burn`: the zero address;
- `outside`: an address without code at the pin (a person's account: deposits and withdrawals of users);
- `unknown-contract`: code the audit cannot read: possibly a lender the tool does not know;
- `unread`: the node did not say whether it holds code (a gap, never a guess).

`account_flows` then nets, per counterparty, the hard assets and issued tokens moved (USD at the audit's prices):
the cash (hard assets) an issuer account received from an unknown contract beyond the cash it had sent there (a
deposit coming back) is an unexplained inflow, a possible debt in a venue the tool cannot read (issued tokens sent
there explain none of it: that is how one's own token is posted as collateral); what it sent there beyond what came
back, all priced tokens counted, is an asset in a place the tool cannot value. Coverage is the share of the value
moved that went through counterparties the audit understands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from auditor.chain.abi import EventDecoder, address_topic
from auditor.chain.plan import Plan, codes, gather, logs
from auditor.model import token_key

TRANSFER = EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)", checksum=False)
ZERO = "0x" + "0" * 40

ISSUER, VENUE, MARKET, TOKEN, MINT_BURN, OUTSIDE, UNKNOWN, UNREAD = (
    "issuer", "venue", "market", "token", "mint-burn", "outside", "unknown-contract", "unread")
CLASSES = (ISSUER, VENUE, MARKET, TOKEN, MINT_BURN, OUTSIDE, UNKNOWN, UNREAD)
UNDERSTOOD = frozenset({ISSUER, VENUE, MARKET, TOKEN, MINT_BURN, OUTSIDE})


@dataclass(frozen=True)
class Transfer:
    """One Transfer log into or out of an issuer account (addresses in lower case)."""

    chain: str
    token: str
    src: str
    dst: str
    amount: int
    block: int
    log_index: int
    tx_hash: str


@dataclass
class ChainDiscovery:
    """What the scan of one chain found: transfers of issuer accounts, the tokens moved, contracts among peers."""

    chain: str
    from_block: int
    to_block: int
    accounts: dict[str, str]  # account (lower case) -> issuer id
    transfers: list[Transfer] = field(default_factory=list)
    has_code: dict[str, bool | None] = field(default_factory=dict)  # peer (lower case) -> code at the pin
    undecodable: int = 0  # Transfer logs of another layout (ERC-721: four topics), left out

    @property
    def tokens(self) -> list[str]:
        """Every token an issuer account moved on this chain (lower case), sorted."""
        return sorted({t.token for t in self.transfers})


def discover(chain: str, accounts: Mapping[str, str], known: set[str], from_block: int, to_block: int
             ) -> Plan[ChainDiscovery]:
    """Scan Transfer logs from and to `accounts` (lower case -> issuer) in [from_block, to_block]; then ask, for
    every peer the audit does not already know (`known`, lower case), whether it holds code at the pin."""
    found = ChainDiscovery(chain, from_block, to_block, dict(accounts))
    if not accounts:
        return found
    topics = sorted(address_topic(a) for a in accounts)
    sent, received = yield from gather(logs(None, [TRANSFER.topic, topics], from_block, to_block),
                                       logs(None, [TRANSFER.topic, None, topics], from_block, to_block))
    seen: set[tuple[str, int]] = set()
    for log in [*sent, *received]:
        if (log.tx_hash, log.log_index) in seen:
            continue  # an account paying another: both scans hold it
        seen.add((log.tx_hash, log.log_index))
        try:
            fields = TRANSFER.decode(log.topics, log.data)
        except ValueError:
            found.undecodable += 1
            continue
        found.transfers.append(Transfer(chain, log.address.lower(), fields["from"], fields["to"], fields["value"],
                                        log.block_number, log.log_index, log.tx_hash))
    found.transfers.sort(key=lambda t: (t.block, t.log_index))
    peers = sorted({p for t in found.transfers for p in (t.src, t.dst)} - set(accounts) - known - {ZERO})
    answers = (yield from codes(peers)) if peers else []
    found.has_code = dict(zip(peers, answers, strict=True))
    return found


@dataclass(frozen=True)
class Known:
    """Addresses the audit understands on one chain (lower case), by class, and what to call them."""

    issuer: Mapping[str, str] = field(default_factory=dict)
    venue: Mapping[str, str] = field(default_factory=dict)
    market: Mapping[str, str] = field(default_factory=dict)
    token: Mapping[str, str] = field(default_factory=dict)

    def all(self) -> set[str]:
        return {*self.issuer, *self.venue, *self.market, *self.token}

    def classify(self, address: str, has_code: Mapping[str, bool | None]) -> tuple[str, str]:
        """(class, label) of a counterparty."""
        for kind, names in ((ISSUER, self.issuer), (VENUE, self.venue), (MARKET, self.market), (TOKEN, self.token)):
            if address in names:
                return kind, names[address]
        if address == ZERO:
            return MINT_BURN, "mint or burn"
        code = has_code.get(address)
        if code is None:
            return UNREAD, "code not read"
        return (UNKNOWN, "contract the audit cannot read") if code else (OUTSIDE, "account without code")


@dataclass(frozen=True)
class Peer:
    """What one issuer moved with one counterparty on one chain: USD in and out, and the transactions."""

    issuer: str
    chain: str
    address: str
    kind: str
    label: str
    in_usd: Decimal  # everything priced: hard assets, and issued tokens at par
    out_usd: Decimal
    transfers: int
    first_tx: str
    unvalued: int  # transfers of tokens the audit cannot price (not in the USD figures)
    hard_in_usd: Decimal = Decimal(0)  # hard assets only: cash in and out
    hard_out_usd: Decimal = Decimal(0)

    @property
    def net_in_usd(self) -> Decimal:
        """Cash received beyond cash paid. Issued tokens sent the other way explain nothing: posting one's own
        token as collateral for a loan of cash is exactly the loop an unlisted lender hides."""
        return self.hard_in_usd - self.hard_out_usd

    def as_dict(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "chain": self.chain, "address": self.address, "class": self.kind,
                "label": self.label, "in_usd": self.in_usd, "out_usd": self.out_usd,
                "hard_in_usd": self.hard_in_usd, "hard_out_usd": self.hard_out_usd, "transfers": self.transfers,
                "first_tx": self.first_tx, "unvalued_transfers": self.unvalued}


@dataclass(frozen=True)
class Coverage:
    """Per issuer and chain: the value moved, and the share through counterparties the audit understands."""

    issuer: str
    chain: str
    moved_usd: Decimal
    understood_usd: Decimal

    @property
    def share(self) -> Decimal:
        """1 when nothing was moved: nothing went anywhere the audit cannot follow."""
        return self.understood_usd / self.moved_usd if self.moved_usd else Decimal(1)

    def as_dict(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "chain": self.chain, "moved_usd": self.moved_usd,
                "understood_usd": self.understood_usd, "coverage": self.share}


@dataclass
class Counterparties:
    """The counterparty accounting of an audit: every peer, the coverage, and the window each chain covered."""

    peers: list[Peer] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)  # peers whose code the node did not report

    def unexplained(self, issuer: str | None = None) -> list[Peer]:
        """Unknown contracts that paid an issuer account more than it had paid them: possible undisclosed debt."""
        return [p for p in self.peers if p.kind in (UNKNOWN, UNREAD) and p.net_in_usd > 0
                and (issuer is None or p.issuer == issuer)]

    def unexplained_usd(self, issuer: str) -> Decimal:
        return sum((p.net_in_usd for p in self.unexplained(issuer)), Decimal(0))

    def unvalued_places(self, issuer: str | None = None) -> list[Peer]:
        """Unknown contracts an issuer account sent more value to than came back: assets the tool cannot value."""
        return [p for p in self.peers if p.kind in (UNKNOWN, UNREAD) and p.in_usd < p.out_usd
                and (issuer is None or p.issuer == issuer)]

    def coverage_of(self, issuer: str) -> Decimal:
        """The issuer's coverage over all its chains (value-weighted); 1 when it moved nothing."""
        mine = [c for c in self.coverage if c.issuer == issuer]
        moved = sum((c.moved_usd for c in mine), Decimal(0))
        understood = sum((c.understood_usd for c in mine), Decimal(0))
        return understood / moved if moved else Decimal(1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "windows": {chain: {"from_block": a, "to_block": b} for chain, (a, b) in sorted(self.windows.items())},
            "coverage": [c.as_dict() for c in self.coverage],
            "unexplained_inflows": [p.as_dict() for p in self.unexplained()],
            "unvalued_outflows": [p.as_dict() for p in self.unvalued_places()],
            "peers": [p.as_dict() for p in self.peers],
            "unread": list(self.unread),
        }


Price = tuple[Decimal, int]  # USD per whole token, decimals


def account_flows(found: Sequence[ChainDiscovery], known: Mapping[str, Known], prices: Mapping[str, Price],
                  hard: frozenset[str] = frozenset()) -> Counterparties:
    """Net what each issuer moved with each counterparty (transfers between an issuer's own accounts are moves
    inside it and are left out). `prices`: token key -> (USD per whole token, decimals), the audit's own; `hard`:
    the token keys that are cash (hard assets), netted apart for unexplained inflows."""
    out = Counterparties()
    for chain_found in found:
        chain = chain_found.chain
        out.windows[chain] = (chain_found.from_block, chain_found.to_block)
        chain_known = known.get(chain, Known())
        totals: dict[tuple[str, str], list[Any]] = {}
        for transfer in chain_found.transfers:
            src_issuer = chain_found.accounts.get(transfer.src)
            dst_issuer = chain_found.accounts.get(transfer.dst)
            if src_issuer is not None and src_issuer == dst_issuer:
                continue
            key = token_key(chain, transfer.token)
            price = prices.get(key)
            usd = (Decimal(transfer.amount) / Decimal(10) ** price[1] * price[0]) if price is not None else None
            for issuer, peer, inflow in ((dst_issuer, transfer.src, True), (src_issuer, transfer.dst, False)):
                if issuer is None:
                    continue
                entry = totals.setdefault((issuer, peer), [Decimal(0), Decimal(0), 0, transfer.tx_hash, 0,
                                                           Decimal(0), Decimal(0)])
                entry[2] += 1
                if usd is None:
                    entry[4] += 1
                else:
                    entry[0 if inflow else 1] += usd
                    if key in hard:
                        entry[5 if inflow else 6] += usd
        moved: dict[str, list[Decimal]] = {}
        for (issuer, peer), (in_usd, out_usd, count, first_tx, unvalued, hard_in, hard_out) in sorted(totals.items()):
            kind, label = chain_known.classify(peer, chain_found.has_code)
            if kind == UNREAD and peer not in out.unread:
                out.unread.append(peer)
            out.peers.append(Peer(issuer, chain, peer, kind, label, in_usd, out_usd, count, first_tx, unvalued,
                                  hard_in, hard_out))
            sums = moved.setdefault(issuer, [Decimal(0), Decimal(0)])
            sums[0] += in_usd + out_usd
            if kind in UNDERSTOOD:
                sums[1] += in_usd + out_usd
        out.coverage += [Coverage(issuer, chain, total, understood)
                         for issuer, (total, understood) in sorted(moved.items())]
        for issuer in sorted(set(chain_found.accounts.values()) - set(moved)):
            out.coverage.append(Coverage(issuer, chain, Decimal(0), Decimal(0)))
    out.peers.sort(key=lambda p: (p.issuer, p.chain, p.address))
    out.coverage.sort(key=lambda c: (c.issuer, c.chain))
    return out
