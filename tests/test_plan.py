"""Reads planned in rounds: every plan's reads of a round go out as one batched request per chain."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.chain.abi import address_topic
from auditor.chain.plan import Plan, at_block, gather, logs, optional, reads, run_plan, run_plans
from auditor.chain.reader import Read
from auditor.chain.rpc import ChainError, ConfigError
from auditor.lab.node import rpc
from tests.conftest import Lab
from tests.faultproxy import FaultProxy, ItemFault
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


def test_reads_at_earlier_blocks_ride_in_the_same_round(chain: Lab) -> None:
    """A plan run `at_block` reads the state of that block, in the same batch as the pin's reads, and proves
    the block it ran at; a read there the node cannot answer stays in its result, out of the audit's gaps."""
    lab = chain
    holder = lab.accounts[7]
    history = []
    for amount in (3, 5, 11):
        lab.usdc.transact("mint", holder, amount * 10**6)
        history.append(int(rpc(lab.url, "eth_blockNumber"), 16))
    client = client_for(lab.url)
    client.read([Read(lab.usdc.address, "decimals()", returns=("uint8",))])  # mode detection, out of the count
    balance = Read(lab.usdc.address, "balanceOf(address)", (holder,))

    def over_time() -> Plan[list[Any]]:
        found: list[Any] = yield from gather(*(at_block(block, reads([balance])) for block in history[:-1]),
                                             reads([balance]))
        return found

    before = client.stats.http_requests
    answers = run_plan(client, over_time())
    assert [results[0].one for results in answers] == [3 * 10**6, 8 * 10**6, 19 * 10**6]
    assert client.stats.http_requests - before == 1  # three blocks, one request
    with pytest.raises(ConfigError):  # the future is not state of the pinned chain
        run_plan(client, at_block(client.pinned.number + 1, reads([balance])))
    with pytest.raises(TypeError):  # a log scan has its own window: at_block refuses to guess one
        run_plan(client, at_block(history[0], logs([lab.usdc.address], [TRANSFER], 0)))


def test_a_past_block_the_node_cannot_read_is_the_samples_business(chain: Lab) -> None:
    lab = chain
    pruned = ItemFault("error", contains='"0x1"', error={"code": -32000, "message": "missing trie node"})
    with FaultProxy(lab.url, item_faults=[pruned]) as proxy:
        client = client_for(proxy.url)
        balance = Read(lab.usdc.address, "totalSupply()")
        past, now = run_plan(client, gather(at_block(1, reads([balance])), reads([balance])))
    assert past[0].unavailable and "missing trie node" in past[0].error
    assert now[0].ok and client.unread == []  # nothing missing at the pin: the audit's figures are whole
    # Pruned state does not come back on a retry: asked once. At the pin the same words are retried (a lagging
    # backend behind a load balancer).
    assert client.stats.retries == 0 and pruned.hits == 1


def test_scans_of_one_shape_share_one_filter_and_get_their_own_logs(chain: Lab) -> None:
    """Two Transfer scans of the same token and blocks, one per recipient, go to the node as one filter (topics
    OR-ed); each gets exactly the logs it asked for, as separate scans would."""
    lab = chain
    first, second, other = lab.accounts[3], lab.accounts[4], lab.accounts[5]
    start = int(rpc(lab.url, "eth_blockNumber"), 16) + 1
    for index, holder in enumerate((first, second, other, first)):
        lab.usdc.transact("mint", holder, (index + 1) * 10**6)
    recipients = [[TRANSFER, None, address_topic(first)], [TRANSFER, None, address_topic(second)]]

    def both() -> Plan[list[Any]]:
        found: list[Any] = yield from gather(*(logs([lab.usdc.address], topics, start) for topics in recipients))
        return found

    client = client_for(lab.url)
    before = client.stats.calls["eth_getLogs"]
    to_first, to_second = run_plan(client, both())
    assert client.stats.calls["eth_getLogs"] - before == 1  # one filter, one window
    separately = [run_plan(client_for(lab.url), logs([lab.usdc.address], topics, start)) for topics in recipients]
    assert [to_first, to_second] == separately
    assert [int.from_bytes(log.data, "big") for log in to_first] == [10**6, 4 * 10**6]
    assert [int.from_bytes(log.data, "big") for log in to_second] == [2 * 10**6]
