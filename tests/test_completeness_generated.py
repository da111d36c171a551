"""Seeded completeness worlds (auditor/lab/completeness.py) against the truth of their own draw: lenders no
registry lists, repayments, deposits, an unlisted vault, payouts and internal moves in an order each seed draws."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.lab.completeness import KINDS, audit, build, compare, draw, truth
from tests.conftest import Lab

SEEDS = [0, 3, 7, 11, 22, 5, 9, 63]  # every kind of operation, a full repayment, worlds owing nothing


@pytest.mark.parametrize("seed", SEEDS)
def test_a_seeded_world_is_found_exactly(seed: int, chain: Lab, tmp_path: Path) -> None:
    world = build(draw(seed), chain.url, chain.usdc, chain.lab_contracts, tmp_path)
    assert compare(world, audit(world, chain.url)) == []


def test_the_seeds_cover_every_kind_of_operation_and_both_verdicts() -> None:
    plans = [draw(seed) for seed in SEEDS]
    assert {op.kind for plan in plans for op in plan.ops} == set(KINDS)
    unexplained = [sum(truth(plan).unexplained) for plan in plans]
    assert any(unexplained) and not all(unexplained)  # some worlds owe a lender at the pin, some repaid


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9))
def test_every_draw_is_possible_and_its_truth_balances(seed: int) -> None:
    plan = draw(seed)
    facts = truth(plan)
    assert all(r <= b for b, r in zip(facts.borrowed, facts.repaid, strict=True))  # never repays what it never owed
    assert facts.backing >= 0 and 0 <= facts.with_lenders <= facts.moved
    assert 0 <= facts.coverage <= 1
