"""Reads planned in rounds: every plan's reads of a round go out as one batched request per chain."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.chain.plan import Plan, gather, logs, optional, reads, run_plan, run_plans
from auditor.chain.reader import Read
from auditor.chain.rpc import ChainError
from tests.conftest import Lab
from tests.test_chain import client_for

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def balances_twice(lab: Lab, holder: str) -> Plan[tuple[int, int]]:
    """Two dependent rounds: a balance, then the other token's balance of the same holder."""
    (first,) = yield from reads([Read(lab.usdc.address, "balanceOf(address)", (holder,))])
    (second,) = yield from reads([Read(lab.weth.address, "balanceOf(address)", (holder,))])
    return first.one, second.one


def test_plans_advance_together_one_request_per_round(chain: Lab) -> None:
    lab = chain
    holders = lab.accounts[3:7]
    for index, holder in enumerate(holders):
        lab.usdc.transact("mint", holder, (index + 1) * 10**6)
        lab.weth.transact("mint", holder, (index + 1) * 10**18)
    client = client_for(lab.url)
    client.read([Read(lab.usdc.address, "decimals()", returns=("uint8",))])  # mode detection, out of the count
    before = client.stats.http_requests
    results = run_plans({holder: (client, balances_twice(lab, holder)) for holder in holders})
    assert results == {h: ((i + 1) * 10**6, (i + 1) * 10**18) for i, h in enumerate(holders)}
    # Four plans of two dependent rounds each: two requests, not eight.
    assert client.stats.http_requests - before == 2 and client.stats.rounds == 2


def test_gather_runs_side_by_side_and_optional_keeps_the_others_going(chain: Lab) -> None:
    lab = chain
    holders = lab.accounts[3:6]
    for index, holder in enumerate(holders):
        lab.usdc.transact("mint", holder, (index + 7) * 10**6)
    client = client_for(lab.url)
    client.read([Read(lab.usdc.address, "decimals()", returns=("uint8",))])

    def side_by_side() -> Plan[list[Any]]:
        found: list[Any] = yield from gather(*(balances_twice(lab, h) for h in holders),
                                             logs([lab.usdc.address], [TRANSFER], 0))
        return found

    def failing() -> Plan[int]:
        yield from reads([Read(lab.usdc.address, "totalSupply()")])
        raise ChainError("ethereum", "eth_call", "-", "a read the plan could not use")

    before = client.stats.http_requests
    results = run_plans({"together": (client, side_by_side()), "optional": (client, optional(failing()))})
    *balances, transfers = results["together"]
    assert balances == [((index + 7) * 10**6, 0) for index in range(3)]
    minted_to = {"0x" + log.topics[2][-40:] for log in transfers}
    assert {h.lower() for h in holders} <= minted_to  # the scan saw the three mints
    assert all(log.address.lower() == lab.usdc.address.lower() for log in transfers)
    value, error = results["optional"]
    assert value is None and isinstance(error, ChainError)
    # Round 1: three balances, the log scan's first window and the failing plan's read in one batch; round 2:
    # the other three balances.
    assert client.stats.http_requests - before == 2
    with pytest.raises(ChainError):  # without `optional` the error is the audit's
        run_plan(client, failing())
