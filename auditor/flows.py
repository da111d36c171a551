"""Pure flow analysis: decoded transfer and lending events -> flow graph, recursive borrow loops, mint provenance."""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import networkx as nx

from auditor.model import token_key

ZERO_ADDRESS = "0x" + "0" * 40

# Event kinds (FlowEvent.kind).
TRANSFER = "transfer"
MINT = "mint"
BURN = "burn"
BORROW = "borrow"
REPAY = "repay"
SUPPLY = "supply"
WITHDRAW = "withdraw"
SUPPLY_COLLATERAL = "supply_collateral"
WITHDRAW_COLLATERAL = "withdraw_collateral"
LIQUIDATE = "liquidate"
BRIDGE_LOCK = "bridge_lock"
BRIDGE_MINT = "bridge_mint"
KINDS = (TRANSFER, MINT, BURN, BORROW, REPAY, SUPPLY, WITHDRAW, SUPPLY_COLLATERAL, WITHDRAW_COLLATERAL,
         LIQUIDATE, BRIDGE_LOCK, BRIDGE_MINT)
_KIND_SET = frozenset(KINDS)
LENDING_KINDS = frozenset({BORROW, REPAY, SUPPLY, WITHDRAW, SUPPLY_COLLATERAL, WITHDRAW_COLLATERAL, LIQUIDATE})

# Node roles (NodeLabel.role).
ACCOUNT = "account"  # an address an issuer controls (its spec's accounts)
ISSUER_CONTRACT = "issuer_contract"  # an issued token's own contract: a vault-style issuer's deposits land here
ESCROW = "escrow"  # holds canonical tokens that back bridged copies
VENUE = "venue"  # a lending venue contract
MARKET = "market"  # one lending market of a venue (graph nodes only)
MINT_NODE = "mint"  # the zero address
EXTERNAL = "external"  # everything else
TRACKED_ROLES = frozenset({ACCOUNT, ISSUER_CONTRACT, ESCROW})

# Where the money that paid for something came from, as shares that sum to 1.
BUCKETS = ("external", "borrowed", "prior", "recycled", "unpaid")
BUCKET_HELP = {
    "external": "deposits from outside the issuers' accounts within the window",
    "borrowed": "borrowed from a lending market",
    "prior": "held before the window (or moved without a visible source)",
    "recycled": "money that had already paid for a mint of the same token",
    "unpaid": "no payment in the minting transaction (operator mint)",
}

Mix = tuple[Fraction, Fraction, Fraction, Fraction, Fraction]


def _pure(index: int) -> Mix:
    values = [Fraction(0)] * len(BUCKETS)
    values[index] = Fraction(1)
    return (values[0], values[1], values[2], values[3], values[4])


EXTERNAL_MIX, BORROWED_MIX, PRIOR_MIX, RECYCLED_MIX, UNPAID_MIX = (_pure(i) for i in range(len(BUCKETS)))
_NO_ISSUERS: frozenset[str] = frozenset()


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowEvent:
    """One movement of tokens, decoded from a log: a Transfer, or a lending event with its market.

    src/dst are where the tokens went from/to: for lending events the venue contract is one side
    (borrow: venue -> receiver; supply_collateral: caller -> venue; liquidate: venue -> liquidator,
    amount = collateral seized). `account` is the lending position's owner (onBehalf / borrower).
    """

    chain: str
    block: int
    log_index: int
    tx_hash: str
    kind: str
    token: str
    token_key: str
    amount: int  # raw token units
    decimals: int
    src: str
    dst: str
    market: str | None = None
    account: str | None = None
    symbol: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KIND_SET:
            raise ValueError(f"unknown flow event kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.amount < 0:
            raise ValueError(f"negative amount {self.amount} in {self.kind} event")

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "block": self.block, "log_index": self.log_index, "tx": self.tx_hash,
                "kind": self.kind, "token": self.token, "symbol": self.symbol, "raw": str(self.amount),
                "units": _units(self.amount, self.decimals), "src": self.src, "dst": self.dst,
                "market": self.market, "account": self.account}


@dataclass(frozen=True)
class NodeLabel:
    role: str  # ACCOUNT | ISSUER_CONTRACT | ESCROW | VENUE | MINT_NODE | EXTERNAL
    name: str  # shown in reports (spec label, token symbol, venue name)
    issuer: str | None = None  # spec id for issuer accounts, issued tokens and escrows


@dataclass(frozen=True)
class TokenLabel:
    symbol: str
    decimals: int
    issuer: str | None = None  # spec id when the token is issued by an issuer of the trace
    bridged: bool = False  # a bridged copy: minted by a bridge against a lock in an escrow


@dataclass(frozen=True)
class MarketLabel:
    venue: str
    loan_token: str  # token key
    collateral_token: str  # token key


@dataclass
class Labelling:
    """Who is who: addresses ("chain:0xlower" keys) with roles, tokens and markets, from the specs and registry."""

    addresses: dict[str, NodeLabel] = field(default_factory=dict)
    tokens: dict[str, TokenLabel] = field(default_factory=dict)
    markets: dict[str, MarketLabel] = field(default_factory=dict)

    def node(self, chain: str, address: str) -> NodeLabel:
        if address.lower() == ZERO_ADDRESS:
            return NodeLabel(MINT_NODE, "mint")
        return self.addresses.get(token_key(chain, address), NodeLabel(EXTERNAL, "external"))

    def symbol(self, key: str) -> str:
        info = self.tokens.get(key)
        return info.symbol if info is not None else key.split(":", 1)[-1][:10]

    def issuer_symbol(self, issuer: str) -> str:
        return next((t.symbol for t in self.tokens.values() if t.issuer == issuer and not t.bridged), issuer)

    def market_name(self, key: str) -> str:
        market = self.markets.get(key)
        chain = key.split(":", 1)[0]
        if market is None:
            return key
        return (f"{market.venue} {self.symbol(market.collateral_token)}/{self.symbol(market.loan_token)} "
                f"market on {chain}")


# ---------------------------------------------------------------------------------------------
# Numbers for output: exact strings, never floats
# ---------------------------------------------------------------------------------------------


def _units(raw: int, decimals: int) -> str:
    with localcontext() as ctx:
        ctx.prec = max(40, len(str(abs(raw))) + decimals + 2)
        return _plain(Decimal(raw).scaleb(-decimals))


def _num(value: Fraction) -> str:
    """A ratio or a sum across tokens: exact when it terminates within 18 decimals, else rounded there."""
    with localcontext() as ctx:
        ctx.prec = max(60, len(str(abs(value.numerator))) + 20)
        quantized = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-18))
        return _plain(quantized)


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    token_key: str
    symbol: str
    raw: int
    decimals: int
    issuer: str | None = None

    @property
    def units(self) -> Fraction:
        return Fraction(self.raw, 10**self.decimals)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"token": self.token_key, "symbol": self.symbol, "raw": str(self.raw),
                               "units": _units(self.raw, self.decimals)}
        if self.issuer is not None:
            out["issuer"] = self.issuer
        return out


@dataclass(frozen=True)
class Where:
    chain: str
    block: int
    log_index: int
    tx_hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "block": self.block, "log_index": self.log_index, "tx": self.tx_hash}


@dataclass(frozen=True)
class Posted:
    where: Where
    amount: Amount
    market: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.where.as_dict(), **self.amount.as_dict(), "market": self.market}


@dataclass(frozen=True)
class Iteration:
    """One turn of a loop: a borrow against collateral the loop built, and what it minted."""

    index: int
    where: Where
    market: str
    market_name: str
    account: str
    borrowed: Amount
    minted: tuple[Amount, ...]
    collateral: tuple[Posted, ...]

    @property
    def minted_units(self) -> Fraction:
        return sum((m.units for m in self.minted), Fraction(0))

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, **self.where.as_dict(), "market": self.market, "market_name": self.market_name,
                "account": self.account, "borrowed": self.borrowed.as_dict(),
                "minted": [m.as_dict() for m in self.minted], "minted_units": _num(self.minted_units),
                "collateral": [c.as_dict() for c in self.collateral]}


@dataclass(frozen=True)
class LoopMint:
    where: Where
    amount: Amount
    recipient: str
    from_outside: Fraction  # units of this mint's payment that did not come from the loop itself

    def as_dict(self) -> dict[str, Any]:
        return {**self.where.as_dict(), **self.amount.as_dict(), "recipient": self.recipient,
                "paid_from_outside_units": _num(self.from_outside)}


@dataclass(frozen=True)
class Loop:
    """A recursive borrow loop: borrow -> mint -> post as collateral -> borrow, repeated in the window."""

    id: str
    path: tuple[str, ...]  # one turn of the repeated path, in words (the shortest cycle)
    cycles: tuple[tuple[str, ...], ...]  # every elementary cycle of the loop's stages (up to 8), shortest first
    issuers: tuple[str, ...]
    venues: tuple[str, ...]
    markets: tuple[str, ...]
    chains: tuple[str, ...]
    iterations: tuple[Iteration, ...]
    mints: tuple[LoopMint, ...]
    minted_by_token: tuple[Amount, ...]
    minted_by_issuer: tuple[tuple[str, str, Fraction], ...]  # (issuer, symbol, units) over all its deployments
    borrowed_by_token: tuple[Amount, ...]
    total_minted: Fraction  # units, summed across tokens (the loop's tokens claim the same unit value)
    total_borrowed: Fraction
    money_in: Fraction  # units that entered the loop from outside it: deposits, borrows elsewhere, prior funds

    @property
    def leverage(self) -> Fraction | None:
        return self.total_minted / self.money_in if self.money_in else None

    def as_dict(self) -> dict[str, Any]:
        leverage = self.leverage
        return {
            "id": self.id, "path": list(self.path), "cycles": [list(c) for c in self.cycles],
            "issuers": list(self.issuers), "venues": list(self.venues),
            "markets": list(self.markets), "chains": list(self.chains),
            "iteration_count": len(self.iterations),
            "iterations": [i.as_dict() for i in self.iterations],
            "mints": [m.as_dict() for m in self.mints],
            "minted_by_token": [
                {**a.as_dict(), "leverage": _num(a.units / self.money_in) if self.money_in else None}
                for a in self.minted_by_token
            ],
            "minted_by_issuer": [
                {"issuer": issuer, "symbol": symbol, "units": _num(units),
                 "leverage": _num(units / self.money_in) if self.money_in else None}
                for issuer, symbol, units in self.minted_by_issuer
            ],
            "borrowed_by_token": [a.as_dict() for a in self.borrowed_by_token],
            "total_minted_units": _num(self.total_minted), "total_borrowed_units": _num(self.total_borrowed),
            "external_in_units": _num(self.money_in),
            "leverage": _num(leverage) if leverage is not None else None,
        }


@dataclass(frozen=True)
class MintProvenance:
    """Where the funds that paid for one mint of the audited token came from."""

    where: Where
    amount: Amount
    recipient: str
    recipient_name: str
    paid: tuple[tuple[Amount, str, str], ...]  # (payment, payer name, payer address)
    shares: dict[str, Fraction]  # bucket -> share of the payment
    loop: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.where.as_dict(), **self.amount.as_dict(), "recipient": self.recipient,
                "recipient_name": self.recipient_name,
                "paid": [{**a.as_dict(), "payer": name, "payer_address": address}
                         for a, name, address in self.paid],
                "shares": {bucket: _num(share) for bucket, share in self.shares.items()},
                "borrowed_units": _num(self.amount.units * self.shares["borrowed"]), "loop": self.loop}


# ---------------------------------------------------------------------------------------------
# FIFO bookkeeping
# ---------------------------------------------------------------------------------------------


class _Lot:
    """Some units of one token held somewhere, with where their money came from and the step that made them."""

    __slots__ = ("amount", "mix", "origin", "spent_by")

    def __init__(self, amount: int, mix: Mix, origin: int | None = None,
                 spent_by: frozenset[str] = _NO_ISSUERS) -> None:
        self.amount = amount
        self.mix = mix
        self.origin = origin
        self.spent_by = spent_by  # issuers whose mints this money already paid for

    def part(self, amount: int) -> _Lot:
        return _Lot(amount, self.mix, self.origin, self.spent_by)


class _Portion:
    """What an address received in the current transaction, not yet claimed by a mint, a swap or a pass-through."""

    __slots__ = ("lot", "payer", "remaining", "scale", "source", "token")

    def __init__(self, token: str, scale: int, lot: _Lot, payer: str, source: tuple[str, int] = ("", 0)) -> None:
        self.token = token
        self.scale = scale
        self.lot = lot
        self.remaining = lot.amount
        self.payer = payer
        self.source = source  # the transfer it came with (tx hash, log index): one payment, maybe several lots


@dataclass
class Step:
    """A node of the causal graph: an event that turned some funds into others (borrow, mint, post, ...)."""

    id: int
    kind: str  # borrow | mint | post | lock | bridge_mint | swap
    event: FlowEvent
    stage: tuple[str, str]  # what repeats in a loop: (kind, market / issuer / token)
    issuer: str | None
    mix: Mix
    inputs: dict[int | None, Fraction]  # units consumed, by the step that produced them (None: no step)
    paid: list[tuple[str, int, int, str]] = field(default_factory=list)  # token key, raw, decimals, payer key


NEARBY_BLOCKS = 5  # how many blocks after a payment an operator's mint may still claim it
MAX_UNCLAIMED = 64  # payments kept claimable per chain (the newest)


def _blend(parts: Sequence[tuple[Fraction, Mix]]) -> Mix:
    total = sum((w for w, _ in parts), Fraction(0))
    if not parts or total == 0:
        return UNPAID_MIX
    first = parts[0][1]
    if all(m == first for _, m in parts):
        return first
    sums = [sum((w * m[i] for w, m in parts), Fraction(0)) / total for i in range(len(BUCKETS))]
    return (sums[0], sums[1], sums[2], sums[3], sums[4])


class _Engine:
    """Replays the events transaction by transaction, moving FIFO lots between the issuers' holders."""

    def __init__(self, labelling: Labelling, events: Sequence[FlowEvent], pairs: dict[int, int],
                 hard_pairs: dict[int, int] | None = None) -> None:
        self.lab = labelling
        self.events = events
        self.pairs = pairs  # bridge mint seq -> lock seq
        self.hard_pairs = dict(hard_pairs or {})  # hard asset arriving over a bridge -> its departure
        self.departing = set(self.hard_pairs.values())
        self.departed: dict[int, list[_Lot]] = {}
        self.tracked = {k for k, v in labelling.addresses.items() if v.role in TRACKED_ROLES}
        self.vaults: dict[tuple[str, str], list[str]] = {}
        self.accounts: dict[tuple[str, str], list[str]] = {}
        for key, info in labelling.tokens.items():
            if info.issuer is not None and not info.bridged:
                self.vaults.setdefault((key.split(":", 1)[0], info.issuer), []).append(key)
        for key, label in labelling.addresses.items():
            if label.role == ACCOUNT and label.issuer is not None:
                self.accounts.setdefault((key.split(":", 1)[0], label.issuer), []).append(key)
        self.queues: dict[tuple[str, str], deque[_Lot]] = {}
        self.steps: list[Step] = []
        self.dag = nx.DiGraph()
        self.lock_steps: dict[int, int] = {}
        self.posts_pending: dict[tuple[str, str], list[int]] = {}
        self.posts_all: dict[tuple[str, str], list[int]] = {}
        self.inflows: dict[str, list[_Portion]] = {}
        self.unclaimed: dict[str, list[tuple[int, str, _Portion]]] = {}  # chain -> (block, payee, payment)
        self.last_tx: tuple[str, int] | None = None
        self.tx_minted: dict[str, Fraction] = {}
        self.prior_outflows = 0
        self.unpaired_bridge_mints = 0

    # ------------------------------------------------------------------ ordering

    def run(self) -> None:
        """Process every chain's transactions in order; a paired bridge mint waits for its lock on the other chain.

        Lots never cross chains except through bridges, so any interleaving that keeps each chain's
        order and puts each lock before its bridge mint gives the same result: no timestamps needed.
        """
        pending: dict[str, deque[list[int]]] = {}
        for chain, txs in _transactions(self.events).items():
            pending[chain] = deque(txs)
        done_locks: set[int] = set()
        while any(pending.values()):
            progressed = False
            for chain in sorted(pending):
                queue = pending[chain]
                while queue and not self._blocked(queue[0], done_locks):
                    tx = queue.popleft()
                    self._run_tx(tx)
                    done_locks.update(tx)
                    progressed = True
            if not progressed:
                # Pairs that cross in opposite directions cannot both be right: drop the first waiting one.
                head = next(q[0] for _, q in sorted(pending.items()) if q)
                for seq in head:
                    for pairs in (self.pairs, self.hard_pairs):
                        if pairs.get(seq) not in (None, *done_locks):
                            del pairs[seq]

    def _keep_unclaimed(self) -> None:
        """What issuer-side holders paid to someone else in the transaction just done and no mint claimed stays
        claimable by a mint in the next NEARBY_BLOCKS blocks of that chain (an operator mints once the payment has
        arrived)."""
        if self.last_tx is None:
            return
        chain, block = self.last_tx
        kept = self.unclaimed.setdefault(chain, [])
        for payee, portions in self.inflows.items():
            for portion in portions:
                if portion.remaining and payee != portion.payer:
                    kept.append((block, payee, portion))
        self.unclaimed[chain] = [k for k in kept if k[2].remaining and block - k[0] <= NEARBY_BLOCKS][-MAX_UNCLAIMED:]

    def _blocked(self, tx: list[int], done_locks: set[int]) -> bool:
        return any((seq in self.pairs and self.pairs[seq] not in done_locks)
                   or (seq in self.hard_pairs and self.hard_pairs[seq] not in done_locks) for seq in tx)

    def _run_tx(self, tx: list[int]) -> None:
        self._keep_unclaimed()
        first = self.events[tx[0]]
        self.last_tx = (first.chain, first.block)
        self.inflows = {}
        self.tx_minted = {}
        for seq in tx:
            event = self.events[seq]
            issuer = self._mint_issuer(event)
            if issuer is not None:
                self.tx_minted[issuer] = self.tx_minted.get(issuer, Fraction(0)) + Fraction(
                    event.amount, 10**event.decimals)
        for seq in self._payments_first(tx):
            self._apply(seq, self.events[seq])

    def _mint_issuer(self, event: FlowEvent) -> str | None:
        """The issuer whose token this event mints (not bridged copies), else None."""
        if event.kind not in (MINT, TRANSFER) or event.src.lower() != ZERO_ADDRESS:
            return None
        info = self.lab.tokens.get(event.token_key)
        return info.issuer if info is not None and not info.bridged else None

    def _pays(self, event: FlowEvent, issuer: str, mint: FlowEvent) -> bool:
        """Whether `event` may pay for `mint` (same transaction): a deposit into the issuer's token contract, or
        a payment by the mint's recipient or an account of the issuer to someone else."""
        if event.kind != TRANSFER:
            return False
        info = self.lab.tokens.get(event.token_key)
        if info is not None and info.issuer == issuer:
            return False
        dst = token_key(event.chain, event.dst)
        if dst in self.vaults.get((event.chain, issuer), ()):
            return True
        payers = set(self.accounts.get((event.chain, issuer), ())) | {token_key(mint.chain, mint.dst)}
        return token_key(event.chain, event.src) in payers and dst not in payers

    def _payments_first(self, tx: list[int]) -> list[int]:
        """Move a mint's payment in front of it when the contract minted first (rare, but legal): a deposit into
        the token contract when one follows and none came before; else any payment when none came before."""
        if not self.tx_minted:
            return tx
        order = list(tx)
        index = 0
        while index < len(order):
            event = self.events[order[index]]
            issuer = self._mint_issuer(event)
            if issuer is None:
                index += 1
                continue
            vault = self.vaults.get((event.chain, issuer), ())

            def deposit(seq: int, vault: tuple[str, ...] | list[str] = vault) -> bool:
                found = self.events[seq]
                return found.kind == TRANSFER and token_key(found.chain, found.dst) in vault

            before = order[:index]
            later = []
            for s in order[index + 1:]:
                if self._mint_issuer(self.events[s]) == issuer:
                    break
                if self._pays(self.events[s], issuer, event):
                    later.append(s)
            # A deposit into the token contract is the payment itself (what paid a router that then deposited is
            # that deposit's history): it moves unless one came before.
            deposits = [s for s in later if deposit(s)]
            if any(deposit(s) for s in before):
                later = []
            elif deposits:
                later = deposits
            elif any(self._pays(self.events[s], issuer, event) for s in before):
                later = []
            if later:
                rest = [s for s in order[index:] if s not in later]
                order = order[:index] + later + rest
                index += len(later)
            index += 1
        return order

    # ------------------------------------------------------------------ one event

    def _apply(self, seq: int, event: FlowEvent) -> None:
        kind = event.kind
        chain = event.chain
        src = token_key(chain, event.src)
        dst = token_key(chain, event.dst)
        scale = 10**event.decimals
        if seq in self.hard_pairs:  # cash arriving over a bridge: what left the other chain, with its history
            lots = self.departed.pop(self.hard_pairs[seq], None) or [_Lot(event.amount, EXTERNAL_MIX)]
            self._deliver(dst, event, lots, src, scale)
            return
        if kind in (MINT, BRIDGE_MINT) or (kind == TRANSFER and event.src.lower() == ZERO_ADDRESS):
            self._mint(seq, event, dst, scale)
            return
        if kind == BORROW:
            self._borrow(event, dst)
            return
        if kind == WITHDRAW:
            lots = self._take_position("supply", event)
        elif kind in (WITHDRAW_COLLATERAL, LIQUIDATE):
            lots = self._take_position("collateral", event)
        else:
            lots = self._take_from(src, event, event.amount, scale)
        if seq in self.departing:  # leaving for another chain over a bridge: the arrival there takes these
            self.departed[seq] = [lot.part(lot.amount) for lot in lots]
        if kind == SUPPLY:
            self._put_position("supply", event, lots)
        elif kind == SUPPLY_COLLATERAL:
            self._post(event, src, lots, scale)
        elif kind in (REPAY, BURN) or (kind == TRANSFER and event.dst.lower() == ZERO_ADDRESS):
            info = self.lab.tokens.get(event.token_key)
            if info is not None and info.bridged and info.issuer is not None:  # debited to be credited elsewhere
                inputs, mix = self._consumed(lots, scale)
                self.lock_steps[seq] = self._step("lock", event, ("lock", info.issuer), info.issuer, mix, inputs).id
            return
        elif kind == BRIDGE_LOCK:
            self._lock(seq, event, src, dst, lots, scale)
        else:
            self._deliver(dst, event, lots, src, scale)

    def _take(self, key: tuple[str, str], amount: int) -> list[_Lot]:
        queue = self.queues.get(key)
        out: list[_Lot] = []
        need = amount
        while need and queue:
            lot = queue[0]
            if lot.amount <= need:
                queue.popleft()
                out.append(lot)
                need -= lot.amount
            else:
                out.append(lot.part(need))
                lot.amount -= need
                need = 0
        if need:
            # More left than the window shows coming in: funds the holder had before the window.
            self.prior_outflows += 1
            out.append(_Lot(need, PRIOR_MIX))
        return out

    def _take_from(self, src: str, event: FlowEvent, amount: int, scale: int) -> list[_Lot]:
        if src not in self.tracked:
            return self._pass_through(src, event, amount, scale)
        lots = self._take_returned(src, event, amount) if src in self.inflows else []
        need = amount - sum(lot.amount for lot in lots)
        return lots + self._take((src, event.token_key), need) if need else lots

    def _take_returned(self, src: str, event: FlowEvent, amount: int) -> list[_Lot]:
        """Funds sent back in the same transaction to whoever just sent them (a flash loan, a refund) are those
        funds, not the oldest in the queue: FIFO would swap their history with older money's."""
        dst = token_key(event.chain, event.dst)
        queue = self.queues.get((src, event.token_key))
        out: list[_Lot] = []
        need = amount
        for portion in self.inflows[src]:
            if not need or queue is None:
                break
            lot = portion.lot
            if portion.payer != dst or portion.token != event.token_key or not portion.remaining:
                continue
            take = min(need, portion.remaining, lot.amount)
            if not take or not any(held is lot for held in queue):
                continue
            if take == lot.amount:
                queue.remove(lot)
                out.append(lot)
            else:
                lot.amount -= take
                out.append(lot.part(take))
            portion.remaining -= take
            need -= take
        return out

    def _pass_through(self, src: str, event: FlowEvent, amount: int, scale: int) -> list[_Lot]:
        """Funds from an address we do not follow: what it received in this transaction (a router, a bundler,
        a pool) passes on with its history; anything else is new money from outside."""
        out: list[_Lot] = []
        need = amount
        portions = self.inflows.get(src)
        if portions:
            for portion in portions:
                if not need:
                    break
                if portion.token != event.token_key or not portion.remaining:
                    continue
                take = min(need, portion.remaining)
                portion.remaining -= take
                need -= take
                out.append(portion.lot.part(take))
            if need:
                others = [p for p in portions if p.remaining and p.token != event.token_key]
                if others:
                    out.append(self._swap(event, others, need, scale))
                    need = 0
        if need:
            out.append(_Lot(need, EXTERNAL_MIX))
        return out

    def _swap(self, event: FlowEvent, paid: list[_Portion], amount: int, scale: int) -> _Lot:
        """Another token came back from an address that was paid in this transaction: it was bought with that."""
        parts = [(Fraction(p.remaining, p.scale), p.lot.mix) for p in paid]
        inputs: dict[int | None, Fraction] = {}
        spent: frozenset[str] = _NO_ISSUERS
        for portion in paid:
            inputs[portion.lot.origin] = inputs.get(portion.lot.origin, Fraction(0)) + Fraction(
                portion.remaining, portion.scale)
            spent |= portion.lot.spent_by
        mix = _blend(parts)
        origin = None
        if any(o is not None for o in inputs):
            step = self._step("swap", event, ("swap", event.token_key), None, mix, inputs)
            step.paid = [(p.token, p.remaining, _digits(p.scale), p.payer) for p in paid]
            origin = step.id
        for portion in paid:
            portion.remaining = 0
        return _Lot(amount, mix, origin, spent)

    def _deliver(self, dst: str, event: FlowEvent, lots: list[_Lot], payer: str, scale: int) -> None:
        if dst in self.tracked:
            key = (dst, event.token_key)
            queue = self.queues.get(key)
            if queue is None:
                queue = self.queues[key] = deque()
            queue.extend(lots)
        portions = self.inflows.get(dst)
        if portions is None:
            portions = self.inflows[dst] = []
        portions.extend(_Portion(event.token_key, scale, lot, payer, (event.tx_hash, event.log_index)) for lot in lots)

    def _position_key(self, what: str, event: FlowEvent) -> tuple[str, str] | None:
        if event.account is None:
            return None
        account = token_key(event.chain, event.account)
        if account not in self.tracked:
            return None
        return (f"{what}|{event.market or event.dst}|{account}", event.token_key)

    def _take_position(self, what: str, event: FlowEvent) -> list[_Lot]:
        key = self._position_key(what, event)
        if key is None:
            return [_Lot(event.amount, EXTERNAL_MIX)]
        return self._take(key, event.amount)

    def _put_position(self, what: str, event: FlowEvent, lots: list[_Lot]) -> None:
        key = self._position_key(what, event)
        if key is not None:
            queue = self.queues.get(key)
            if queue is None:
                queue = self.queues[key] = deque()
            queue.extend(lots)

    # ------------------------------------------------------------------ steps

    def _step(self, kind: str, event: FlowEvent, stage: tuple[str, str], issuer: str | None, mix: Mix,
              inputs: dict[int | None, Fraction]) -> Step:
        step = Step(len(self.steps), kind, event, stage, issuer, mix, inputs)
        self.steps.append(step)
        self.dag.add_node(step.id)
        total = sum(inputs.values(), Fraction(0))
        for origin, amount in inputs.items():
            if origin is not None and total:
                self.dag.add_edge(origin, step.id, kind="funds", share=amount / total)
        return step

    @staticmethod
    def _consumed(lots: Iterable[_Lot], scale: int) -> tuple[dict[int | None, Fraction], Mix]:
        inputs: dict[int | None, Fraction] = {}
        parts: list[tuple[Fraction, Mix]] = []
        for lot in lots:
            weight = Fraction(lot.amount, scale)
            inputs[lot.origin] = inputs.get(lot.origin, Fraction(0)) + weight
            parts.append((weight, lot.mix))
        return inputs, _blend(parts)

    def _mint(self, seq: int, event: FlowEvent, dst: str, scale: int) -> None:
        info = self.lab.tokens.get(event.token_key)
        if info is None or info.issuer is None:
            # A token nobody in the trace issues (a hard asset's own mint): new money from outside.
            self._deliver(dst, event, [_Lot(event.amount, EXTERNAL_MIX)], "mint", scale)
            return
        units = Fraction(event.amount, scale)
        inputs: dict[int | None, Fraction]
        if info.bridged or event.kind == BRIDGE_MINT:
            lock = self.lock_steps.get(self.pairs.get(seq, -1))
            if lock is None:
                self.unpaired_bridge_mints += 1
                mix, inputs = PRIOR_MIX, {None: units}
            else:
                mix, inputs = self.steps[lock].mix, {lock: units}
            step = self._step("bridge_mint", event, ("bridge_mint", info.issuer), info.issuer, mix, inputs)
            self._deliver(dst, event, [_Lot(event.amount, mix, step.id)], "mint", scale)
            return
        issuer = info.issuer
        payments, capped = self._payments(event.chain, issuer, dst, event.block, units)
        remaining_minted = self.tx_minted.get(issuer, units)
        share = units / remaining_minted if remaining_minted > units else Fraction(1)
        self.tx_minted[issuer] = max(Fraction(0), remaining_minted - units)
        claimed: list[tuple[_Portion, int]] = []
        room = units  # for payments from earlier transactions: no more than the mint is worth
        for portion in payments:
            if capped:
                take = min(portion.remaining, int(room * portion.scale))
                room -= Fraction(take, portion.scale)
            else:
                take = portion.remaining if share == 1 else portion.remaining * share.numerator // share.denominator
            portion.remaining -= take
            if take:
                claimed.append((portion, take))
        inputs = {}
        parts: list[tuple[Fraction, Mix]] = []
        for portion, take in claimed:
            weight = Fraction(take, portion.scale)
            inputs[portion.lot.origin] = inputs.get(portion.lot.origin, Fraction(0)) + weight
            parts.append((weight, RECYCLED_MIX if issuer in portion.lot.spent_by else portion.lot.mix))
        mix = _blend(parts)
        step = self._step("mint", event, ("mint", issuer), issuer, mix, inputs)
        step.paid = [(p.token, take, _digits(p.scale), p.payer) for p, take in claimed]
        for portion, _take in claimed:
            # The deposit now sits with the issuer, spent once: if it comes back out and pays for another
            # mint of the same token, that mint is recycled money, and it descends from this one.
            portion.lot.origin = step.id
            portion.lot.spent_by = portion.lot.spent_by | {issuer}
        self._deliver(dst, event, [_Lot(event.amount, mix, step.id)], "mint", scale)

    def _payments(self, chain: str, issuer: str, recipient: str, block: int, units: Fraction
                  ) -> tuple[list[_Portion], bool]:
        """What paid for a mint of `issuer`'s token to `recipient`, never the issuer's own tokens; the first of:
        1. this transaction's deposits into the issuer's token contract (the token is its vault);
        2. what the recipient, or an account of the issuer, paid in this transaction to anyone outside the
           issuer's accounts (a separate minting contract, a custodian, a router);
        3. what outsiders sent to the issuer's accounts in this transaction (custody-style issuers);
        4. what the recipient paid to another account of the issuer in this transaction (a custodian account);
        5. what the recipient, or an account of the issuer, paid out in a transaction of the last few blocks
           that no mint has claimed yet (an operator mints after the payment arrived); else what the recipient
           paid to another account of the issuer then (a custodian the spec lists). Such payments are claimed
           up to the mint's units (True in the result), the one of exactly the mint's units first, else oldest
           first: one payment, one mint."""
        own = {k for k, t in self.lab.tokens.items() if t.issuer == issuer}
        found = [p for key in self.vaults.get((chain, issuer), ()) for p in self.inflows.get(key, ())
                 if p.remaining and p.token not in own]
        if found:
            return found, False
        accounts = set(self.accounts.get((chain, issuer), ()))
        payers = accounts | {recipient}
        sent = [(payee, p) for payee, portions in self.inflows.items() if payee.startswith(chain + ":")
                for p in portions if p.remaining and p.token not in own and p.payer in payers and p.payer != payee]
        found = [p for payee, p in sent if payee not in payers]
        if found:
            return found, False
        found = [p for key in accounts for p in self.inflows.get(key, ())
                 if p.remaining and p.token not in own and self._holder_issuer(p.payer) != issuer]
        if found:
            return found, False
        found = [p for payee, p in sent if p.payer == recipient]
        if found:
            return found, False
        nearby = [(payee, p) for seen, payee, p in self.unclaimed.get(chain, ()) if block - seen <= NEARBY_BLOCKS
                  and p.remaining and p.token not in own and p.payer in payers]
        outside = [p for payee, p in nearby if payee not in payers]
        inside = [p for payee, p in nearby if payee in payers and p.payer == recipient]
        # The payment of exactly what was minted is that mint's (an operator mints what arrived); else the oldest
        # payments first.
        # The newest of those, paid out of the issuer's accounts before one paid between them: the payment comes
        # last, after the hops that brought the money (same amounts).
        for candidates in (outside, inside):
            payments: dict[tuple[str, int], list[_Portion]] = {}
            for portion in candidates:
                payments.setdefault(portion.source, []).append(portion)
            exact = [parts for parts in payments.values()
                     if sum((Fraction(p.remaining, p.scale) for p in parts), Fraction(0)) == units]
            if exact:
                return exact[-1], True
        return outside or inside, True

    def _holder_issuer(self, key: str) -> str | None:
        label = self.lab.addresses.get(key)
        return label.issuer if label is not None else None

    def _borrow(self, event: FlowEvent, dst: str) -> None:
        scale = 10**event.decimals
        account = token_key(event.chain, event.account) if event.account else ""
        venue = token_key(event.chain, event.src)
        if account not in self.tracked and dst not in self.tracked:
            self._deliver(dst, event, [_Lot(event.amount, BORROWED_MIX)], venue, scale)
            return
        market = event.market or venue
        step = self._step("borrow", event, ("borrow", market), self._holder_issuer(account), BORROWED_MIX, {})
        position = (market, account)
        posts = self.posts_pending.pop(position, None) or self.posts_all.get(position, [])
        total = sum((Fraction(self.steps[p].event.amount, 10**self.steps[p].event.decimals) for p in posts),
                    Fraction(0))
        for post in posts:
            posted = self.steps[post].event
            share = Fraction(posted.amount, 10**posted.decimals) / total if total else Fraction(0)
            self.dag.add_edge(post, step.id, kind="collateral", share=share)
        self._deliver(dst, event, [_Lot(event.amount, BORROWED_MIX, step.id)], venue, scale)

    def _post(self, event: FlowEvent, src: str, lots: list[_Lot], scale: int) -> None:
        self._put_position("collateral", event, lots)
        account = token_key(event.chain, event.account) if event.account else ""
        if account not in self.tracked and src not in self.tracked:
            return
        inputs, mix = self._consumed(lots, scale)
        market = event.market or token_key(event.chain, event.dst)
        step = self._step("post", event, ("collateral", market), self._holder_issuer(account or src), mix, inputs)
        self.posts_pending.setdefault((market, account), []).append(step.id)
        self.posts_all.setdefault((market, account), []).append(step.id)

    def _lock(self, seq: int, event: FlowEvent, src: str, dst: str, lots: list[_Lot], scale: int) -> None:
        info = self.lab.tokens.get(event.token_key)
        if info is not None and info.issuer is not None:
            inputs, mix = self._consumed(lots, scale)
            step = self._step("lock", event, ("lock", info.issuer), info.issuer, mix, inputs)
            self.lock_steps[seq] = step.id
        self._deliver(dst, event, lots, src, scale)


def _digits(scale: int) -> int:
    return len(str(scale)) - 1


# ---------------------------------------------------------------------------------------------
# Normalising, pairing and the flow graph
# ---------------------------------------------------------------------------------------------


def _order(event: FlowEvent) -> tuple[str, int, int]:
    return (event.chain, event.block, event.log_index)


def normalize(events: Iterable[FlowEvent]) -> tuple[list[FlowEvent], int]:
    """Events in (chain, block, log index) order, without the Transfer logs a lending event already describes.

    A Morpho borrow emits Borrow and the loan token's Transfer(venue -> receiver); the lending event
    carries the market and the position's owner, so it is kept and the Transfer dropped.
    Returns the events and how many Transfers were dropped.
    """
    ordered = sorted(events, key=_order)
    lending: Counter[tuple[str, str, str, int, str, str]] = Counter(
        (e.chain, e.tx_hash, e.token_key, e.amount, e.src.lower(), e.dst.lower())
        for e in ordered if e.kind in LENDING_KINDS
    )
    if not lending:
        return ordered, 0
    kept: list[FlowEvent] = []
    dropped = 0
    for event in ordered:
        if event.kind == TRANSFER:
            key = (event.chain, event.tx_hash, event.token_key, event.amount, event.src.lower(), event.dst.lower())
            if lending[key] > 0:
                lending[key] -= 1
                dropped += 1
                continue
        kept.append(event)
    return kept, dropped


def _transactions(events: Sequence[FlowEvent]) -> dict[str, list[list[int]]]:
    """Event indexes grouped by chain and transaction, each chain in block order."""
    out: dict[str, list[list[int]]] = {}
    last: tuple[str, int, str] | None = None
    for seq, event in enumerate(events):
        here = (event.chain, event.block, event.tx_hash)
        if here != last:
            out.setdefault(event.chain, []).append([])
            last = here
        out[event.chain][-1].append(seq)
    return out


def pair_bridges(events: Sequence[FlowEvent], labelling: Labelling) -> dict[int, int]:
    """Match each bridge mint to a lock of the same issuer's token on another chain, same amount, first come first
    served. Event indexes: bridge mint -> lock. Real bridges carry nonces; amounts are what every bridge shares."""
    locks: dict[tuple[str, Fraction], deque[tuple[str, int]]] = {}
    for seq, event in enumerate(events):
        info = labelling.tokens.get(event.token_key)
        # A lock into the escrow (OFT adapter), or a bridged copy burnt to be minted elsewhere (OFT to OFT).
        burnt_copy = event.kind == BURN and info is not None and info.bridged
        if (event.kind == BRIDGE_LOCK or burnt_copy) and info is not None and info.issuer is not None:
            key = (info.issuer, Fraction(event.amount, 10**event.decimals))
            locks.setdefault(key, deque()).append((event.chain, seq))
    pairs: dict[int, int] = {}
    for seq, event in enumerate(events):
        info = labelling.tokens.get(event.token_key)
        if event.kind != BRIDGE_MINT or info is None or info.issuer is None:
            continue
        waiting = locks.get((info.issuer, Fraction(event.amount, 10**event.decimals)))
        if not waiting:
            continue
        match = next((item for item in waiting if item[0] != event.chain), None)
        if match is not None:
            waiting.remove(match)
            pairs[seq] = match[1]
    return pairs


def pair_hard_bridges(events: Sequence[FlowEvent], labelling: Labelling) -> dict[int, int]:
    """Match hard assets that arrive at an issuer's holder on one chain from an address the trace does not follow
    (a bridge releasing or minting: USDC by lock/release or burn/mint) to the same amount of the same asset that
    left one of the same issuer's holders on another chain for such an address. Event indexes: arrival ->
    departure, first come first served. Without it, cash that goes round a cross-chain loop would come back as
    new outside money."""
    if len({event.chain for event in events}) < 2:
        return {}  # nothing can cross chains in a one-chain window
    def holder(chain: str, address: str) -> NodeLabel | None:
        label = labelling.addresses.get(token_key(chain, address))
        return label if label is not None and label.role in TRACKED_ROLES else None

    def asset(event: FlowEvent) -> str | None:
        info = labelling.tokens.get(event.token_key)
        return info.symbol if info is not None and info.issuer is None else None

    def leg(event: FlowEvent, kinds: tuple[str, str], own: str, other: str) -> tuple[str, str, Fraction] | None:
        """(issuer, asset, units) when `event` moves a hard asset between an issuer's holder (`own` side) and an
        address the trace does not follow (`other` side, not a venue)."""
        symbol = asset(event)
        if symbol is None or event.kind not in kinds:
            return None
        mine = holder(event.chain, own)
        if mine is None or mine.issuer is None or holder(event.chain, other) is not None:
            return None
        if labelling.node(event.chain, other).role == VENUE:
            return None
        return (mine.issuer, symbol, Fraction(event.amount, 10**event.decimals))

    departures: dict[tuple[str, str, Fraction], deque[tuple[str, int]]] = {}
    for seq, event in enumerate(events):
        key = leg(event, (TRANSFER, BURN), event.src, event.dst)
        if key is not None:
            departures.setdefault(key, deque()).append((event.chain, seq))
    pairs: dict[int, int] = {}
    for seq, event in enumerate(events):
        key = leg(event, (TRANSFER, MINT), event.dst, event.src)
        if key is None:
            continue
        waiting = departures.get(key)
        match = next((item for item in waiting or () if item[0] != event.chain), None)
        if waiting is not None and match is not None:
            waiting.remove(match)
            pairs[seq] = match[1]
    return pairs


def _node_id(labelling: Labelling, chain: str, address: str, market: str | None) -> str:
    label = labelling.node(chain, address)
    if label.role == MINT_NODE:
        return "mint"
    if label.role == EXTERNAL:
        return "external"
    if label.role == VENUE and market is not None:
        return market
    return token_key(chain, address)


def build_graph(events: Sequence[FlowEvent], labelling: Labelling, pairs: dict[int, int] | None = None) -> Any:
    """The flow graph: a networkx MultiDiGraph of labelled addresses and markets, one edge per event in order.

    Unlabelled addresses are one node, "external"; the zero address is "mint"; a lending event's venue
    side is its market. A paired bridge mint is an edge from the escrow on the other chain.
    """
    graph = nx.MultiDiGraph()
    nodes: dict[str, dict[str, Any]] = {
        "mint": {"role": MINT_NODE, "name": "mint", "issuer": None, "chain": None},
        "external": {"role": EXTERNAL, "name": "external", "issuer": None, "chain": None},
    }
    for key, label in labelling.addresses.items():
        nodes[key] = {"role": label.role, "name": label.name, "issuer": label.issuer, "chain": key.split(":", 1)[0]}
    for key in labelling.markets:
        nodes[key] = {"role": MARKET, "name": labelling.market_name(key), "issuer": None,
                      "chain": key.split(":", 1)[0]}
    pairs = pairs or {}
    edges = []
    used: set[str] = set()
    for seq, event in enumerate(events):
        src = _node_id(labelling, event.chain, event.src, event.market)
        dst = _node_id(labelling, event.chain, event.dst, event.market)
        if seq in pairs:
            lock = events[pairs[seq]]
            src = _node_id(labelling, lock.chain, lock.dst, None)
        for node in (src, dst):
            if node not in nodes:
                nodes[node] = {"role": MARKET if event.market == node else EXTERNAL, "name": node, "issuer": None,
                               "chain": event.chain}
        used.add(src)
        used.add(dst)
        edges.append((src, dst, seq, {"event": event}))
    graph.add_nodes_from((key, attrs) for key, attrs in nodes.items() if key in used)
    graph.add_edges_from(edges)
    return graph


def graph_summary(graph: Any, labelling: Labelling) -> dict[str, Any]:
    """Nodes and edges aggregated per (from, to, kind, token): JSON-sized even for 100k transfers."""
    totals: dict[tuple[str, str, str, str], list[int]] = {}
    decimals: dict[str, int] = {}
    for src, dst, data in graph.edges(data=True):
        event: FlowEvent = data["event"]
        key = (src, dst, event.kind, event.token_key)
        entry = totals.get(key)
        if entry is None:
            entry = totals[key] = [0, 0]
        entry[0] += 1
        entry[1] += event.amount
        decimals[event.token_key] = event.decimals
    nodes = [{"id": node, **{k: v for k, v in attrs.items() if v is not None}}
             for node, attrs in sorted(graph.nodes(data=True))]
    edges = [{"from": src, "to": dst, "kind": kind, "token": token, "symbol": labelling.symbol(token),
              "count": count, "raw": str(raw), "units": _units(raw, decimals[token])}
             for (src, dst, kind, token), (count, raw) in sorted(totals.items())]
    return {"node_count": graph.number_of_nodes(), "edge_count": graph.number_of_edges(), "nodes": nodes,
            "edges": edges}


# ---------------------------------------------------------------------------------------------
# Loops
# ---------------------------------------------------------------------------------------------


def _stage_name(stage: tuple[str, str], labelling: Labelling) -> str:
    kind, what = stage
    if kind == "borrow":
        market = labelling.markets.get(what)
        loan = labelling.symbol(market.loan_token) if market else "?"
        return f"borrow {loan} from the {labelling.market_name(what)}"
    if kind == "collateral":
        market = labelling.markets.get(what)
        collateral = labelling.symbol(market.collateral_token) if market else "?"
        return f"post {collateral} as collateral in the {labelling.market_name(what)}"
    if kind == "mint":
        return f"deposit into {what} and mint {labelling.issuer_symbol(what)}"
    if kind == "lock":
        return f"lock {labelling.issuer_symbol(what)} in the bridge escrow"
    if kind == "bridge_mint":
        return f"mint bridged {labelling.issuer_symbol(what)} on the other chain"
    return f"swap into {labelling.symbol(what)} on {what.split(':', 1)[0]}"


def _where(event: FlowEvent) -> Where:
    return Where(event.chain, event.block, event.log_index, event.tx_hash)


def _amount(event: FlowEvent, labelling: Labelling, raw: int | None = None) -> Amount:
    info = labelling.tokens.get(event.token_key)
    return Amount(event.token_key, event.symbol or labelling.symbol(event.token_key),
                  event.amount if raw is None else raw, event.decimals, info.issuer if info else None)


def _sum_amounts(amounts: Iterable[Amount]) -> tuple[Amount, ...]:
    by_token: dict[str, Amount] = {}
    for amount in amounts:
        seen = by_token.get(amount.token_key)
        by_token[amount.token_key] = amount if seen is None else Amount(
            seen.token_key, seen.symbol, seen.raw + amount.raw, seen.decimals, seen.issuer)
    return tuple(by_token[k] for k in sorted(by_token))


def find_loops(steps: Sequence[Step], dag: Any, labelling: Labelling) -> list[Loop]:
    """Recursive borrow loops in the causal graph of steps.

    Each step is mapped to its stage (borrow in market M, mint of issuer X, collateral in M, bridge
    lock/mint of X, swap into T). A stage cycle that contains a borrow and a mint (a strongly connected
    component of the stage graph) is a repeated path; the steps on those stages that are causally
    connected form a loop, kept when it really turned: a borrow with a mint before it and after it.
    """
    stage_graph = nx.DiGraph()
    for step in steps:
        stage_graph.add_node(step.stage)
    for u, v in dag.edges():
        stage_graph.add_edge(steps[u].stage, steps[v].stage)
    loops: list[Loop] = []
    for component in nx.strongly_connected_components(stage_graph):
        stages = set(component)
        if len(stages) == 1 and not any(stage_graph.has_edge(s, s) for s in stages):
            continue
        kinds = {kind for kind, _ in stages}
        if "borrow" not in kinds or "mint" not in kinds:
            continue
        members = [s.id for s in steps if s.stage in stages]
        sub = dag.subgraph(members)
        for group in _by_position(list(nx.weakly_connected_components(sub)), steps):
            group_graph = sub.subgraph(group)
            if _turned(group_graph, steps):
                loops.append(_loop(sorted(group), group_graph, stage_graph.subgraph(stages), steps, labelling))
    loops.sort(key=lambda loop: (loop.iterations[0].where.chain, loop.iterations[0].where.block)
               if loop.iterations else ("", 0))
    return [replace(loop, id=f"loop-{n}") for n, loop in enumerate(loops, 1)]


def _by_position(groups: list[set[int]], steps: Sequence[Step]) -> list[set[int]]:
    """Causal groups of one repeated path that borrow against the same positions (market, account) are one loop.

    Money is fungible and FIFO decides which of it paid for what: when a turn's borrowed cash stays parked in the
    issuer's wallets while older cash pays for that turn's mint, the funds trail breaks although the positions
    go on borrowing against what each turn posted. The loop is the positions' history, not one trail of lots."""
    def positions(group: set[int]) -> set[tuple[str | None, str]]:
        return {(steps[i].event.market, (steps[i].event.account or "").lower())
                for i in group if steps[i].kind in ("borrow", "post") and steps[i].event.account}

    merged: list[tuple[set[int], set[tuple[str | None, str]]]] = []
    for group in groups:
        own = positions(group)
        members = set(group)
        for m in [m for m in merged if own and m[1] & own]:
            merged.remove(m)
            members |= m[0]
            own = own | m[1]
        merged.append((members, own))
    return [group for group, _own in merged]


def _turned(group: Any, steps: Sequence[Step]) -> bool:
    for node in group.nodes:
        if steps[node].kind != "borrow":
            continue
        before = any(steps[a].kind == "mint" for a in nx.ancestors(group, node))
        if before and any(steps[d].kind == "mint" for d in nx.descendants(group, node)):
            return True
    return False


def _minted_by(borrow: int, group: Any, steps: Sequence[Step]) -> dict[int, Fraction]:
    """Share of each mint paid by this borrow: follow funds through swaps and bridges, stop at the first mint."""
    out: dict[int, Fraction] = {}
    stack = [(borrow, Fraction(1))]
    while stack:
        node, weight = stack.pop()
        for _, nxt, data in group.out_edges(node, data=True):
            if data["kind"] != "funds":
                continue
            share = weight * data["share"]
            if steps[nxt].kind == "mint":
                out[nxt] = out.get(nxt, Fraction(0)) + share
            elif steps[nxt].kind in ("swap", "lock", "bridge_mint"):
                stack.append((nxt, share))
    return out


def _cycles(stage_graph: Any, labelling: Labelling, limit: int = 8) -> tuple[tuple[str, ...], ...]:
    """The loop's elementary cycles that borrow and mint, shortest first, each starting at a borrow, in words."""
    found = []
    for cycle in itertools.islice(nx.simple_cycles(stage_graph, length_bound=16), 1000):
        if not any(s[0] == "borrow" for s in cycle) or not any(s[0] == "mint" for s in cycle):
            continue
        at = cycle.index(min(s for s in cycle if s[0] == "borrow"))
        found.append(tuple(cycle[at:] + cycle[:at]))
    found.sort(key=lambda c: (len(c), c))
    return tuple(tuple(_stage_name(s, labelling) for s in c) for c in found[:limit])


def _loop(members: list[int], group: Any, stage_graph: Any, steps: Sequence[Step], labelling: Labelling) -> Loop:
    inside = set(members)
    borrows = [steps[m] for m in members if steps[m].kind == "borrow"]
    mints = [steps[m] for m in members if steps[m].kind == "mint"]
    iterations = []
    for index, borrow in enumerate(borrows, 1):
        minted = []
        for mint_id, share in sorted(_minted_by(borrow.id, group, steps).items()):
            event = steps[mint_id].event
            minted.append(_amount(event, labelling, int(event.amount * share)))
        posts = [steps[u] for u, _v, data in group.in_edges(borrow.id, data=True) if data["kind"] == "collateral"]
        event = borrow.event
        account = labelling.node(event.chain, event.account or event.dst)
        iterations.append(Iteration(
            index=index, where=_where(event), market=event.market or "", market_name=labelling.market_name(
                event.market or ""), account=account.name, borrowed=_amount(event, labelling),
            minted=_sum_amounts(minted),
            collateral=tuple(Posted(_where(p.event), _amount(p.event, labelling), p.event.market or "")
                             for p in sorted(posts, key=lambda s: s.id)),
        ))
    loop_mints = []
    money_in = Fraction(0)
    for step in (steps[m] for m in members):
        if step.kind not in ("mint", "swap", "lock", "bridge_mint"):
            continue
        outside = sum((v for origin, v in step.inputs.items() if origin is None or origin not in inside), Fraction(0))
        money_in += outside
        if step.kind == "mint":
            loop_mints.append(LoopMint(_where(step.event), _amount(step.event, labelling),
                                       labelling.node(step.event.chain, step.event.dst).name, outside))
    issuers = {s.issuer for s in (steps[m] for m in members) if s.issuer}
    for step in (steps[m] for m in members):
        info = labelling.tokens.get(step.event.token_key)
        if info is not None and info.issuer:
            issuers.add(info.issuer)
    markets = sorted({s.event.market for s in (steps[m] for m in members) if s.event.market})
    minted_by_token = _sum_amounts(_amount(m.event, labelling) for m in mints)
    by_issuer: dict[str, Fraction] = {}
    for amount in minted_by_token:
        if amount.issuer is not None:
            by_issuer[amount.issuer] = by_issuer.get(amount.issuer, Fraction(0)) + amount.units
    borrowed_by_token = _sum_amounts(_amount(b.event, labelling) for b in borrows)
    cycles = _cycles(stage_graph, labelling)
    return Loop(
        id="", path=cycles[0] if cycles else (), cycles=cycles, issuers=tuple(sorted(issuers)),
        venues=tuple(sorted({labelling.markets[m].venue for m in markets if m in labelling.markets})),
        markets=tuple(markets), chains=tuple(sorted({steps[m].event.chain for m in members})),
        iterations=tuple(iterations), mints=tuple(loop_mints), minted_by_token=minted_by_token,
        minted_by_issuer=tuple((i, labelling.issuer_symbol(i), u) for i, u in sorted(by_issuer.items())),
        borrowed_by_token=borrowed_by_token, total_minted=sum((a.units for a in minted_by_token), Fraction(0)),
        total_borrowed=sum((a.units for a in borrowed_by_token), Fraction(0)), money_in=money_in,
    )


# ---------------------------------------------------------------------------------------------
# The whole analysis
# ---------------------------------------------------------------------------------------------


@dataclass
class FlowReport:
    events: list[FlowEvent]
    graph: Any  # networkx.MultiDiGraph
    steps: list[Step]
    dag: Any  # networkx.DiGraph of steps
    loops: list[Loop]
    provenance: list[MintProvenance]
    audited: str | None
    labelling: Labelling
    dropped_transfers: int = 0
    notes: list[str] = field(default_factory=list)

    def provenance_totals(self) -> dict[str, Any]:
        minted = sum((p.amount.units for p in self.provenance), Fraction(0))
        by_bucket = {b: sum((p.amount.units * p.shares[b] for p in self.provenance), Fraction(0)) for b in BUCKETS}
        return {
            "mints": len(self.provenance), "minted_units": _num(minted),
            "by_source_units": {b: _num(v) for b, v in by_bucket.items()},
            "borrowed_share": _num(by_bucket["borrowed"] / minted) if minted else None,
            "external_share": _num(by_bucket["external"] / minted) if minted else None,
        }

    def as_dict(self) -> dict[str, Any]:
        kinds = Counter(e.kind for e in self.events)
        return {
            "events": {"total": len(self.events), "by_kind": dict(sorted(kinds.items())),
                       "transfers_merged_into_lending_events": self.dropped_transfers},
            "graph": graph_summary(self.graph, self.labelling),
            "loops": [loop.as_dict() for loop in self.loops],
            "provenance": {
                "issuer": self.audited,
                "symbol": self.labelling.issuer_symbol(self.audited) if self.audited else None,
                "buckets": BUCKET_HELP,
                "mints": [p.as_dict() for p in self.provenance],
                "totals": self.provenance_totals(),
            },
            "notes": list(self.notes),
        }


def analyze(events: Iterable[FlowEvent], labelling: Labelling, audited: str | None = None) -> FlowReport:
    """Flow graph, loops and (for the audited issuer's token) mint provenance, from typed events."""
    ordered, dropped = normalize(events)
    pairs = pair_bridges(ordered, labelling)
    graph = build_graph(ordered, labelling, pairs)
    engine = _Engine(labelling, ordered, dict(pairs), pair_hard_bridges(ordered, labelling))
    engine.run()
    loops = find_loops(engine.steps, engine.dag, labelling)
    loop_of = {mint.where: loop.id for loop in loops for mint in loop.mints}
    provenance = []
    for step in engine.steps:
        if step.kind != "mint" or audited is None or step.issuer != audited:
            continue
        event = step.event
        paid = tuple(
            (Amount(token, labelling.symbol(token), raw, decimals),
             labelling.addresses.get(payer, NodeLabel(EXTERNAL, "external")).name, payer.split(":", 1)[-1])
            for token, raw, decimals, payer in step.paid
        )
        provenance.append(MintProvenance(
            _where(event), _amount(event, labelling), event.dst, labelling.node(event.chain, event.dst).name, paid,
            dict(zip(BUCKETS, step.mix, strict=True)), loop_of.get(_where(event)),
        ))
    notes = []
    if engine.prior_outflows:
        notes.append(f"{engine.prior_outflows} outflow(s) from issuer holders exceeded what the window shows them "
                     "receiving: the difference is counted as funds held before the window ('prior')")
    if engine.unpaired_bridge_mints:
        notes.append(f"{engine.unpaired_bridge_mints} bridge mint(s) had no matching lock in the window on another "
                     "chain: their funds are counted as 'prior'")
    if loops:
        notes.append("loop totals add token units across tokens: they assume the loop's tokens claim the same "
                     "value per unit (USD stablecoins, as in the cases this tool targets)")
    return FlowReport(ordered, graph, engine.steps, engine.dag, loops, provenance, audited, labelling, dropped,
                      notes)
