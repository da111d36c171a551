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

Soak: `python -m auditor.lab.scenarios --seeds 300 --out benchmarks/scenarios.md`.
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

from auditor.lab.compile import Compiled
from auditor.lab.deploy import Contract
from auditor.lab.morpho import MarketParams, MorphoLab, oracle_price
from auditor.lab.node import rpc

__all__ = [
    "BUCKETS",
    "DESIGNS",
    "IterationTruth",
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
    "trace",
]

BUCKETS = ("external", "borrowed", "prior", "recycled", "unpaid")  # the tracer's buckets, in its order
DESIGNS = ("vault", "minter", "erc4626", "operator")
USDC = 10**6
MAX_UINT = 2**256 - 1
LAB_LLTV = 860_000_000_000_000_000
CHAIN = "ethereum"


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One in-window action. `actor`/`to` are role names ("w0".."w3" issuer wallets, "o0".."o2" outsiders,
    "stranger", "custodian"); amounts are raw (USDC 6 decimals, token `Plan.decimals`).

    kinds: "usdc" (actor -> to USDC), "token" (actor -> to issued token), "mint" (actor pays `amount` USDC by the
    plan's design and receives `minted`; "operator" mints `gap` blocks after the payment), "post" (actor supplies
    `amount` tokens as Morpho collateral), "borrow" (actor borrows `amount` USDC against its collateral).
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
    steps.append(Step("post", poster, posted, purpose="seed", iteration=0))
    ledger.tokens[poster] -= posted
    collateral[poster] = collateral.get(poster, 0) + posted
    borrowed_total = 0
    for iteration, ltv in enumerate(ltvs, 1):
        outside_noise()
        borrow = posted * ltv.numerator // (ltv.denominator * scale)  # price 1: token raw / scale = USDC raw
        steps.append(Step("borrow", poster, borrow, purpose="loop", iteration=iteration))
        ledger.receive(poster, borrow, 1, iteration)
        debt[poster] = debt.get(poster, 0) + borrow
        borrowed_total += borrow
        minter_wallet = hops(poster, borrow, transfer_usdc, "hop", iteration)
        outside_noise()
        if rng.random() < 0.3:
            transfer_usdc(rng.choice(outsiders), minter_wallet, _money(rng, 10, 5_000), "topup", iteration)
        cash = ledger.usdc[minter_wallet]
        pay = cash if rng.random() < 0.7 else cash * rng.randint(50, 95) // 100
        posted = mint(minter_wallet, pay, "loop", iteration)
        poster = hops(minter_wallet, posted, transfer_token, "hop", iteration)
        steps.append(Step("post", poster, posted, purpose="loop", iteration=iteration))
        ledger.tokens[poster] -= posted
        collateral[poster] = collateral.get(poster, 0) + posted
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
                lender_supply=borrowed_total + 1_000 * USDC, ltvs=ltvs, steps=tuple(steps), expected=expected)


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
    debt: int  # raw USDC the issuer owes Morpho at the end (zero-rate IRM: what it borrowed)
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
    window: tuple[int, int]  # (from_block, to_block), inclusive
    truth: Truth
    token: str
    usdc: str
    morpho: str
    market: MarketParams
    addresses: Mapping[str, str] = field(default_factory=dict)  # role -> address

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write registry.yaml and <spec_id>.yaml into `folder`; returns (registry path, spec path)."""
        folder.mkdir(parents=True, exist_ok=True)
        registry, spec = folder / "registry.yaml", folder / f"{self.spec_id}.yaml"
        registry.write_text(self.registry_yaml)
        spec.write_text(self.spec_yaml)
        return registry, spec


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


def build(plan: Plan, lab: LabLike) -> Scenario:
    """Deploy and run `plan` on the lab node (fresh addresses per seed: run each seed once per chain state)."""
    url, deployer = lab.url, lab.deployer
    addr: dict[str, str] = {role: plan.address(role) for role in plan.roles}
    for address in addr.values():
        rpc(url, "anvil_impersonateAccount", [address])
        rpc(url, "anvil_setBalance", [address, hex(10**21)])
    usdc, morpho = lab.usdc, lab.morpho
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
    # the market: the issued token as collateral, USDC loans, fixed price 1, a zero-rate IRM (debt = borrowed)
    irm = Contract.deploy(url, morpho.compiled["FixedRateIrm"], 0, sender=deployer)
    morpho.enable_irm(irm.address)
    if not morpho.morpho.call("isLltvEnabled", lab.lltv):
        morpho.enable_lltv(lab.lltv)
    oracle = morpho.deploy_oracle(oracle_price(1, 6, plan.decimals))
    market = MarketParams(usdc.address, token.address, oracle.address, irm.address, lab.lltv)
    morpho.create_market(market)
    # pre-window funding and approvals (no Transfer of the issued token, no issuer USDC but the prior seed)
    usdc.transact("mint", addr["lender"], plan.lender_supply, sender=deployer)
    usdc.transact("approve", morpho.morpho.address, MAX_UINT, sender=addr["lender"])
    morpho.morpho.transact("supply", market.as_tuple(), plan.lender_supply, 0, addr["lender"], b"",
                           sender=addr["lender"])
    for role, raw in (*plan.outsider_funds, *plan.prior):
        usdc.transact("mint", addr[role], raw, sender=deployer)
    for role in (*plan.wallets, *plan.outsiders):
        if plan.design != "operator":
            usdc.transact("approve", payee, MAX_UINT, sender=addr[role])
    for role in plan.wallets:
        token.transact("approve", morpho.morpho.address, MAX_UINT, sender=addr[role])

    start = _head(url) + 1
    txs: list[str] = []  # per step: its (last) transaction
    paid: dict[int, str] = {}  # step index -> payment tx (operator mints)
    for index, step in enumerate(plan.steps):
        actor = addr[step.actor]
        if step.kind == "usdc":
            receipt = usdc.transact("transfer", addr[step.to], step.amount, sender=actor)
        elif step.kind == "token":
            receipt = token.transact("transfer", addr[step.to], step.amount, sender=actor)
        elif step.kind == "post":
            receipt = morpho.morpho.transact("supplyCollateral", market.as_tuple(), step.amount, actor, b"",
                                             sender=actor)
        elif step.kind == "borrow":
            receipt = morpho.morpho.transact("borrow", market.as_tuple(), step.amount, 0, actor, actor, sender=actor)
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
    truth = _truth(plan, txs, paid, addr)
    spec_id = f"scenario-{plan.seed}"
    return Scenario(plan=plan, spec_id=spec_id, spec_yaml=_spec_yaml(spec_id, plan, addr, symbol),
                    registry_yaml=_registry_yaml(lab.chain_id, usdc.address, morpho.morpho.address),
                    window=(start, end), truth=truth, token=token.address, usdc=usdc.address,
                    morpho=morpho.morpho.address, market=market, addresses=addr)


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
    accounts = [(addr[w], f"issuer wallet {w}") for w in plan.wallets]
    if plan.custodian_listed:
        accounts.append((addr["custodian"], "custodian"))
    text = (f"id: {spec_id}\nname: {spec_id} ({plan.design}, lab)\ntoken:\n  symbol: {symbol}\n  deployments:\n"
            f"    - {{chain: {CHAIN}, address: \"{addr['token']}\"}}\naccounts:\n")
    return text + "".join(f"  - {{chain: {CHAIN}, address: \"{a}\", label: {label}}}\n" for a, label in accounts)


def _registry_yaml(chain_id: int, usdc: str, morpho: str) -> str:
    return (f"chains:\n  {CHAIN}: {{chain_id: {chain_id}}}\nassets:\n  {CHAIN}:\n"
            f"    USDC: {{address: \"{usdc}\", decimals: 6, price: par}}\n"
            f"venues:\n  morpho_blue:\n    {CHAIN}: {{address: \"{morpho}\", from_block: 0}}\n")


# ---------------------------------------------------------------------------------------------
# Tracing and comparing
# ---------------------------------------------------------------------------------------------


def trace(scenario: Scenario, url: str, folder: Path) -> dict[str, Any]:
    """Write the scenario's inputs to `folder` and run the tracer on its window (no read cache)."""
    from auditor.chain.reader import ConnectOptions, connect
    from auditor.spec import load_registry, load_spec
    from auditor.trace import run_trace

    registry_path, spec_path = scenario.write(folder)
    registry = load_registry(registry_path)
    spec = load_spec(spec_path, registry, frozenset({scenario.spec_id}))
    clients = connect({CHAIN: registry.chains[CHAIN]}, ConnectOptions(rpc={CHAIN: url}, use_cache=False))
    return run_trace(scenario.spec_id, {scenario.spec_id: spec}, registry, clients, {CHAIN: scenario.window})


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


def run_seed(seed: int, lab: LabLike, folder: Path) -> tuple[Plan, list[str]]:
    """Build and trace one seed on `lab` and roll the chain back; returns the plan and the differences."""
    plan = draw(seed)
    snapshot = rpc(lab.url, "evm_snapshot")
    try:
        scenario = build(plan, lab)
        problems = compare(scenario.truth, trace(scenario, lab.url, folder / f"seed-{seed}"))
    finally:
        rpc(lab.url, "evm_revert", [snapshot])
    return plan, problems


def _soak(seeds: Sequence[int], out: Path | None) -> int:
    lab_gen = start_lab()
    lab = next(lab_gen)
    results: dict[str, list[tuple[int, list[str]]]] = {d: [] for d in DESIGNS}
    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="scenarios-") as tmp:
            for seed in seeds:
                plan, problems = run_seed(seed, lab, Path(tmp))
                results[plan.design].append((seed, problems))
                status = "ok" if not problems else f"FAIL: {problems[0]}"
                print(f"seed {seed} ({plan.design}, {plan.iterations} iteration(s)): {status}", file=sys.stderr)
    finally:
        lab_gen.close()
    elapsed = time.monotonic() - began
    passed = sum(not p for rows in results.values() for _s, p in rows)
    lines = [
        "# Generated scenarios: tracer vs construction truth",
        "",
        f"`python -m auditor.lab.scenarios --seeds {len(seeds)}` (seeds {seeds[0]}..{seeds[-1]}): "
        f"**{passed} of {len(seeds)}** match exactly ({elapsed:.0f} s).",
        "",
        "| design | seeds | exact | failing | first failure |",
        "|---|---|---|---|---|",
    ]
    for design, rows in results.items():
        failing = [(s, p) for s, p in rows if p]
        first = f"seed {failing[0][0]}: {failing[0][1][0]}" if failing else ""
        first = first.replace("|", "\\|")[:300]
        lines.append(f"| {design} | {len(rows)} | {len(rows) - len(failing)} | {len(failing)} | {first} |")
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
