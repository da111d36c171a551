"""The seeded scenario generator (auditor/lab/scenarios.py): its truth against chain state; the tracer against it."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak

from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from auditor.lab.scenarios import (
    BUCKETS,
    DESIGNS,
    LENDERS,
    TOPOLOGY_FROM,
    LendingChain,
    Scenario,
    Step,
    build,
    compare,
    draw,
    start_lending_chain,
    topology,
    trace,
)
from tests.conftest import Lab
from tests.support import rolled_back

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
ZERO_TOPIC = "0x" + "0" * 64

# Seeds of the property test, chosen to cover every design and shape: 1-4 wallets, prior and external seeds,
# 0-8 iterations, 6- and 18-decimal tokens, outside top-ups (mixed shares), partial mints (a mint paid by two
# borrows), the custodian listed in the spec or not.
SEEDS = {
    "vault": [2, 10, 14, 19, 31],
    "erc4626": [5, 16, 35, 36],
    "minter": [1, 3, 22, 15, 8, 21],
    "operator": [0, 9, 12, 27, 38],
}
# Seeds >= TOPOLOGY_FROM also draw the lender (Morpho or Aave v3) and one or two chains (the loop's lending on a
# second chain, "plume": the token bridged by lock/mint and partly back by burn/release, the borrowed USDC bridged
# home by lock/release or burn/mint). By lender and chains; the design is in the comment.
TOPOLOGY_SEEDS = {
    "aave": [1007, 1033],  # vault (3 wallets, top-ups), minter (18 decimals)
    "morpho, 2 chains": [1018, 1044],  # operator (USDC burn/mint, 3 tokens sent back), minter (lock/release)
    "aave, 2 chains": [1041, 1093],  # operator (lock/release), erc4626 (burn/mint, 2 tokens sent back)
}
# What the tracer gets wrong, per seed, in one line. strict=True: the day the tracer gets one of these right, the
# test fails and the entry must go (minter seeds 8 and 21 left with cea5f4b, operator seeds 0, 9, 12, 27, 38 with
# the nearby-payment rule: payments of the last blocks claimed one payment per mint, exact amounts first).
# Seeds 1088, 1090, 1123, 1133 and 1135 failed in a 300-seed soak from 1000 that ran while the tracer changed
# (1f443ec landed during it); run alone on a later tracer they match, so none is marked.
KNOWN_FAILURES: dict[int, str] = {}


def _cases() -> list[Any]:
    cases = []
    for design, seeds in SEEDS.items():
        for seed in seeds:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[seed])] if seed in KNOWN_FAILURES else []
            cases.append(pytest.param(seed, id=f"{design}-{seed}", marks=marks))
    for seeds in TOPOLOGY_SEEDS.values():
        for seed in seeds:
            plan = draw(seed)
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[seed])] if seed in KNOWN_FAILURES else []
            name = f"{plan.design}-{plan.lender}-{plan.chains}chain{plan.usdc_bridge and '-' + plan.usdc_bridge}"
            cases.append(pytest.param(seed, id=f"{name}-{seed}", marks=marks))
    return cases


@pytest.fixture(scope="module")
def plume_node(lab: Lab) -> Iterator[LendingChain]:
    """The second chain (Plume's chain id), started once for this module."""
    nodes = start_lending_chain(lab)
    try:
        yield next(nodes)
    finally:
        nodes.close()


@pytest.fixture
def plume(plume_node: LendingChain) -> Iterator[LendingChain]:
    """The second chain, rolled back after the test like `chain`."""
    with rolled_back(plume_node.url):
        yield plume_node


# ------------------------------------------------------------------ the generator, without a chain


def test_draw_is_deterministic_and_pure() -> None:
    for seed in range(60):
        assert draw(seed) == draw(seed)
    assert len({draw(seed) for seed in range(60)}) == 60
    assert {draw(seed).design for seed in range(60)} == set(DESIGNS)
    assert {seed: draw(seed).design for design, seeds in SEEDS.items() for seed in seeds} == {
        seed: design for design, seeds in SEEDS.items() for seed in seeds}
    # older seeds draw no lender or chains: Morpho on one chain, as before those options existed
    assert {(draw(seed).lender, draw(seed).chains, draw(seed).usdc_bridge) for seed in range(300)} == {
        ("morpho", 1, "")}
    later = [draw(seed) for seed in range(TOPOLOGY_FROM, TOPOLOGY_FROM + 60)]
    assert {(p.lender, p.chains, p.usdc_bridge) for p in later} == {
        (lender, 1, "") for lender in LENDERS} | {(lender, 2, b) for lender in LENDERS for b in ("lock", "burn")}
    assert {seed: topology(draw(seed)).split(" (")[0] for seeds in TOPOLOGY_SEEDS.values() for seed in seeds} == {
        seed: key for key, seeds in TOPOLOGY_SEEDS.items() for seed in seeds}


@pytest.mark.parametrize("seed", [*range(200), *range(TOPOLOGY_FROM, TOPOLOGY_FROM + 100)])
def test_plan_expectations_are_consistent(seed: int) -> None:
    plan = draw(seed)
    expected = plan.expected
    assert 1 <= len(plan.wallets) <= 4 and 1 <= len(plan.outsiders) <= 3 and 0 <= plan.iterations <= 8
    assert all(Fraction(30, 100) <= ltv <= Fraction(80, 100) < Fraction(86, 100) for ltv in plan.ltvs)
    mints = [s for s in plan.steps if s.kind == "mint"]
    assert [m.raw for m in expected.mints] == [s.minted for s in mints]
    assert expected.supply == sum(s.minted for s in mints)
    for mint in expected.mints:
        assert sum(mint.shares) == 1 and all(share >= 0 for share in mint.shares)
        assert mint.shares[BUCKETS.index("recycled")] == 0 and mint.shares[BUCKETS.index("unpaid")] == 0
        if mint.iteration is None:
            assert mint.shares[0] == 1  # an outsider's own mint is outside money
        borrowed = sum(raw for _i, raw in mint.by_borrow)
        assert Fraction(borrowed, mint.usdc) == mint.shares[BUCKETS.index("borrowed")]
    posts = [s for s in plan.steps if s.kind == "post"]
    borrows = [s for s in plan.steps if s.kind == "borrow"]
    assert len(posts) == plan.iterations + 1 and len(borrows) == plan.iterations
    scale = 10 ** (plan.decimals - 6)
    for post, borrow, ltv in zip(posts, borrows, plan.ltvs, strict=False):
        assert post.actor == borrow.actor  # each borrow is taken against the collateral posted just before
        assert borrow.amount == post.amount * ltv.numerator // (ltv.denominator * scale)
    assert sum(v for _r, v in expected.debt) == sum(b.amount for b in borrows) < plan.lender_supply
    # two chains: every post is bridged first (some maybe sent back), every borrow crosses home whole, at once
    kinds = [s.kind for s in plan.steps]
    if plan.chains == 1:
        assert not {"bridge_token", "token_back", "bridge_usdc"} & set(kinds)
    else:
        for index, step in enumerate(plan.steps):
            if step.kind == "post":
                back = plan.steps[index - 1] if kinds[index - 1] == "token_back" else None
                bridged = plan.steps[index - (2 if back else 1)]
                assert bridged.kind == "bridge_token" and bridged.actor == step.actor
                assert bridged.amount == step.amount + (back.amount if back else 0)
                assert back is None or 0 < back.amount < bridged.amount
            if step.kind == "borrow":
                assert plan.steps[index + 1] == Step("bridge_usdc", step.actor, step.amount, purpose="loop",
                                                     iteration=step.iteration)
    assert dict(expected.collateral) == {w: sum(p.amount for p in posts if p.actor == w)
                                         for w in {p.actor for p in posts}}
    # USDC conservation: what the issuer holds = its prior seed + outsiders' top-ups and seed + borrows + outsiders'
    # mint payments
    into_issuer = sum(s.amount for s in plan.steps if s.kind == "usdc" and s.actor in plan.outsiders
                      and s.to in plan.wallets)
    outsider_mints = sum(m.usdc for m in expected.mints if m.iteration is None)
    assert sum(v for _r, v in expected.held_usdc) == (
        sum(v for _r, v in plan.prior) + into_issuer + sum(b.amount for b in borrows) + outsider_mints)


# ------------------------------------------------------------------ the generator against chain state


def _transfers(lab: Lab, token: str, start: int, end: int) -> list[tuple[str, str, int, str]]:
    logs = rpc(lab.url, "eth_getLogs", [{"address": token, "fromBlock": hex(start), "toBlock": hex(end),
                                         "topics": [TRANSFER_TOPIC]}])
    return [("0x" + log["topics"][1][-40:], "0x" + log["topics"][2][-40:], int(log["data"], 16),
             log["transactionHash"]) for log in logs]


def _balance(token: Contract, who: str, block: int) -> int:
    return int(token.call("balanceOf", who, block=block))


@pytest.mark.parametrize("seed", [2, 5, 1, 0, 38, 1007, 1018, 1041])
def test_scenario_truth_matches_chain_state(chain: Lab, plume: LendingChain, seed: int) -> None:
    scenario: Scenario = build(draw(seed), chain, plume)
    plan, truth = scenario.plan, scenario.truth
    start, end = scenario.window
    token = Contract(chain.url, scenario.token, chain.lab_contracts["LabToken"].abi, "token")
    assert token.call("totalSupply", block=end) == truth.supply
    assert token.call("totalSupply", block=start - 1) == 0
    # the issuer's USDC: wallets and custodian or vault (two chains: none left on the lending chain)
    holders = [scenario.addresses[r] for r in plan.holders]
    assert sum(_balance(chain.usdc, h, end) for h in holders) == truth.held_usdc
    # the lender's view of debt and collateral (Morpho's position, or Aave's aToken and variable debt token)
    lend_end = scenario.windows[plan.lending_chain][1]
    for wallet in plan.wallets:
        address = scenario.addresses[wallet]
        assert scenario.position(address, lend_end) == (truth.collateral.get(address, 0),
                                                        truth.debt_by_wallet.get(address, 0))
    assert truth.backing == truth.held_usdc - truth.debt
    if plan.chains == 2:
        plume_end = scenario.windows["plume"][1]
        copy = Contract(plume.url, scenario.collateral_token, chain.lab_contracts["BridgedToken"].abi, "copy")
        # what the escrow holds backs the copies exactly: the copies are all posted (the rest came back)
        assert copy.call("totalSupply", block=plume_end) == sum(truth.collateral.values())
        assert _balance(token, scenario.escrow, end) == sum(truth.collateral.values())
        assert all(_balance(plume.usdc, scenario.addresses[w], plume_end) == 0 for w in plan.wallets)
    # every mint in the window is one the truth names, with its amount and recipient, in order
    mints = [(dst, raw, tx) for src, dst, raw, tx in _transfers(chain, scenario.token, start, end)
             if src == "0x" + "0" * 40]
    assert [(dst.lower(), raw, tx) for dst, raw, tx in mints] == [
        (m.recipient.lower(), m.raw, m.tx) for m in truth.mints]
    # each borrow transaction paid exactly what the truth says to the borrower
    for iteration in truth.iterations:
        receipt = rpc(scenario.urls[plan.lending_chain], "eth_getTransactionReceipt", [iteration.borrow_tx])
        (paid,) = [int(log["data"], 16) for log in receipt["logs"]
                   if log["address"].lower() == scenario.lending_usdc.lower() and log["topics"][0] == TRANSFER_TOPIC]
        assert paid == iteration.borrowed
    # operator mints come 1-3 blocks after their payment; every other mint is paid in its own transaction
    for mint in truth.mints:
        if plan.design == "operator":
            blocks = [int(rpc(chain.url, "eth_getTransactionReceipt", [tx])["blockNumber"], 16)
                      for tx in (mint.paid_tx, mint.tx)]
            assert 1 <= blocks[1] - blocks[0] <= 3
        else:
            assert mint.paid_tx == mint.tx
    # the window holds only the plan's activity: one transaction per block
    assert end - start + 1 >= len(plan.steps)


# ------------------------------------------------------------------ the tracer against the truth


@pytest.mark.parametrize("seed", _cases())
def test_tracer_matches_generated_truth(chain: Lab, plume: LendingChain, tmp_path: Path, seed: int) -> None:
    scenario = build(draw(seed), chain, plume)
    findings = trace(scenario, chain.url, tmp_path / "inputs")
    problems = compare(scenario.truth, findings)
    assert not problems, "\n".join(problems)
    if scenario.truth.iterations:
        (loop,) = findings["loops"]
        assert loop["iteration_count"] == scenario.plan.iterations
    assert sum(int(m["raw"]) for m in findings["provenance"]["mints"]) == scenario.truth.supply
