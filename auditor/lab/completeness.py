"""Seeded worlds for the completeness checks: an issuer whose accounts take deposits, borrow from lenders no
registry lists, repay some of it, park money in a vault nobody listed and pay people, in an order a seed draws.

The truth comes from the draw alone, in exact integers: per lender, what the issuer borrowed and repaid (an
unexplained inflow is borrowed minus repaid, when positive); the verifiable backing (USDC held plus vault shares
at their assets); the value moved with outsiders and the part moved with lenders the audit cannot read (coverage).
`python -m auditor.lab.completeness --seeds N` runs N seeds against their truth (the soak); tests run a few.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from auditor.lab.deploy import Contract, accounts, deploy_lab_token, install_multicall3
from auditor.lab.node import rpc, start_anvil

USDC = 10**6
KINDS = ("deposit", "borrow", "repay", "vault_in", "vault_out", "internal", "payout", "post_own")
OWN = 1_000  # whole aUSD minted to each issuer account at the start: its own token, worth 0 as its backing


@dataclass(frozen=True)
class Op:
    kind: str  # one of KINDS
    account: int  # which issuer account (0 or 1)
    amount: int  # whole USDC
    lender: int = 0  # which unknown lender, for borrow, repay and post_own


@dataclass
class Truth:
    """What the audit must find, from the draw."""

    borrowed: list[int]  # whole USDC, per lender
    repaid: list[int]
    backing: int  # whole USDC: held plus vault assets
    moved: int  # whole USDC moved between the issuer and anyone else (internal moves excluded)
    with_lenders: int  # of which with the unknown lenders

    @property
    def unexplained(self) -> list[int]:
        return [max(0, b - r) for b, r in zip(self.borrowed, self.repaid, strict=True)]

    @property
    def coverage(self) -> Fraction:
        return Fraction(self.moved - self.with_lenders, self.moved) if self.moved else Fraction(1)


@dataclass
class Draw:
    seed: int
    lenders: int
    ops: list[Op] = field(default_factory=list)


def draw(seed: int) -> Draw:
    """The operations of one world; every one is possible when it runs (no repaying more than is owed, no
    spending more than is held, a vault never emptied: a vault fully left is a place the audit cannot read)."""
    rng = random.Random(seed)
    plan = Draw(seed, rng.randint(1, 3))
    held = [0, 0]
    owed = [[0] * plan.lenders for _ in range(2)]
    shares = [0, 0]
    own = [OWN, OWN]
    for _ in range(rng.randint(4, 12)):
        account = rng.randint(0, 1)
        owes = any(owed[account])
        # deposit, borrow, repay (likelier when owing, half the time in full), vault in/out, internal, payout, and
        # the issuer's own token sent to a lender (posted as collateral: it must explain none of the lender's cash)
        kind = rng.choices(KINDS, weights=(2, 2, 4 if owes else 0, 1, 1, 1, 1, 1))[0]
        amount = rng.randint(1, 1_000)
        lender = rng.randrange(plan.lenders)
        if kind == "deposit":
            held[account] += amount
        elif kind == "borrow":
            owed[account][lender] += amount
            held[account] += amount
        elif kind == "repay":
            owing = [i for i in range(plan.lenders) if owed[account][i]]
            lender = rng.choice(owing) if owing else lender
            amount = min(owed[account][lender] if rng.random() < 0.5 else amount, owed[account][lender],
                         held[account])
            if amount == 0:
                continue
            owed[account][lender] -= amount
            held[account] -= amount
        elif kind == "vault_in":
            amount = min(amount, held[account])
            if amount == 0:
                continue
            held[account] -= amount
            shares[account] += amount
        elif kind == "vault_out":
            amount = min(amount, shares[account] - 1)
            if amount <= 0:
                continue
            shares[account] -= amount
            held[account] += amount
        elif kind == "post_own":
            amount = min(amount, own[account])
            if amount == 0:
                continue
            own[account] -= amount
        elif kind in ("internal", "payout"):
            amount = min(amount, held[account])
            if amount == 0:
                continue
            held[account] -= amount
            if kind == "internal":
                held[1 - account] += amount
        plan.ops.append(Op(kind, account, amount, lender))
    return plan


def truth(plan: Draw) -> Truth:
    borrowed, repaid = [0] * plan.lenders, [0] * plan.lenders
    backing = with_lenders = 0
    moved = 2 * OWN  # the accounts' own tokens minted to them (at par): a mint, understood
    for op in plan.ops:
        if op.kind == "post_own":
            with_lenders += op.amount  # at par, sent to a contract the audit cannot read
        if op.kind == "borrow":
            borrowed[op.lender] += op.amount
            with_lenders += op.amount
        elif op.kind == "repay":
            repaid[op.lender] += op.amount
            with_lenders += op.amount
        if op.kind != "internal":
            moved += op.amount
        backing += {"deposit": op.amount, "borrow": op.amount, "repay": -op.amount, "payout": -op.amount}.get(
            op.kind, 0)
    return Truth(borrowed, repaid, backing, moved, with_lenders)


@dataclass
class World:
    plan: Draw
    pin: int
    lenders: list[str]
    vault: str
    spec: Path
    registry: Path


def build(plan: Draw, url: str, usdc: Contract, compiled: Any, folder: Path) -> World:
    """Deploy the world's contracts on `url` and run the draw; write its spec and registry into `folder`."""
    people = accounts(url)
    treasury, outsider = people[3:5], people[5]
    token = Contract.deploy(url, compiled["LabToken"], "Alpha USD", "aUSD", 6)
    token.transact("mint", outsider, 10_000 * USDC)
    for account in treasury:
        token.transact("mint", account, OWN * USDC)
    lenders = [Contract.deploy(url, compiled["PrivateLender"], usdc.address) for _ in range(plan.lenders)]
    for lender in lenders:
        usdc.transact("mint", lender.address, 100_000 * USDC)
    vault = Contract.deploy(url, compiled["LabVault"], usdc.address, "Quiet Vault", "qV")
    for op in plan.ops:
        who, raw = treasury[op.account], op.amount * USDC
        if op.kind == "deposit":
            usdc.transact("mint", outsider, raw)
            usdc.transact("transfer", who, raw, sender=outsider)
        elif op.kind == "borrow":
            lenders[op.lender].transact("borrow", raw, sender=who)
        elif op.kind == "repay":
            usdc.transact("approve", lenders[op.lender].address, raw, sender=who)
            lenders[op.lender].transact("repay", raw, sender=who)
        elif op.kind == "vault_in":
            usdc.transact("approve", vault.address, raw, sender=who)
            vault.transact("deposit", raw, who, sender=who)
        elif op.kind == "vault_out":
            vault.transact("withdraw", raw, who, who, sender=who)
        elif op.kind == "internal":
            usdc.transact("transfer", treasury[1 - op.account], raw, sender=who)
        elif op.kind == "payout":
            usdc.transact("transfer", outsider, raw, sender=who)
        elif op.kind == "post_own":
            token.transact("transfer", lenders[op.lender].address, raw, sender=who)
    registry = folder / "registry.yaml"
    registry.write_text("chains:\n  ethereum: {chain_id: 1}\n"
                        f"assets:\n  ethereum:\n    USDC: {{address: \"{usdc.address}\", decimals: 6, price: par}}\n")
    spec = folder / "alpha.yaml"
    spec.write_text("id: alpha\nname: Alpha\ntoken:\n  symbol: aUSD\n  deployments:\n"
                    f"    - {{chain: ethereum, address: \"{token.address}\"}}\naccounts:\n"
                    + "".join(f"  - {{chain: ethereum, address: \"{a}\", label: account {i}}}\n"
                              for i, a in enumerate(treasury)))
    return World(plan, int(rpc(url, "eth_blockNumber"), 16), [c.address.lower() for c in lenders],
                 vault.address.lower(), spec, registry)


def audit(world: World, url: str) -> Any:
    from auditor.audit import AuditRequest, run_audit
    from auditor.chain.reader import ConnectOptions
    from auditor.spec import load_registry, load_spec

    registry = load_registry(world.registry)
    spec = load_spec(world.spec, registry)
    options = ConnectOptions(rpc={"ethereum": url}, blocks={"ethereum": world.pin}, use_cache=False)
    return run_audit(AuditRequest(spec, registry, options))


def compare(world: World, result: Any) -> list[str]:
    """Every way the audit differs from the truth of the draw (empty: it found exactly what was built)."""
    expected = truth(world.plan)
    problems = []
    figures = result.backing.issuers["alpha"]
    if figures.verifiable_backing_usd != expected.backing:
        problems.append(f"backing {figures.verifiable_backing_usd} != {expected.backing}")
    found = unexplained_by_contract(result)
    for lender, amount in zip(world.lenders, expected.unexplained, strict=True):
        got = found.pop(lender, None)
        if amount == 0 and got is not None:
            problems.append(f"lender {lender}: {got} unexplained but repaid in full")
        elif amount and got != amount:
            problems.append(f"lender {lender}: expected {amount} unexplained, found {got}")
    if found:
        problems.append(f"unexplained inflows from contracts that lent nothing: {sorted(found)}")
    if abs(Fraction(result.coverage["alpha"]) - expected.coverage) > Fraction(1, 10**20):  # Decimal division
        problems.append(f"coverage {result.coverage['alpha']} != {expected.coverage}")
    total = sum(expected.unexplained)
    material = total > 0 and (expected.backing == 0 or Fraction(total, expected.backing) >= Fraction(1, 100))
    if result.complete == material or result.bound("alpha") != ("at most" if material else "exact"):
        problems.append(f"complete {result.complete} / bound {result.bound('alpha')} with {total} unexplained "
                        f"against {expected.backing} of backing")
    return problems


def unexplained_by_contract(result: Any) -> dict[str, Any]:
    """Contract -> net USD it paid in beyond what it was paid, from the typed unexplained-inflow findings."""
    return {c["address"]: c["hard_in_usd"] - c["hard_out_usd"] for flag in result.flags
            if flag.id == "unexplained-inflow" for c in flag.evidence["contracts"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seeded completeness worlds against their truth (the soak).")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as markdown here")
    args = parser.parse_args(argv)
    from auditor.lab.compile import compile_lab_contracts

    compiled = compile_lab_contracts()
    node = start_anvil(1)
    failures: list[tuple[int, list[str]]] = []
    start = time.monotonic()
    try:
        install_multicall3(node.url)
        usdc = deploy_lab_token(node.url, "USD Coin", "USDC", 6)
        for seed in range(args.first, args.first + args.seeds):
            snapshot = rpc(node.url, "evm_snapshot")
            with tempfile.TemporaryDirectory() as folder:
                world = build(draw(seed), node.url, usdc, compiled, Path(folder))
                problems = compare(world, audit(world, node.url))
            rpc(node.url, "evm_revert", [snapshot])
            if problems:
                failures.append((seed, problems))
            print(f"seed {seed}: {'ok' if not problems else '; '.join(problems)}", file=sys.stderr)
    finally:
        node.stop()
    seconds = time.monotonic() - start
    lines = ["# Completeness worlds against their truth", "",
             f"`python -m auditor.lab.completeness --seeds {args.seeds} --first {args.first}`: "
             f"**{args.seeds - len(failures)} of {args.seeds}** match exactly ({seconds:.0f} s).", ""]
    lines += [f"- seed {seed}: {'; '.join(problems)}" for seed, problems in failures]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
