"""Seeded scenario generator on the lab: random issuer setups and borrow loops whose truth comes from construction.

`draw(seed)` decides everything (pure: one `random.Random(seed)`) and returns a frozen `Plan`: the minting design,
the issuer's wallets, the outsiders, the pre-window funding, and the in-window steps in order (loop borrows, hops
between the issuer's wallets, mints, posts as Morpho collateral, outside top-ups, outsiders' own mints and noise
transfers). The plan carries its own expectations (`Plan.expected`), computed from the amounts it sends by a
small lot ledger (below), never from the tracer. `build(plan, lab)` deploys and runs the plan on an anvil lab node,
one transaction per block, and returns a `Scenario` with the spec and registry YAML, the block window and the
`Truth` (the expectations plus the transaction hashes). `compare(truth, findings)` lists every difference between a
trace's findings and the truth (empty: exact match).

Minting designs (the issued token is always the spec's only deployment; USDC has 6 decimals):

- "vault": the token is its own vault (lab IssuerVault): deposit USDC into the token contract, it mints 1:1 scaled
  to the token's decimals (6 or 18);
- "minter": a separate minting contract (CustodyMinter, as Elixir's DeUSDMinting) holds the minter role of a
  MinterRoleToken: `mint(assets)` pulls USDC from the caller into a custodian address and mints to the caller in
  the same transaction;
- "erc4626": a standard OpenZeppelin ERC-4626 deposit (lab LabVault; shares computed with OZ's formula);
- "operator": the payer transfers USDC to the custodian; an operator EOA (the token's minter) mints to the payer
  1-3 blocks later.

The spec's `accounts` are the issuer's wallets, plus (drawn, for "minter" and "operator") the custodian. The truth's
backing counts the custodian's USDC either way: the money did reach the issuer.

Truth buckets (auditor.flows.BUCKETS), by construction:

- external: USDC that outsiders sent (their own mints, and top-ups they sent to an issuer wallet in the window);
- borrowed: USDC a loop borrow paid out of the Morpho market;
- prior: USDC an issuer wallet held before the window (the loop's seed, when drawn "prior");
- recycled: never produced: no USDC ever leaves the vault or the custodian in these scenarios;
- unpaid: never produced: every mint is paid.

Lot ledger (the FIFO rule): each issuer wallet holds a queue of lots (raw USDC, bucket, the loop borrow it came
from) in the order it received them; any payment out of a wallet (a hop, a mint's payment) takes lots from the head
of the queue, splitting the last one. A mint's shares are the buckets of the lots its payment took, weighted by raw
amount. A prior seed is always spent in full by the seed mint before the wallet receives anything in the window, so
where a pre-window balance sits in the FIFO order never matters. An iteration's minted amount is, per mint, the part
of the mint paid with that iteration's borrowed lots (minted raw x lots' raw / payment raw, rounded down), summed.

The loop: seed USDC (prior, or sent by an outsider) -> hops -> mint -> token hops -> post as collateral; then per
iteration: borrow USDC at a random LTV (below the market's LLTV; fixed price 1, zero-rate IRM so the debt is exactly
what was borrowed) -> hops -> optional outside top-up -> mint (all, or 50-95% of the minting wallet's USDC) ->
token hops -> post everything minted -> next borrow by the wallet that posted.

Lender and chains (only seeds >= TOPOLOGY_FROM = 1000 draw them, from a second `random.Random` of their own, so
seeds below keep the exact plans they had: Morpho on one chain):

- lender "morpho" (a Morpho Blue market, zero-rate IRM) or "aave" (a real Aave v3 pool deployed per scenario,
  auditor.lab.aave, listing USDC and the collateral at price 1 with zero rates: debt = borrowed; posts are Aave
  supplies of the collateral, borrows variable-rate USDC borrows);
- one chain, or two: the lending happens on a second chain (LENDING_CHAIN "plume", chain id 98866). Before each
  post the poster locks its tokens in the token's escrow on the home chain (lab BridgeEscrow) and the relayer mints
  the bridged copy on the lending chain (lab BridgedToken), where it is posted; 30% of the time 5-40% of it goes back
  first (burnToExit there, release from the escrow here) and only the rest is posted. Each borrow crosses back to the
  home chain whole, to the same wallet, before anything else happens: lock/release (an escrow there, a pre-funded
  escrow here) or burn/mint (USDC there is a bridged token; the lab USDC here is minted), drawn per seed. Bridging
  moves no lot between wallets, so the lot ledger and the truth's buckets are those of one chain. The spec lists the
  token on both chains (the copy `bridged: true`), its escrow, and the wallets on both chains; the registry both
  chains, USDC on both, and the lender on the lending chain.

Soak: `python -m auditor.lab.scenarios --seeds 300 --out benchmarks/scenarios.md` (add `--first 1000` for seeds that
draw lenders and chains).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from auditor.lab.aave import POOL_TX_GAS, VARIABLE_RATE_MODE, AaveLab, RateStrategy
from auditor.lab.compile import Compiled
from auditor.lab.deploy import Contract, send_transaction
from auditor.lab.morpho import MarketParams, MorphoLab, oracle_price
from auditor.lab.node import rpc

__all__ = [
    "BUCKETS",
    "DESIGNS",
    "LENDERS",
    "IterationTruth",
    "LendingChain",
    "MintTruth",
    "Plan",
    "Scenario",
    "ScenarioLab",
    "Step",
    "Truth",
    "build",
    "compare",
    "draw",
    "start_lab",
    "start_lending_chain",
    "trace",
]

BUCKETS = ("external", "borrowed", "prior", "recycled", "unpaid")  # the tracer's buckets, in its order
DESIGNS = ("vault", "minter", "erc4626", "operator")
LENDERS = ("morpho", "aave")
USDC_BRIDGES = ("lock", "burn")  # how borrowed USDC crosses back: lock/release or burn/mint
TOPOLOGY_FROM = 1000  # seeds below draw nothing new (Morpho, one chain): their plans stay what they were
USDC = 10**6
MAX_UINT = 2**256 - 1
LAB_LLTV = 860_000_000_000_000_000
CHAIN = "ethereum"
LENDING_CHAIN = "plume"
PLUME_CHAIN_ID = 98866  # Plume mainnet's chain id, as the reconstruction uses


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One in-window action. `actor`/`to` are role names ("w0".."w3" issuer wallets, "o0".."o2" outsiders,
    "stranger", "custodian"); amounts are raw (USDC 6 decimals, token `Plan.decimals`).

    kinds: "usdc" (actor -> to USDC), "token" (actor -> to issued token), "mint" (actor pays `amount` USDC by the
    plan's design and receives `minted`; "operator" mints `gap` blocks after the payment), "post" (actor supplies
    `amount` tokens, or their bridged copies, as collateral to the lender), "borrow" (actor borrows `amount` USDC
    against its collateral); two chains only: "bridge_token" (lock `amount` tokens here, their copy minted to the
    actor on the lending chain), "token_back" (burn `amount` copies there, released to the actor here),
    "bridge_usdc" (`amount` borrowed USDC from the actor there to the actor here).
    `purpose` says why: seed, hop, topup, loop, outsider, noise. `iteration`: the loop iteration (0 = the seed).
    """

    kind: str
    actor: str
    amount: int
    to: str = ""
    minted: int = 0
    gap: int = 1
    purpose: str = ""
    iteration: int | None = None


@dataclass(frozen=True)
class ExpectedMint:
    step: int  # index of its Step in Plan.steps
    recipient: str  # role
    raw: int
    usdc: int
    shares: tuple[Fraction, Fraction, Fraction, Fraction, Fraction]  # in BUCKETS order
    by_borrow: tuple[tuple[int, int], ...]  # (iteration, raw USDC of that iteration's borrow in the payment)
    iteration: int | None


@dataclass(frozen=True)
class Expected:
    """What the plan's construction implies, before anything runs."""

    mints: tuple[ExpectedMint, ...]
    supply: int
    held_usdc: tuple[tuple[str, int], ...]  # issuer holder role -> raw USDC held at the end
    debt: tuple[tuple[str, int], ...]  # wallet role -> raw USDC owed to the market
    collateral: tuple[tuple[str, int], ...]  # wallet role -> raw tokens posted

    @property
    def backing(self) -> int:
        return sum(v for _r, v in self.held_usdc) - sum(v for _r, v in self.debt)


@dataclass(frozen=True)
class Plan:
    seed: int
    design: str
    decimals: int  # the issued token's
    wallets: tuple[str, ...]  # issuer wallet roles
    outsiders: tuple[str, ...]
    seed_source: str  # "prior" | "external"
    custodian_listed: bool  # "minter"/"operator": the custodian is one of the spec's accounts (else unlisted)
    prior: tuple[tuple[str, int], ...]  # wallet role -> raw USDC funded before the window
    outsider_funds: tuple[tuple[str, int], ...]  # outsider role -> raw USDC funded before the window
    lender_supply: int  # raw USDC a lender supplies to the market before the window
    ltvs: tuple[Fraction, ...]  # per loop iteration
    steps: tuple[Step, ...]
    expected: Expected
    lender: str = "morpho"  # "morpho" (Morpho Blue) | "aave" (Aave v3); drawn for seeds >= TOPOLOGY_FROM
    chains: int = 1  # 2: the token is bridged to LENDING_CHAIN, borrowed against there, USDC bridged back
    usdc_bridge: str = ""  # two chains: "lock" (lock/release) | "burn" (burn/mint)

    @property
    def lending_chain(self) -> str:
        return LENDING_CHAIN if self.chains == 2 else CHAIN

    @property
    def iterations(self) -> int:
        return len(self.ltvs)

    @property
    def roles(self) -> tuple[str, ...]:
        extra = ("custodian", "operator") if self.design in ("minter", "operator") else ()
        return (*self.wallets, *self.outsiders, "stranger", "lender", *extra)

    @property
    def holders(self) -> tuple[str, ...]:
        """Where the issuer's USDC sits: its wallets, and the custodian ("minter", "operator") or the token
        contract ("vault", "erc4626"); the custodian counts even when the spec does not list it."""
        return (*self.wallets, "custodian" if self.design in ("minter", "operator") else "token")

    def address(self, role: str) -> str:
        """A fresh address per seed and role (no key: the lab impersonates it)."""
        return to_checksum_address(keccak(text=f"reserve-auditor scenario {self.seed} {role}")[12:])


Lot = tuple[int, int, int | None]  # raw USDC, bucket index, loop iteration of the borrow it came from


class _Ledger:
    """The lot ledger of the module docstring, plus plain balances for everyone else."""

    def __init__(self) -> None:
        self.lots: dict[str, deque[list[Any]]] = {}
        self.usdc: dict[str, int] = {}
        self.tokens: dict[str, int] = {}

    def receive(self, role: str, raw: int, bucket: int, origin: int | None) -> None:
        self.usdc[role] = self.usdc.get(role, 0) + raw
        self.lots.setdefault(role, deque()).append([raw, bucket, origin])

    def pay(self, role: str, raw: int) -> list[Lot]:
        if self.usdc.get(role, 0) < raw:
            raise AssertionError(f"plan bug: {role} pays {raw} holding {self.usdc.get(role, 0)}")
        self.usdc[role] -= raw
        queue = self.lots.setdefault(role, deque())
        out: list[Lot] = []
        need = raw
        while need:
            head = queue[0]
            take = min(need, head[0])
            out.append((take, head[1], head[2]))
            head[0] -= take
            need -= take
            if not head[0]:
                queue.popleft()
        return out


def _shares(lots: Sequence[Lot]) -> tuple[Fraction, Fraction, Fraction, Fraction, Fraction]:
    total = sum(raw for raw, _b, _o in lots)
    sums = [Fraction(0)] * len(BUCKETS)
    for raw, bucket, _origin in lots:
        sums[bucket] += Fraction(raw, total)
    return (sums[0], sums[1], sums[2], sums[3], sums[4])


def _money(rng: random.Random, low: int, high: int) -> int:
    """A raw USDC amount between low and high dollars, with random cents."""
    return rng.randint(low, high) * USDC + rng.randint(0, 99) * 10**4


def draw(seed: int) -> Plan:
    """Everything a scenario will do, from `seed` alone."""
    rng = random.Random(seed)
    design = rng.choice(DESIGNS)
    decimals = 6 if design == "erc4626" else rng.choice((6, 18))
    custodian_listed = design in ("minter", "operator") and rng.random() < 0.5
    scale = 10 ** (decimals - 6)
    wallets = tuple(f"w{i}" for i in range(rng.randint(1, 4)))
    outsiders = tuple(f"o{i}" for i in range(rng.randint(1, 3)))
    seed_source = rng.choice(("prior", "external"))
    n_iterations = rng.randint(0, 8)
    ltvs = tuple(Fraction(rng.randint(30, 80), 100) for _ in range(n_iterations))
    seed_usdc = _money(rng, 1_000, 100_000)
    # Lender and chains come from a stream of their own, and only for seeds >= TOPOLOGY_FROM: `rng` draws exactly
    # what it drew before they existed, so every older seed's plan is unchanged.
    topo = random.Random(f"reserve-auditor scenario topology {seed}") if seed >= TOPOLOGY_FROM else None
    lender = topo.choice(LENDERS) if topo is not None else "morpho"
    chains = topo.choice((1, 2)) if topo is not None else 1
    usdc_bridge = topo.choice(USDC_BRIDGES) if topo is not None and chains == 2 else ""

    ledger = _Ledger()
    outsider_funds = tuple((o, _money(rng, 600_000, 900_000)) for o in outsiders)
    for role, raw in outsider_funds:
        ledger.usdc[role] = raw  # outsiders' USDC is external; only issuer holders keep lots
    steps: list[Step] = []
    mints: list[ExpectedMint] = []
    holder = "custodian" if design in ("minter", "operator") else "token"
    vault_supply = vault_assets = 0
    debt: dict[str, int] = {}
    collateral: dict[str, int] = {}

    def transfer_usdc(src: str, dst: str, raw: int, purpose: str, iteration: int | None = None) -> None:
        steps.append(Step("usdc", src, raw, to=dst, purpose=purpose, iteration=iteration))
        if src in wallets:
            lots = ledger.pay(src, raw)
        else:
            ledger.usdc[src] -= raw
            lots = [(raw, 0, None)]
        for amount, bucket, origin in lots:
            if dst in wallets:
                ledger.receive(dst, amount, bucket, origin)
            else:
                ledger.usdc[dst] = ledger.usdc.get(dst, 0) + amount

    def transfer_token(src: str, dst: str, raw: int, purpose: str, iteration: int | None = None) -> None:
        steps.append(Step("token", src, raw, to=dst, purpose=purpose, iteration=iteration))
        ledger.tokens[src] -= raw
        ledger.tokens[dst] = ledger.tokens.get(dst, 0) + raw

    def mint(payer: str, raw_usdc: int, purpose: str, iteration: int | None) -> int:
        nonlocal vault_supply, vault_assets
        # erc4626: OpenZeppelin 5 ERC4626._convertToShares (offset 0, rounding down); others: 1:1 scaled
        minted = raw_usdc * (vault_supply + 1) // (vault_assets + 1) if design == "erc4626" else raw_usdc * scale
        vault_supply += minted
        vault_assets += raw_usdc
        lots = ledger.pay(payer, raw_usdc) if payer in wallets else [(raw_usdc, 0, None)]
        if payer not in wallets:
            ledger.usdc[payer] -= raw_usdc
        ledger.usdc[holder] = ledger.usdc.get(holder, 0) + raw_usdc
        ledger.tokens[payer] = ledger.tokens.get(payer, 0) + minted
        by_borrow: dict[int, int] = {}
        for amount, bucket, origin in lots:
            if bucket == 1 and origin is not None:
                by_borrow[origin] = by_borrow.get(origin, 0) + amount
        gap = rng.randint(1, 3) if design == "operator" else 1
        mints.append(ExpectedMint(len(steps), payer, minted, raw_usdc, _shares(lots), tuple(sorted(by_borrow.items())),
                                  iteration))
        steps.append(Step("mint", payer, raw_usdc, minted=minted, gap=gap, purpose=purpose, iteration=iteration))
        return minted

    def hops(start: str, raw: int, send: Any, purpose: str, iteration: int | None) -> str:
        at = start
        for _ in range(rng.randint(0, 3) if len(wallets) > 1 else 0):
            nxt = rng.choice([w for w in wallets if w != at])
            send(at, nxt, raw, purpose, iteration)
            at = nxt
        return at

    def post(poster: str, amount: int, purpose: str, iteration: int) -> int:
        """Post `amount` tokens (two chains: bridge them to the lending chain first, maybe sending some back by
        burn/release); returns what was posted."""
        if chains == 2:
            assert topo is not None
            steps.append(Step("bridge_token", poster, amount, purpose=purpose, iteration=iteration))
            if topo.random() < 0.3:
                back = amount * topo.randint(5, 40) // 100
                steps.append(Step("token_back", poster, back, purpose=purpose, iteration=iteration))
                amount -= back
        steps.append(Step("post", poster, amount, purpose=purpose, iteration=iteration))
        ledger.tokens[poster] -= amount
        collateral[poster] = collateral.get(poster, 0) + amount
        return amount

    def outside_noise() -> None:
        for _ in range(rng.choice((0, 0, 1, 2))):
            who = rng.choice(outsiders)
            other = rng.choice([o for o in outsiders if o != who] or ["stranger"])
            what = rng.choice(("mint", "usdc", "token"))
            if what == "token" and ledger.tokens.get(who, 0) > 1:
                transfer_token(who, other, rng.randint(1, ledger.tokens[who] // 2), "noise")
            elif what == "usdc":
                transfer_usdc(who, other, _money(rng, 1, 2_000), "noise")
            elif ledger.usdc[who] > 10_000 * USDC:
                mint(who, _money(rng, 100, 9_000), "outsider", None)

    # The seed: outside money or the issuer's own pre-window USDC, minted in full.
    start = rng.choice(wallets)
    prior: tuple[tuple[str, int], ...] = ()
    outside_noise()
    if seed_source == "prior":
        prior = ((start, seed_usdc),)
        ledger.receive(start, seed_usdc, 2, None)
    else:
        transfer_usdc(rng.choice(outsiders), start, seed_usdc, "seed", 0)
    minter_wallet = hops(start, seed_usdc, transfer_usdc, "hop", 0)
    outside_noise()
    posted = mint(minter_wallet, seed_usdc, "seed", 0)
    poster = hops(minter_wallet, posted, transfer_token, "hop", 0)
    posted = post(poster, posted, "seed", 0)
    borrowed_total = 0
    for iteration, ltv in enumerate(ltvs, 1):
        outside_noise()
        borrow = posted * ltv.numerator // (ltv.denominator * scale)  # price 1: token raw / scale = USDC raw
        steps.append(Step("borrow", poster, borrow, purpose="loop", iteration=iteration))
        ledger.receive(poster, borrow, 1, iteration)
        debt[poster] = debt.get(poster, 0) + borrow
        borrowed_total += borrow
        if chains == 2:  # the whole borrow crosses back to the home chain, to the same wallet, before any hop
            steps.append(Step("bridge_usdc", poster, borrow, purpose="loop", iteration=iteration))
        minter_wallet = hops(poster, borrow, transfer_usdc, "hop", iteration)
        outside_noise()
        if rng.random() < 0.3:
            transfer_usdc(rng.choice(outsiders), minter_wallet, _money(rng, 10, 5_000), "topup", iteration)
        cash = ledger.usdc[minter_wallet]
        pay = cash if rng.random() < 0.7 else cash * rng.randint(50, 95) // 100
        posted = mint(minter_wallet, pay, "loop", iteration)
        poster = hops(minter_wallet, posted, transfer_token, "hop", iteration)
        posted = post(poster, posted, "loop", iteration)
    outside_noise()

    expected = Expected(
        mints=tuple(mints),
        supply=vault_supply,
        held_usdc=tuple((r, ledger.usdc.get(r, 0)) for r in (*wallets, holder)),
        debt=tuple(sorted(debt.items())),
        collateral=tuple(sorted(collateral.items())),
    )
    return Plan(seed=seed, design=design, decimals=decimals, wallets=wallets, outsiders=outsiders,
                seed_source=seed_source,
                custodian_listed=custodian_listed, prior=prior, outsider_funds=outsider_funds,
                lender_supply=borrowed_total + 1_000 * USDC, ltvs=ltvs, steps=tuple(steps), expected=expected,
                lender=lender, chains=chains, usdc_bridge=usdc_bridge)


# ---------------------------------------------------------------------------------------------
# Truth and scenario
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MintTruth:
    tx: str  # the minting transaction
    paid_tx: str  # the transaction that carried the payment (the same one except for operator mints)
    recipient: str  # address
    raw: int
    usdc: int  # raw USDC paid
    shares: Mapping[str, Fraction]  # bucket -> share, in BUCKETS order
    iteration: int | None  # 0: the loop's seed mint; i: minted in loop iteration i; None: an outsider's mint


@dataclass(frozen=True)
class IterationTruth:
    index: int  # 1-based
    borrow_tx: str
    borrowed: int  # raw USDC
    mint_txs: tuple[str, ...]  # mints this borrow's USDC paid (part of)
    minted: int  # raw tokens attributed to this borrow (see the module docstring)
    posted: int  # raw tokens posted as the collateral this borrow was taken against


@dataclass(frozen=True)
class Truth:
    iterations: tuple[IterationTruth, ...]  # the loop's, in order; empty: no loop
    mints: tuple[MintTruth, ...]  # every mint of the issued token in the window, in order
    supply: int  # the token's total supply at the end (raw)
    held_usdc: int  # raw USDC held by the issuer's wallets and its custodian / vault at the end
    debt: int  # raw USDC the issuer owes the lender at the end (zero rates: what it borrowed)
    collateral: Mapping[str, int]  # wallet address -> raw tokens posted in the market
    debt_by_wallet: Mapping[str, int]

    @property
    def backing(self) -> int:
        """Verifiable backing in raw USDC: what the issuer holds minus what it owes."""
        return self.held_usdc - self.debt


@dataclass(frozen=True)
class Scenario:
    plan: Plan
    spec_id: str
    spec_yaml: str
    registry_yaml: str
    window: tuple[int, int]  # (from_block, to_block) on the home chain, inclusive
    truth: Truth
    token: str
    usdc: str
    morpho: str  # the Morpho Blue contract on the lending chain ("" when the lender is Aave)
    market: MarketParams | None  # the Morpho market (None when the lender is Aave)
    addresses: Mapping[str, str] = field(default_factory=dict)  # role -> address
    windows: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # chain -> window (every chain used)
    urls: Mapping[str, str] = field(default_factory=dict)  # chain -> node URL
    venue: str = "morpho_blue"  # the registry's venue name: "morpho_blue" | "aave_v3"
    venue_address: str = ""  # Morpho, or Aave's Pool, on the lending chain
    collateral_token: str = ""  # what is posted: the token, or its bridged copy on the lending chain
    lending_usdc: str = ""  # USDC on the lending chain
    morpho_lab: MorphoLab | None = None  # the lending chain's Morpho (when it is the lender)
    aave: AaveLab | None = None  # the per-scenario Aave market (when it is the lender)
    escrow: str = ""  # two chains: the token's escrow on the home chain

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write registry.yaml and <spec_id>.yaml into `folder`; returns (registry path, spec path)."""
        folder.mkdir(parents=True, exist_ok=True)
        registry, spec = folder / "registry.yaml", folder / f"{self.spec_id}.yaml"
        registry.write_text(self.registry_yaml)
        spec.write_text(self.spec_yaml)
        return registry, spec

    def position(self, wallet: str, block: int) -> tuple[int, int]:
        """(raw collateral posted, raw USDC owed) of `wallet` at `block` on the lending chain, as the lender says."""
        if self.aave is not None:
            collateral = self.aave.reserve(self.collateral_token).a_token
            debt = self.aave.reserve(self.lending_usdc).variable_debt_token
            return self.aave.balance(collateral, wallet, block), self.aave.balance(debt, wallet, block)
        assert self.morpho_lab is not None and self.market is not None
        owned = self.morpho_lab.morpho.call("position", self.market.id, wallet, block=block)
        return int(owned[2]), self.morpho_lab.debt_at(self.market, wallet, block)


@dataclass(frozen=True)
class LendingChain:
    """The second chain of two-chain scenarios: its node, a Morpho Blue with the lab's IRM and LLTV enabled, and
    USDC as a bridged token (lab BridgedToken: the deployer, as relayer, mints it; anyone burns to exit)."""

    url: str
    chain_id: int
    usdc: Contract
    morpho: MorphoLab


class LabLike(Protocol):
    """What build() needs of a lab (tests/conftest.Lab and ScenarioLab both fit)."""

    @property
    def url(self) -> str: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def deployer(self) -> str: ...
    @property
    def usdc(self) -> Contract: ...
    @property
    def morpho(self) -> MorphoLab: ...
    @property
    def lltv(self) -> int: ...
    @property
    def lab_contracts(self) -> Compiled: ...


# ---------------------------------------------------------------------------------------------
# Building on a lab node
# ---------------------------------------------------------------------------------------------


def _head(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


# Aave at a zero rate, so the debt is exactly what was borrowed (the optimal usage ratio must stay positive: the
# strategy divides by it)
ZERO_RATES = RateStrategy(base_variable_borrow_rate=0, variable_rate_slope1=0, variable_rate_slope2=0,
                          stable_rate_slope1=0, stable_rate_slope2=0, base_stable_rate_offset=0,
                          stable_rate_excess_offset=0)


def _mint_usdc(usdc: Contract, to: str, raw: int, deployer: str) -> dict[str, Any]:
    """Create USDC: the lab token's open mint, or a bridged USDC's relayer mint."""
    if any(e.get("name") == "relayMint" for e in usdc.abi):
        return usdc.transact("relayMint", to, raw, 0, sender=deployer)
    return usdc.transact("mint", to, raw, sender=deployer)


def build(plan: Plan, lab: LabLike, plume: LendingChain | None = None) -> Scenario:
    """Deploy and run `plan` on the lab node (and, for two chains, on `plume`); fresh addresses per seed: run each
    seed once per chain state."""
    from auditor.lab.aave import deploy_aave

    url, deployer = lab.url, lab.deployer
    if plan.chains == 2 and plume is None:
        raise ValueError(f"seed {plan.seed} runs on two chains: build() needs the lending chain")
    lend_url = plume.url if plume is not None and plan.chains == 2 else url
    addr: dict[str, str] = {role: plan.address(role) for role in plan.roles}
    for node in {url, lend_url}:
        for address in addr.values():
            rpc(node, "anvil_impersonateAccount", [address])
            rpc(node, "anvil_setBalance", [address, hex(10**21)])
    usdc, morpho = lab.usdc, lab.morpho
    lend_usdc, lend_morpho = (plume.usdc, plume.morpho) if plume is not None and plan.chains == 2 else (usdc, morpho)
    built = lab.lab_contracts
    symbol = f"S{plan.seed}"
    name = f"Scenario {plan.seed} ({plan.design})"
    minter: Contract | None = None
    if plan.design == "vault":
        token = Contract.deploy(url, built["IssuerVault"], usdc.address, name, symbol, plan.decimals, 6,
                                sender=deployer)
        payee: str = token.address
    elif plan.design == "erc4626":
        token = Contract.deploy(url, built["LabVault"], usdc.address, name, symbol, sender=deployer)
        payee = token.address
    else:
        first_minter = addr["operator"] if plan.design == "operator" else deployer
        token = Contract.deploy(url, built["MinterRoleToken"], name, symbol, plan.decimals, first_minter,
                                sender=deployer)
        if plan.design == "minter":
            minter = Contract.deploy(url, built["CustodyMinter"], usdc.address, token.address, addr["custodian"],
                                     10 ** (plan.decimals - 6), sender=deployer)
            token.transact("setMinter", minter.address, sender=deployer)
        payee = str(minter.address) if minter is not None else addr["custodian"]
    addr["token"] = token.address
    # two chains: the token's escrow here, its bridged copy there (the deployer relays), and a USDC bridge back
    escrow = copy = usdc_out = usdc_in = None
    if plan.chains == 2:
        escrow = Contract.deploy(url, built["BridgeEscrow"], sender=deployer)
        copy = Contract.deploy(lend_url, built["BridgedToken"], f"{name} (bridged)", symbol, plan.decimals,
                               sender=deployer)
        addr["escrow"], addr["copy"] = escrow.address, copy.address
        if plan.usdc_bridge == "lock":
            usdc_out = Contract.deploy(lend_url, built["BridgeEscrow"], sender=deployer)  # locks on the lending chain
            usdc_in = Contract.deploy(url, built["BridgeEscrow"], sender=deployer)  # releases on the home chain
            borrowed = sum(s.amount for s in plan.steps if s.kind == "borrow")
            if borrowed:
                usdc.transact("mint", usdc_in.address, borrowed, sender=deployer)
    collateral_token = copy if copy is not None else token
    # the lender: the issued token (or its copy) as collateral, USDC loans, price 1, zero rates (debt = borrowed)
    market: MarketParams | None = None
    aave = None
    if plan.lender == "aave":
        aave = deploy_aave(lend_url, deployer, [lend_usdc.address, collateral_token.address], [1, 1], ltv=8500,
                           liquidation_threshold=8600, liquidation_bonus=10500, reserve_factor=0,
                           strategy=ZERO_RATES)
        venue, venue_address = "aave_v3", aave.pool.address
    else:
        irm = Contract.deploy(lend_url, lend_morpho.compiled["FixedRateIrm"], 0, sender=deployer)
        lend_morpho.enable_irm(irm.address)
        if not lend_morpho.morpho.call("isLltvEnabled", lab.lltv):
            lend_morpho.enable_lltv(lab.lltv)
        oracle = lend_morpho.deploy_oracle(oracle_price(1, 6, plan.decimals))
        market = MarketParams(lend_usdc.address, collateral_token.address, oracle.address, irm.address, lab.lltv)
        lend_morpho.create_market(market)
        venue, venue_address = "morpho_blue", lend_morpho.morpho.address
    # pre-window funding and approvals (no Transfer of the issued token, no issuer USDC but the prior seed)
    _mint_usdc(lend_usdc, addr["lender"], plan.lender_supply, deployer)
    if aave is not None:
        aave.supply(lend_usdc.address, plan.lender_supply, addr["lender"])
    else:
        assert market is not None
        lend_usdc.transact("approve", lend_morpho.morpho.address, MAX_UINT, sender=addr["lender"])
        lend_morpho.morpho.transact("supply", market.as_tuple(), plan.lender_supply, 0, addr["lender"], b"",
                                    sender=addr["lender"])
    for role, raw in (*plan.outsider_funds, *plan.prior):
        usdc.transact("mint", addr[role], raw, sender=deployer)
    for role in (*plan.wallets, *plan.outsiders):
        if plan.design != "operator":
            usdc.transact("approve", payee, MAX_UINT, sender=addr[role])
    for role in plan.wallets:
        collateral_token.transact("approve", venue_address, MAX_UINT, sender=addr[role])
        if escrow is not None:
            token.transact("approve", escrow.address, MAX_UINT, sender=addr[role])
        if usdc_out is not None:
            lend_usdc.transact("approve", usdc_out.address, MAX_UINT, sender=addr[role])

    start = _head(url) + 1
    lend_start = _head(lend_url) + 1
    txs: list[str] = []  # per step: its (last) transaction
    paid: dict[int, str] = {}  # step index -> payment tx (operator mints)
    nonce = 0
    for index, step in enumerate(plan.steps):
        actor = addr[step.actor]
        if step.kind == "usdc":
            receipt = usdc.transact("transfer", addr[step.to], step.amount, sender=actor)
        elif step.kind == "token":
            receipt = token.transact("transfer", addr[step.to], step.amount, sender=actor)
        elif step.kind == "post" and aave is not None:
            receipt = _pool(aave, "supply", collateral_token.address, step.amount, actor, 0, sender=actor)
        elif step.kind == "post":
            assert market is not None
            receipt = lend_morpho.morpho.transact("supplyCollateral", market.as_tuple(), step.amount, actor, b"",
                                                  sender=actor)
        elif step.kind == "borrow" and aave is not None:
            receipt = _pool(aave, "borrow", lend_usdc.address, step.amount, VARIABLE_RATE_MODE, 0, actor,
                            sender=actor)
        elif step.kind == "borrow":
            assert market is not None
            receipt = lend_morpho.morpho.transact("borrow", market.as_tuple(), step.amount, 0, actor, actor,
                                                  sender=actor)
        elif step.kind == "bridge_token":  # lock here, the relayer mints the copy there
            assert escrow is not None and copy is not None
            escrow.transact("lock", token.address, step.amount, actor, sender=actor)
            receipt = copy.transact("relayMint", actor, step.amount, nonce, sender=deployer)
            nonce += 1
        elif step.kind == "token_back":  # burn the copy there, the relayer releases here
            assert escrow is not None and copy is not None
            copy.transact("burnToExit", step.amount, actor, sender=actor)
            receipt = escrow.transact("release", token.address, actor, step.amount, sender=deployer)
        elif step.kind == "bridge_usdc":  # borrowed USDC back home: lock/release or burn/mint
            if usdc_out is not None and usdc_in is not None:
                usdc_out.transact("lock", lend_usdc.address, step.amount, actor, sender=actor)
                receipt = usdc_in.transact("release", usdc.address, actor, step.amount, sender=deployer)
            else:
                lend_usdc.transact("burnToExit", step.amount, actor, sender=actor)
                receipt = usdc.transact("mint", actor, step.amount, sender=deployer)
        elif plan.design in ("vault", "erc4626"):
            receipt = token.transact("deposit", step.amount, actor, sender=actor)
        elif plan.design == "minter":
            assert minter is not None
            receipt = minter.transact("mint", step.amount, sender=actor)
        else:
            payment = usdc.transact("transfer", addr["custodian"], step.amount, sender=actor)
            paid[index] = payment["transactionHash"]
            if step.gap > 1:
                rpc(url, "anvil_mine", [hex(step.gap - 1)])
            receipt = token.transact("mint", actor, step.minted, sender=addr["operator"])
        txs.append(receipt["transactionHash"])
    end = _head(url)
    windows = {CHAIN: (start, end)}
    urls = {CHAIN: url}
    if plan.chains == 2:
        windows[LENDING_CHAIN] = (lend_start, _head(lend_url))
        urls[LENDING_CHAIN] = lend_url
    truth = _truth(plan, txs, paid, addr)
    spec_id = f"scenario-{plan.seed}"
    chain_ids = {CHAIN: lab.chain_id, **({LENDING_CHAIN: plume.chain_id} if plume is not None and plan.chains == 2
                                         else {})}
    usdcs = {CHAIN: usdc.address, **({LENDING_CHAIN: lend_usdc.address} if plan.chains == 2 else {})}
    return Scenario(plan=plan, spec_id=spec_id, spec_yaml=_spec_yaml(spec_id, plan, addr, symbol),
                    registry_yaml=_registry_yaml(chain_ids, usdcs, venue, plan.lending_chain, venue_address),
                    window=(start, end), truth=truth, token=token.address, usdc=usdc.address,
                    morpho=lend_morpho.morpho.address if market is not None else "", market=market, addresses=addr,
                    windows=windows, urls=urls, venue=venue, venue_address=venue_address,
                    collateral_token=collateral_token.address, lending_usdc=lend_usdc.address,
                    morpho_lab=lend_morpho if market is not None else None, aave=aave,
                    escrow=escrow.address if escrow is not None else "")


def _pool(aave: AaveLab, fn: str, *args: Any, sender: str) -> dict[str, Any]:
    # A fixed gas limit, as AaveLab's own calls use (anvil's estimate can miss Aave's interest-accrual path).
    return send_transaction(aave.url, to=aave.pool.address, data=aave.pool.encode(fn, *args), sender=sender,
                            gas=POOL_TX_GAS, abi=aave.pool.abi, what=f"Pool.{fn}")



def _truth(plan: Plan, txs: Sequence[str], paid: Mapping[int, str], addr: Mapping[str, str]) -> Truth:
    expected = plan.expected
    mints = tuple(
        MintTruth(tx=txs[m.step], paid_tx=paid.get(m.step, txs[m.step]), recipient=addr[m.recipient], raw=m.raw,
                  usdc=m.usdc, shares=dict(zip(BUCKETS, m.shares, strict=True)), iteration=m.iteration)
        for m in expected.mints
    )
    iterations = []
    posts = [s for s in plan.steps if s.kind == "post"]
    borrows = [(i, s) for i, s in enumerate(plan.steps) if s.kind == "borrow"]
    for number, (index, step) in enumerate(borrows, 1):
        attributed = [(m, dict(m.by_borrow).get(number, 0)) for m in expected.mints]
        paid_by = [(m, part) for m, part in attributed if part]
        iterations.append(IterationTruth(
            index=number, borrow_tx=txs[index], borrowed=step.amount,
            mint_txs=tuple(txs[m.step] for m, _part in paid_by),
            minted=sum(m.raw * part // m.usdc for m, part in paid_by),
            posted=posts[number - 1].amount,
        ))
    return Truth(
        iterations=tuple(iterations), mints=mints, supply=expected.supply,
        held_usdc=sum(v for _r, v in expected.held_usdc), debt=sum(v for _r, v in expected.debt),
        collateral={addr[r]: v for r, v in expected.collateral},
        debt_by_wallet={addr[r]: v for r, v in expected.debt},
    )


def _spec_yaml(spec_id: str, plan: Plan, addr: Mapping[str, str], symbol: str) -> str:
    accounts = [(CHAIN, addr[w], f"issuer wallet {w}") for w in plan.wallets]
    if plan.custodian_listed:
        accounts.append((CHAIN, addr["custodian"], "custodian"))
    deployments = f"    - {{chain: {CHAIN}, address: \"{addr['token']}\"}}\n"
    escrow = ""
    if plan.chains == 2:
        accounts += [(LENDING_CHAIN, addr[w], f"issuer wallet {w} ({LENDING_CHAIN})") for w in plan.wallets]
        deployments += f"    - {{chain: {LENDING_CHAIN}, address: \"{addr['copy']}\", bridged: true}}\n"
        escrow = f"  escrow:\n    - {{chain: {CHAIN}, address: \"{addr['escrow']}\", label: {symbol} escrow}}\n"
    text = (f"id: {spec_id}\nname: {spec_id} ({plan.design}, lab)\ntoken:\n  symbol: {symbol}\n  deployments:\n"
            f"{deployments}{escrow}accounts:\n")
    return text + "".join(f"  - {{chain: {c}, address: \"{a}\", label: {label}}}\n" for c, a, label in accounts)


def _registry_yaml(chain_ids: Mapping[str, int], usdc: Mapping[str, str], venue: str, venue_chain: str,
                   venue_address: str) -> str:
    text = "chains:\n" + "".join(f"  {c}: {{chain_id: {i}}}\n" for c, i in chain_ids.items())
    text += "assets:\n" + "".join(f"  {c}:\n    USDC: {{address: \"{a}\", decimals: 6, price: par}}\n"
                                  for c, a in usdc.items())
    return text + f"venues:\n  {venue}:\n    {venue_chain}: {{address: \"{venue_address}\", from_block: 0}}\n"


# ---------------------------------------------------------------------------------------------
# Tracing and comparing
# ---------------------------------------------------------------------------------------------


def trace(scenario: Scenario, url: str, folder: Path) -> dict[str, Any]:
    """Write the scenario's inputs to `folder` and run the tracer on its windows (no read cache). `url` is the home
    chain's node; a two-chain scenario reads the lending chain at the URL it was built on."""
    from auditor.chain.reader import ConnectOptions, connect
    from auditor.spec import load_registry, load_spec
    from auditor.trace import run_trace

    registry_path, spec_path = scenario.write(folder)
    registry = load_registry(registry_path)
    spec = load_spec(spec_path, registry, frozenset({scenario.spec_id}))
    urls = {**scenario.urls, CHAIN: url}
    windows = dict(scenario.windows) or {CHAIN: scenario.window}
    clients = connect({c: registry.chains[c] for c in windows}, ConnectOptions(rpc=urls, use_cache=False))
    return run_trace(scenario.spec_id, {scenario.spec_id: spec}, registry, clients, windows)


def share_text(value: Fraction) -> Decimal:
    """A share as the findings spell it: exact when it terminates within 18 decimals, else rounded there."""
    with localcontext() as ctx:
        ctx.prec = max(60, len(str(value.numerator)) + 20)
        return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-18))


def compare(truth: Truth, findings: Mapping[str, Any]) -> list[str]:
    """Every difference between a trace's findings and the truth, one line each; empty when they match exactly."""
    out: list[str] = []
    loops = findings.get("loops", [])
    if not truth.iterations:
        if loops:
            out.append(f"loops: expected none, found {len(loops)}")
    elif len(loops) != 1:
        out.append(f"loops: expected 1 loop of {len(truth.iterations)} iteration(s), found {len(loops)} loop(s)")
    else:
        found = loops[0]["iterations"]
        if len(found) != len(truth.iterations):
            out.append(f"loop iterations: expected {len(truth.iterations)}, found {len(found)}")
        for want, got in zip(truth.iterations, found, strict=False):
            seen = (got["tx"], int(got["borrowed"]["raw"]), sum(int(m["raw"]) for m in got["minted"]),
                    [int(c["raw"]) for c in got["collateral"]])
            expect = (want.borrow_tx, want.borrowed, want.minted, [want.posted])
            if seen != expect:
                out.append(f"iteration {want.index}: expected (tx, borrowed, minted, collateral) {expect}, "
                           f"found {seen}")
    mints = findings["provenance"]["mints"]
    if len(mints) != len(truth.mints):
        out.append(f"mints: expected {len(truth.mints)}, found {len(mints)}")
    for number, (want_mint, got_mint) in enumerate(zip(truth.mints, mints, strict=False), 1):
        if (got_mint["tx"], int(got_mint["raw"])) != (want_mint.tx, want_mint.raw):
            out.append(f"mint {number}: expected tx {want_mint.tx} raw {want_mint.raw}, found tx {got_mint['tx']} "
                       f"raw {got_mint['raw']}")
            continue
        wrong = {b: (str(share_text(want_mint.shares[b])), got_mint["shares"].get(b)) for b in BUCKETS
                 if Decimal(got_mint["shares"].get(b, "NaN")) != share_text(want_mint.shares[b])}
        if wrong:
            who = "outsider" if want_mint.iteration is None else f"loop iteration {want_mint.iteration}"
            out.append(f"mint {number} ({who}): shares (expected, found) {wrong}")
    return out


# ---------------------------------------------------------------------------------------------
# A standalone lab and the soak
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioLab:
    url: str
    chain_id: int
    deployer: str
    usdc: Contract
    morpho: MorphoLab
    lltv: int
    lab_contracts: Compiled


def start_lab(chain_id: int = 1) -> Generator[ScenarioLab, None, None]:
    """A generator yielding a fresh anvil lab (Multicall3, Morpho Blue, lab USDC); stops the node when closed."""
    from auditor.lab.compile import compile_lab_contracts
    from auditor.lab.deploy import accounts, deploy_lab_token, install_multicall3
    from auditor.lab.morpho import deploy_morpho
    from auditor.lab.node import start_anvil

    node = start_anvil(chain_id)
    try:
        deployer = accounts(node.url)[0]
        install_multicall3(node.url)
        built = compile_lab_contracts()
        morpho = deploy_morpho(node.url, deployer)
        morpho.enable_irm()
        morpho.enable_lltv(LAB_LLTV)
        usdc = deploy_lab_token(node.url, "USD Coin (lab)", "USDC", 6, sender=deployer, compiled=built)
        yield ScenarioLab(node.url, chain_id, deployer, usdc, morpho, LAB_LLTV, built)
    finally:
        node.stop()


def start_lending_chain(lab: LabLike, chain_id: int = PLUME_CHAIN_ID) -> Generator[LendingChain, None, None]:
    """A generator yielding the second chain of two-chain scenarios (anvil at `chain_id`, Multicall3, Morpho Blue
    built as `lab`'s, bridged USDC relayed by `lab.deployer`); stops the node when closed."""
    from auditor.lab.deploy import install_multicall3
    from auditor.lab.morpho import deploy_morpho
    from auditor.lab.node import start_anvil

    node = start_anvil(chain_id)
    try:
        install_multicall3(node.url)
        morpho = deploy_morpho(node.url, lab.deployer, compiled=lab.morpho.compiled)
        morpho.enable_irm()
        morpho.enable_lltv(lab.lltv)
        usdc = Contract.deploy(node.url, lab.lab_contracts["BridgedToken"], "USD Coin (bridged)", "USDC", 6,
                               sender=lab.deployer)
        yield LendingChain(node.url, chain_id, usdc, morpho)
    finally:
        node.stop()


def run_seed(seed: int, lab: LabLike, folder: Path, plume: LendingChain | None = None) -> tuple[Plan, list[str]]:
    """Build and trace one seed on `lab` (and `plume`) and roll the chains back; returns the plan and the
    differences."""
    plan = draw(seed)
    urls = [lab.url, *([plume.url] if plume is not None and plan.chains == 2 else [])]
    snapshots = [(u, rpc(u, "evm_snapshot")) for u in urls]
    try:
        scenario = build(plan, lab, plume)
        problems = compare(scenario.truth, trace(scenario, lab.url, folder / f"seed-{seed}"))
    finally:
        for u, snapshot in snapshots:
            rpc(u, "evm_revert", [snapshot])
    return plan, problems


def topology(plan: Plan) -> str:
    """The lender and chains of a plan, as the soak reports them: "morpho", "aave", "morpho, 2 chains (lock)"."""
    return plan.lender + (f", 2 chains ({plan.usdc_bridge})" if plan.chains == 2 else "")


def _table(title: str, results: Mapping[str, Sequence[tuple[int, list[str]]]]) -> list[str]:
    lines = [f"| {title} | seeds | exact | failing | first failure |", "|---|---|---|---|---|"]
    for key, rows in results.items():
        failing = [(s, p) for s, p in rows if p]
        first = f"seed {failing[0][0]}: {failing[0][1][0]}" if failing else ""
        first = first.replace("|", "\\|")[:300]
        lines.append(f"| {key} | {len(rows)} | {len(rows) - len(failing)} | {len(failing)} | {first} |")
    return lines


def _soak(seeds: Sequence[int], out: Path | None) -> int:
    lab_gen = start_lab()
    lab = next(lab_gen)
    plume_gen = start_lending_chain(lab) if any(draw(seed).chains == 2 for seed in seeds) else None
    plume = next(plume_gen) if plume_gen is not None else None
    by_design: dict[str, list[tuple[int, list[str]]]] = {d: [] for d in DESIGNS}
    by_topology: dict[str, list[tuple[int, list[str]]]] = {}
    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="scenarios-") as tmp:
            for seed in seeds:
                plan, problems = run_seed(seed, lab, Path(tmp), plume)
                by_design[plan.design].append((seed, problems))
                by_topology.setdefault(topology(plan), []).append((seed, problems))
                status = "ok" if not problems else f"FAIL: {problems[0]}"
                print(f"seed {seed} ({plan.design}, {topology(plan)}, {plan.iterations} iteration(s)): {status}",
                      file=sys.stderr)
    finally:
        if plume_gen is not None:
            plume_gen.close()
        lab_gen.close()
    elapsed = time.monotonic() - began
    passed = sum(not p for rows in by_design.values() for _s, p in rows)
    first = f" --first {seeds[0]}" if seeds[0] else ""
    lines = [
        "# Generated scenarios: tracer vs construction truth",
        "",
        f"`python -m auditor.lab.scenarios --seeds {len(seeds)}{first}` (seeds {seeds[0]}..{seeds[-1]}): "
        f"**{passed} of {len(seeds)}** match exactly ({elapsed:.0f} s).",
        "",
        *_table("design", by_design),
        "",
        *_table("lender, chains", dict(sorted(by_topology.items()))),
    ]
    text = "\n".join(lines) + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)
    return 0 if passed == len(seeds) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m auditor.lab.scenarios", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=300, help="how many seeds (from --first)")
    parser.add_argument("--first", type=int, default=0, help="first seed")
    parser.add_argument("--out", type=Path, default=None, help="write the pass count by design (markdown)")
    args = parser.parse_args(argv)
    return _soak(list(range(args.first, args.first + args.seeds)), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
