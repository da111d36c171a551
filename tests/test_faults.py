"""Fail closed: every provider fault either leaves the answers identical or shows as unread reads or an error.

Each test drives the real client through the loopback fault proxy in front of anvil. The matrix runs every
fault twice: on a few calls (transient: the answers must be identical to a clean run) and on every call
(persistent: identical, or the reads listed in `client.unread`, or ChainError; never another value).
"""

from __future__ import annotations

import email.utils
import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.chain.cache import SqliteCache
from auditor.chain.evidence import Bundle
from auditor.chain.multicall import decode_aggregate3
from auditor.chain.reader import (
    NO_CONTRACT,
    ChainClient,
    ConnectOptions,
    Pin,
    Read,
    ReadResult,
    WrongBlockError,
    connect,
)
from auditor.chain.rpc import ChainError, ConfigError, HttpTransport, Stats
from auditor.lab.node import rpc
from auditor.spec import Chain
from tests.conftest import Lab
from tests.faultproxy import FaultProxy, ItemFault
from tests.test_chain import HOLDERS, TRANSFER, balance_reads, fast_policy, holders, node_without_multicall, values

__all__ = ["holders"]  # the module fixture of test_chain, shared: its 40 funded holders

READS = 300
CHUNK = 100  # three aggregate3 calls per read() batch, so a fault on "some calls" leaves others clean


@dataclass
class Run:
    client: ChainClient
    pin: Pin
    results: list[ReadResult]
    logs: list[Any]


def audit_like(url: str, block: int, reads: list[Read], lab: Lab, *, cache: SqliteCache | None = None,
               attempts: int = 4) -> Run:
    """What an audit asks of one chain: chain id, pin, contract reads, a log scan."""
    stats = Stats()
    client = ChainClient("ethereum", 1, HttpTransport("ethereum", url, stats, fast_policy(attempts=attempts,
                                                                                         timeout_s=0.5)),
                         stats, cache=cache, chunk_size=CHUNK)
    client.check_chain_id()
    pin = client.pin(block)
    results = client.read(reads) if reads else []  # none: leave the first read (mode detection) to the test
    logs = list(client.scan_logs([lab.usdc.address], [TRANSFER], 0, block))
    return Run(client, pin, results, logs)


Clean = tuple[Lab, list[Read], Run]


@pytest.fixture
def moved(holders: Lab, chain: Lab) -> tuple[Lab, int]:
    """The funded lab with one more block after the pin that changes a balance: answers at `latest` differ."""
    pinned = int(rpc(chain.url, "eth_blockNumber"), 16)
    chain.usdc.transact("mint", HOLDERS[0], 5)
    return chain, pinned


@pytest.fixture
def clean(moved: tuple[Lab, int]) -> Clean:
    """The matrix's reads and their answers at the pin straight from the node."""
    lab, block = moved
    reads = balance_reads(lab, READS)
    return lab, reads, audit_like(lab.url, block, reads, lab)


def _aggregate_rewrite(change: Callable[[list[tuple[bool, bytes]]], list[tuple[bool, bytes]]]) -> Callable[[str], str]:
    def rewrite(result: str) -> str:
        (items,) = decode(["(bool,bytes)[]"], bytes.fromhex(result[2:]))
        return "0x" + encode(["(bool,bytes)[]"], [change(list(items))]).hex()

    return rewrite


def _no_data(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in log.items() if k != "data"} for log in logs] or [{"address": "0x01"}]


# fault -> (item fault, what a persistent one must give: "unavailable" reads, "wrong_block" or "error")
ITEM_FAULTS: dict[str, tuple[ItemFault, str]] = {
    "header_not_found": (ItemFault("error"), "unavailable"),
    "internal_error": (ItemFault("error", error={"code": -32603, "message": "internal error"}), "unavailable"),
    "timeout": (ItemFault("error", error={"code": -32000, "message": "request timed out"}), "unavailable"),
    "temporarily_unavailable": (
        ItemFault("error", error={"code": -32010, "message": "service temporarily unavailable"}), "unavailable"),
    "result_0x": (ItemFault("result", result="0x"), "unavailable"),
    "result_null": (ItemFault("result", result=None), "unavailable"),
    "result_0xZZ": (ItemFault("result", result="0xZZ"), "unavailable"),
    "result_odd_length": (ItemFault("result", result="0x123"), "unavailable"),
    "result_not_a_string": (ItemFault("result", result=5), "unavailable"),
    "result_undecodable": (ItemFault("result", result="0x" + "ff" * 64), "unavailable"),
    "result_one_short": (ItemFault("result", result=_aggregate_rewrite(lambda items: items[:-1])), "unavailable"),
    "at_latest": (ItemFault("block", block="latest"), "wrong_block"),
    "at_block_1": (ItemFault("block", block="0x1"), "wrong_block"),
    "other_parent_hash": (
        ItemFault("result", result=_aggregate_rewrite(lambda items: [items[0], (True, b"\x11" * 32), *items[2:]])),
        "wrong_block"),
    "chain_id_0x": (ItemFault("result", method="eth_chainId", result="0x"), "error"),
    "chain_id_error": (ItemFault("error", method="eth_chainId"), "error"),
    "header_missing_hash": (ItemFault("result", method="eth_getBlockByNumber", result=lambda h: {**h, "hash": None}),
                            "error"),
    "header_of_another_block": (ItemFault("block", method="eth_getBlockByNumber", block="0x1"), "error"),
    "code_null": (ItemFault("result", method="eth_getCode", result=None), "error"),
    "code_0xZZ": (ItemFault("result", method="eth_getCode", result="0xZZ"), "error"),
    "code_error": (ItemFault("error", method="eth_getCode"), "error"),
    "logs_null": (ItemFault("result", method="eth_getLogs", result=None), "error"),
    "logs_missing_field": (ItemFault("result", method="eth_getLogs", result=_no_data), "error"),
    "logs_error": (ItemFault("error", method="eth_getLogs"), "error"),
}
REQUEST_FAULTS = ("drop", "delay", "429", "500", "503", "truncate", "wrong_ids")
MATRIX = [*ITEM_FAULTS, *REQUEST_FAULTS]


def install(proxy: FaultProxy, fault: str, count: int | None) -> str:
    """Install `fault` on `count` calls (None: all of them); return the expected persistent outcome."""
    if fault in REQUEST_FAULTS:
        proxy.state.faults = [fault] * (count if count is not None else 1000)
        proxy.state.delay_s = 1.0
        return "error"
    template, outcome = ITEM_FAULTS[fault]
    proxy.state.item_faults = [ItemFault(**{**template.__dict__, "count": count, "hits": 0})]
    return outcome


def assert_never_silently_wrong(run: Run, clean: Run) -> None:
    assert run.pin == clean.pin
    assert run.logs == clean.logs
    unread = [u.call for u in run.client.unread]
    for got, want in zip(run.results, clean.results, strict=True):
        if got.unavailable:
            assert not got.ok and got.read.describe() in unread
        else:
            assert (got.ok, got.value, got.error) == (want.ok, want.value, want.error)


@pytest.mark.parametrize("fault", MATRIX)
def test_fault_matrix_transient_faults_give_identical_results(clean: Clean, fault: str) -> None:
    lab, reads, baseline = clean
    with FaultProxy(lab.url) as proxy:
        install(proxy, fault, 2)
        run = audit_like(proxy.url, baseline.pin.number, reads, lab)
        assert sum(proxy.state.faults_injected.values()) == 2, proxy.state.faults_injected
    assert values(run.results) == values(baseline.results)
    assert run.logs == baseline.logs and run.pin == baseline.pin
    assert run.client.unread == [] and run.client.block_proof == "multicall"
    assert not any(r.unavailable for r in run.results)


@pytest.mark.parametrize("fault", MATRIX)
def test_fault_matrix_persistent_faults_never_give_another_value(clean: Clean, fault: str) -> None:
    lab, reads, baseline = clean
    block = baseline.pin.number
    with FaultProxy(lab.url) as proxy:
        expected = install(proxy, fault, None)
        try:
            run = audit_like(proxy.url, block, reads, lab, attempts=3)
        except ChainError as exc:
            assert expected in ("error", "wrong_block"), f"{fault}: {exc}"
            assert isinstance(exc, WrongBlockError) == (expected == "wrong_block"), exc
            assert str(exc).startswith("ethereum: ")
            return
    assert expected == "unavailable", fault
    assert_never_silently_wrong(run, baseline)
    assert all(r.unavailable and not r.ok for r in run.results)
    assert [u.call for u in run.client.unread] == [r.describe() for r in reads]
    assert {(u.chain, u.block) for u in run.client.unread} == {("ethereum", block)}


def test_header_not_found_on_some_calls_marks_only_those_reads(holders: Lab) -> None:
    """The issue's reproducer: "header not found" on WETH's balanceOf used to read as a zero balance."""
    usdc = [Read(holders.usdc.address, "balanceOf(address)", (h,)) for h in HOLDERS[:5]]
    weth = [Read(holders.weth.address, "balanceOf(address)", (h,)) for h in HOLDERS[:5]]
    with FaultProxy(holders.url, item_faults=[ItemFault("error", contains=holders.weth.address[2:])]) as proxy:
        client = audit_like(proxy.url, int(rpc(holders.url, "eth_blockNumber"), 16), [], holders).client
        got_usdc, got_weth = client.read(usdc), client.read(weth)
        client.read(weth)  # asked again: tried again, listed once
        assert proxy.state.faults_injected["item_error"] == 2 * 4  # two reads of WETH, 4 attempts each
    assert [r.one for r in got_usdc] == [(i + 1) * 10**6 for i in range(5)]
    assert not any(r.unavailable for r in got_usdc)
    assert all(not r.ok and r.unavailable and r.error == "header not found" for r in got_weth)
    assert [u.as_dict() for u in client.unread] == [
        {"chain": "ethereum", "block": client.pinned.number, "call": r.describe(), "reason": "header not found"}
        for r in weth
    ]


def test_a_revert_is_an_answer_and_is_never_retried(holders: Lab) -> None:
    reads = [
        Read(holders.usdc.address, "transfer(address,uint256)", (HOLDERS[1], 10**30), returns=("bool",)),
        Read(HOLDERS[500], "balanceOf(address)", (HOLDERS[0],)),  # no code: the empty answer is an answer
    ]
    with FaultProxy(holders.url) as proxy:
        client = audit_like(proxy.url, int(rpc(holders.url, "eth_blockNumber"), 16), [], holders).client
        retries = client.stats.retries
        reverted, empty = client.read(reads)
    assert not reverted.ok and not reverted.unavailable and reverted.error.startswith("reverted")
    assert not empty.ok and not empty.unavailable and empty.error == NO_CONTRACT  # no code there: an answer
    assert client.unread == [] and client.stats.retries == retries


def test_wrong_block_answers_are_refused_and_never_cached(clean: Clean, tmp_path: Path) -> None:
    lab, reads, baseline = clean
    block = baseline.pin.number
    cache = SqliteCache(tmp_path / "cache.sqlite3")
    with (FaultProxy(lab.url, item_faults=[ItemFault("block", block="latest")]) as proxy,
          pytest.raises(WrongBlockError) as info):
        audit_like(proxy.url, block, reads, lab, cache=cache)
    assert info.value.pinned == block and info.value.answered == block + 1
    assert f"ethereum: eth_call at block {block} failed: the node answered at block {block + 1}" in str(info.value)
    # A fresh client on the same cache asks the node again and gets the pin's values.
    with FaultProxy(lab.url) as proxy:
        again = audit_like(proxy.url, block, reads, lab, cache=cache)
        assert proxy.state.methods["eth_call"] == 3
    assert values(again.results) == values(baseline.results)
    # What is cached now is what was proven: a third client reads it all from disk.
    with FaultProxy(lab.url, item_faults=[ItemFault("error")]) as proxy:
        third = audit_like(proxy.url, block, reads, lab, cache=cache)
        assert proxy.state.methods["eth_call"] == 0
    assert values(third.results) == values(baseline.results)


def test_a_node_without_multicall_errs_instead_of_dropping_the_proof(lab: Lab) -> None:
    with node_without_multicall(lab) as (node, token, reads):
        head = int(rpc(node.url, "eth_blockNumber"), 16)
        for fault in (ItemFault("error"), ItemFault("result", result="0x"), ItemFault("error", method="eth_getCode")):
            with FaultProxy(node.url, item_faults=[fault]) as proxy:
                client = audit_like(proxy.url, head, [], lab, attempts=2).client
                with pytest.raises(ChainError, match="ethereum: eth_"):
                    client.read(reads)
                assert client.mode is None
        with FaultProxy(node.url) as proxy:
            proven = audit_like(proxy.url, head, reads, lab)
        assert [r.one for r in proven.results] == [77, 0, 0]
        assert (proven.client.mode, proven.client.block_proof) == ("override", "multicall")
        # Overrides refused by the node: plain eth_calls, reported unproven; their outage is still unread.
        with FaultProxy(node.url, refuse_overrides=True) as proxy:
            direct = audit_like(proxy.url, head, reads, lab)
            assert (direct.client.mode, direct.client.block_proof) == ("direct", "none")
            assert [r.one for r in direct.results] == [77, 0, 0]
            proxy.state.item_faults = [ItemFault("error", contains=HOLDERS[5][2:])]
            down = direct.client.read([Read(token.address, "balanceOf(address)", (HOLDERS[5],))])[0]
            reverted = direct.client.read([Read(token.address, "transfer(address,uint256)", (HOLDERS[1], 10**30),
                                                returns=("bool",))])[0]
        assert down.unavailable and [u.call for u in direct.client.unread] == [down.read.describe()]
        assert not reverted.ok and not reverted.unavailable


def _http_date(seconds_ahead: int) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


@pytest.mark.parametrize("status", ["429", "503"])
@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("3", 3.0, 3.0),
        ("2.5", 2.5, 2.5),
        ("date", 25.0, 31.0),
        ("-5", 0.0, 0.05),  # negative: garbage, the backoff decides
        ("99999999", 60.0, 60.0),  # capped by max_retry_after_s
        ("1e400", 60.0, 60.0),  # infinity, capped
        ("nan", 0.0, 0.05),
        ("soon", 0.0, 0.05),
        ("Wed, 99 Foo 2025 25:61:00 GMT", 0.0, 0.05),
    ],
)
def test_retry_after_in_every_form(holders: Lab, status: str, header: str, low: float, high: float) -> None:
    slept: list[float] = []
    retry_after = _http_date(30) if header == "date" else header
    with FaultProxy(holders.url, faults=[status], retry_after_s=retry_after) as proxy:
        stats = Stats()
        client = ChainClient("ethereum", 1, HttpTransport("ethereum", proxy.url, stats, fast_policy(slept)), stats)
        client.check_chain_id()
    assert len(slept) == 1 and low <= slept[0] <= high, slept


def test_replay_uses_the_bundles_pin(moved: tuple[Lab, int], tmp_path: Path) -> None:
    lab, _ = moved
    chains = {"ethereum": Chain("ethereum", 1)}
    reads = balance_reads(lab, 20)
    bundle = Bundle()
    recorded = connect(chains, ConnectOptions(rpc={"ethereum": lab.url}, use_cache=False, record=bundle))["ethereum"]
    recorded_values = values(recorded.read(reads))
    path = tmp_path / "evidence.json.gz"
    bundle.write(path)
    assert bundle.pins["ethereum"] == {
        "number": recorded.pinned.number, "hash": recorded.pinned.hash, "parent_hash": recorded.pinned.parent_hash,
        "timestamp": recorded.pinned.timestamp, "chain_id": 1,
    }
    rpc(lab.url, "evm_mine", [])  # the node moves on; the replay must not care

    loaded, _ = Bundle.read(path)
    replayed = connect(chains, ConnectOptions(replay=loaded))["ethereum"]  # no --block
    assert replayed.pinned == recorded.pinned
    assert values(replayed.read(reads)) == recorded_values and replayed.block_proof == "multicall"

    # The digest covers the pins: another pin is a tampered bundle.
    document = json.loads(gzip.decompress(path.read_bytes()))
    document["pins"]["ethereum"]["number"] -= 1
    path.write_bytes(gzip.compress(json.dumps(document).encode()))
    with pytest.raises(ConfigError, match="digest mismatch"):
        Bundle.read(path)


def test_an_old_bundle_without_pins_replays_with_a_block(holders: Lab, tmp_path: Path) -> None:
    """Bundles from before pins and block proofs: aggregate3 calls without proof sub-calls, no "pins"."""
    reads = balance_reads(holders, 20)
    bundle = Bundle()
    stats = Stats()
    old = ChainClient("ethereum", 1, HttpTransport("ethereum", holders.url, stats, fast_policy()), stats,
                      record=bundle, prove_block=False)
    old.check_chain_id()
    old.pin()
    old_values = values(old.read(reads))
    bundle.pins.clear()
    path = tmp_path / "old.json.gz"
    bundle.write(path)
    assert "pins" not in json.loads(gzip.decompress(path.read_bytes()))
    loaded, _ = Bundle.read(path)
    chains = {"ethereum": Chain("ethereum", 1)}
    replayed = connect(chains, ConnectOptions(replay=loaded, blocks={"ethereum": old.pinned.number}))["ethereum"]
    assert values(replayed.read(reads)) == old_values
    assert replayed.block_proof == "none"


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=400),
    st.lists(st.tuples(st.booleans(), st.binary(max_size=80)), max_size=5).map(
        lambda items: encode(["(bool,bytes)[]"], [items])),
).flatmap(lambda data: st.tuples(st.just(data), st.integers(0, max(0, len(data) - 1)), st.integers(0, 255))))
def test_aggregate3_decoder_agrees_with_eth_abi_or_refuses(case: tuple[bytes, int, int]) -> None:
    """On any bytes (valid encodings with one byte changed included) the fast decoder gives eth-abi's answer
    or ValueError: a malformed answer is never read as some other results."""
    data, position, value = case
    if data:
        data = data[:position] + bytes([value]) + data[position + 1 :]
    try:
        (expected,) = decode(["(bool,bytes)[]"], data)
    except Exception:
        expected = None
    try:
        got = decode_aggregate3(data)
    except ValueError:
        return
    assert expected is not None and got == [(bool(ok), bytes(raw)) for ok, raw in expected]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=100)), max_size=6))
def test_aggregate3_decoder_reads_every_solidity_encoding(items: list[tuple[bool, bytes]]) -> None:
    assert decode_aggregate3(encode(["(bool,bytes)[]"], [items])) == items
