"""Tests of the local EVM lab: anvil lifecycle, solc-js compile cache, Multicall3 and Morpho Blue."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.chain.multicall import (
    AGGREGATE3_SELECTOR,
    MULTICALL3_ADDRESS,
    decode_aggregate3,
    encode_aggregate3,
)
from auditor.lab import LabError
from auditor.lab import compile as lab_compile
from auditor.lab.compile import compile_lab_contracts, compile_morpho, find_imports
from auditor.lab.deploy import eth_call, multicall3_runtime
from auditor.lab.morpho import MarketParams, market_id, oracle_price
from auditor.lab.node import RpcError, rpc, start_anvil

if TYPE_CHECKING:  # annotations only, so the import works whether or not tests/ is a package
    from tests.conftest import Lab


def sel(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def aggregate3(url: str, calls: Sequence[tuple[str, bool, bytes]], block: str = "latest") -> list[tuple[bool, bytes]]:
    """One raw eth_call of aggregate3 at the Multicall3 address."""
    result = rpc(url, "eth_call", [{"to": MULTICALL3_ADDRESS, "data": "0x" + encode_aggregate3(calls).hex()}, block])
    return decode_aggregate3(bytes.fromhex(result[2:]))


# --- anvil ------------------------------------------------------------------------------------


def test_anvil_starts_on_loopback_with_chain_id_and_stops_by_pid() -> None:
    node = start_anvil(chain_id=8453)
    try:
        assert node.url == f"http://127.0.0.1:{node.port}"
        assert node.port > 0
        assert int(rpc(node.url, "eth_chainId"), 16) == 8453
        os.kill(node.pid, 0)  # alive
        log = node.log_path
        assert log.is_file()
    finally:
        node.stop()
    assert not node.running()
    with pytest.raises(ProcessLookupError):
        os.kill(node.pid, 0)
    assert not log.exists()
    node.stop()  # idempotent


def test_anvil_context_manager_and_two_nodes_get_distinct_ports() -> None:
    with start_anvil(1) as first, start_anvil(10) as second:
        assert first.port != second.port
        assert int(rpc(second.url, "eth_chainId"), 16) == 10
    assert not first.running()
    assert not second.running()


def test_spilled_states_stay_in_the_nodes_own_directory_and_go_with_it(tmp_path: Path) -> None:
    """anvil writes states older than its in-memory window to disk and never deletes them (78 GB in a day of test
    runs under ~/.foundry); each node's go to its own directory, removed at stop. At the next start a directory
    whose lock nobody holds is swept, one whose lock is held (a live node, whatever its pid namespace) is kept, and
    one still being made (no lock file yet, recent) is left alone."""
    import fcntl

    from auditor.lab.node import _states_root

    root = _states_root()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    orphan, held, young = (root / name for name in ("test-orphan", "test-held", "test-young"))
    for folder in (orphan, held, young):
        folder.mkdir(exist_ok=True)
    (orphan / ".lock").touch()
    (held / ".lock").touch()
    with open(held / ".lock", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        node = start_anvil(1)
        assert not orphan.exists() and held.exists() and young.exists()
    state_dir = node.state_dir
    assert state_dir is not None and state_dir.parent == root
    try:
        rpc(node.url, "anvil_mine", [hex(1_000)])  # past anvil's in-memory window, so states spill
        assert len(list(state_dir.rglob("*"))) > 1, "expected anvil to spill old states into the node's directory"
        # an old block's state is still served from the spilled copy
        assert int(rpc(node.url, "eth_getBalance", [rpc(node.url, "eth_accounts")[0], "0x5"]), 16) > 0
        # the node's directory is locked for as long as the node lives
        with open(state_dir / ".lock", "rb") as probe, pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        node.stop()
    assert not state_dir.exists()
    for folder in (held, young):
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()


def test_fixed_block_interval_makes_block_times_and_hashes_repeatable() -> None:
    genesis = 1_761_523_200  # 2025-10-27T00:00:00Z

    def build() -> list[tuple[int, str]]:
        with start_anvil(1, timestamp=genesis, block_interval=12) as node:
            rpc(node.url, "evm_mine", [])
            time.sleep(1.1)  # wall-clock time passing must not show in the chain
            rpc(node.url, "evm_mine", [])
            rpc(node.url, "evm_setNextBlockTimestamp", [genesis + 86_400])
            rpc(node.url, "evm_mine", [])
            rpc(node.url, "evm_mine", [])
            blocks = [rpc(node.url, "eth_getBlockByNumber", [hex(n), False]) for n in range(5)]
        return [(int(b["timestamp"], 16) - genesis, b["hash"]) for b in blocks]

    first = build()
    assert [offset for offset, _ in first] == [0, 12, 24, 86_400, 86_412]
    assert build() == first


def test_missing_anvil_binary_gives_lab_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LabError, match=r"starting anvil: binary .* not found.*npm ci"):
        start_anvil(1, binary=tmp_path / "no-anvil")
    monkeypatch.setenv("AUDITOR_ANVIL", str(tmp_path / "also-missing"))
    with pytest.raises(LabError, match="also-missing"):
        start_anvil(1)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_anvil_that_exits_early_reports_log_tail(tmp_path: Path) -> None:
    fake = _script(tmp_path / "anvil", 'echo "error: unexpected argument" >&2\nexit 3')
    with pytest.raises(LabError) as info:
        start_anvil(1, binary=fake, log_dir=tmp_path)
    message = str(info.value)
    assert "exited with code 3 before listening" in message
    assert "error: unexpected argument" in message
    assert "npm ci" in message


def test_anvil_that_never_listens_times_out(tmp_path: Path) -> None:
    fake = _script(tmp_path / "anvil", "exec sleep 30")
    started = time.monotonic()
    with pytest.raises(LabError, match="no 'Listening on' line within"):
        start_anvil(1, binary=fake, timeout=0.5, log_dir=tmp_path)
    assert time.monotonic() - started < 10


# --- compiler ---------------------------------------------------------------------------------


TINY = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;
contract Tiny { function answer() external pure returns (uint256) { return 42; } }
"""


def test_compile_cache_skips_node_the_second_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path))
    runs: list[str] = []
    real = lab_compile._run_solcjs

    def counting(package: str, input_json: str) -> dict[str, Any]:
        runs.append(package)
        return real(package, input_json)

    monkeypatch.setattr(lab_compile, "_run_solcjs", counting)
    sources = {"lab/Tiny.sol": TINY}
    first = lab_compile.compile_sources(sources, "0.8.24", lab_compile.LAB_SETTINGS)
    assert runs == ["solc-0.8.24"]
    assert len(list((tmp_path / "solc").glob("*.json"))) == 1

    second = lab_compile.compile_sources(sources, "0.8.24", lab_compile.LAB_SETTINGS)
    assert runs == ["solc-0.8.24"], "cached compile must not start node"
    assert second == first
    assert first["Tiny"].runtime  # real bytecode came back
    assert first.solc_version.startswith("0.8.24+")

    lab_compile.compile_sources(sources, "0.8.24", {**lab_compile.LAB_SETTINGS, "optimizer": {"enabled": False}})
    assert len(runs) == 2, "different settings are a different cache entry"


def test_compile_errors_raise_lab_error_with_solc_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path))
    broken = {"lab/Broken.sol": "pragma solidity 0.8.24; contract Broken { function f( }"}
    with pytest.raises(LabError, match=r"compiling Solidity with solc 0\.8\.24 failed:\n.*ParserError"):
        lab_compile.compile_sources(broken, "0.8.24", lab_compile.LAB_SETTINGS)
    assert not list((tmp_path / "solc").glob("*.json")), "failures are not cached"


def test_unknown_compiler_and_missing_source_give_lab_errors() -> None:
    with pytest.raises(LabError, match=r"solc 0\.6\.12 is not one the lab installs"):
        lab_compile.compile_sources({"lab/Tiny.sol": TINY}, "0.6.12", {})
    with pytest.raises(LabError, match=r"reading Solidity source lab/NoSuch\.sol"):
        lab_compile.collect_sources(["lab/NoSuch.sol"])
    with pytest.raises(LabError, match=r"@nobody/pkg/X\.sol.*npm ci"):
        lab_compile.collect_sources(["@nobody/pkg/X.sol"])


def test_find_imports_handles_all_forms_and_ignores_comments() -> None:
    source = """
    import "./A.sol";
    import * as B from "../B.sol";
    import {C, D as E} from
        "@openzeppelin/contracts/C.sol";
    import 'single.sol' as S;
    // import "commented.sol";
    /* import "block.sol"; */
    string constant URL = "https://example.org/import";
    """
    assert find_imports(source) == ["./A.sol", "../B.sol", "@openzeppelin/contracts/C.sol", "single.sol"]


def test_collect_sources_resolves_relative_and_package_imports() -> None:
    sources = lab_compile.collect_sources(["@morpho-org/morpho-blue/src/mocks/IrmMock.sol"])
    assert set(sources) == {
        "@morpho-org/morpho-blue/src/mocks/IrmMock.sol",
        "@morpho-org/morpho-blue/src/interfaces/IIrm.sol",
        "@morpho-org/morpho-blue/src/interfaces/IMorpho.sol",
        "@morpho-org/morpho-blue/src/libraries/MathLib.sol",
    }
    lab = lab_compile.collect_sources(["lab/LabToken.sol"])
    assert "@openzeppelin/contracts/token/ERC20/ERC20.sol" in lab
    assert "@openzeppelin/contracts/interfaces/draft-IERC6093.sol" in lab


def test_morpho_artifacts_match_upstream_build() -> None:
    compiled = compile_morpho()
    assert compiled.solc_version.startswith("0.8.19+")
    morpho = compiled["Morpho"]
    assert len(morpho.runtime) == 15_582  # upstream settings give this size (shared/EVM-LAB.md)
    events = {e["name"] for e in morpho.abi if e["type"] == "event"}
    assert {"Supply", "Borrow", "SupplyCollateral", "CreateMarket", "AccrueInterest"} <= events
    assert compiled["IrmMock"].runtime
    assert compiled["OracleMock"].runtime


# --- Multicall3 -------------------------------------------------------------------------------


CANONICAL_MULTICALL3_SIGNATURES = {
    "aggregate((address,bytes)[])",
    "aggregate3((address,bool,bytes)[])",
    "aggregate3Value((address,bool,uint256,bytes)[])",
    "blockAndAggregate((address,bytes)[])",
    "tryAggregate(bool,(address,bytes)[])",
    "tryBlockAndAggregate(bool,(address,bytes)[])",
    "getBasefee()",
    "getBlockHash(uint256)",
    "getBlockNumber()",
    "getChainId()",
    "getCurrentBlockCoinbase()",
    "getCurrentBlockDifficulty()",
    "getCurrentBlockGasLimit()",
    "getCurrentBlockTimestamp()",
    "getEthBalance(address)",
    "getLastBlockHash()",
}


def test_multicall3_abi_matches_canonical_signatures() -> None:
    from auditor.lab.deploy import abi_type

    abi = compile_lab_contracts()["Multicall3"].abi
    ours = {f"{e['name']}({','.join(abi_type(i) for i in e['inputs'])})" for e in abi if e["type"] == "function"}
    assert ours == CANONICAL_MULTICALL3_SIGNATURES
    assert sel("aggregate3((address,bool,bytes)[])") == AGGREGATE3_SELECTOR == bytes.fromhex("82ad56cb")
    assert sel("aggregate((address,bytes)[])") == bytes.fromhex("252dba42")


def test_committed_multicall3_runtime_equals_fresh_compile() -> None:
    fresh = compile_lab_contracts()["Multicall3"].runtime
    assert multicall3_runtime() == fresh, (
        "auditor/chain/multicall3_runtime.hex is stale: run "
        "`python -c 'from auditor.lab.deploy import write_multicall3_runtime_hex as w; w()'`"
    )
    assert b"\x5f" not in _opcodes(fresh), "PUSH0 would break state overrides on pre-Shanghai chains"


def _opcodes(code: bytes) -> bytes:
    """Opcodes only (PUSH data skipped), so a 0x5f byte inside push data is not mistaken for PUSH0."""
    out = bytearray()
    i = 0
    while i < len(code):
        op = code[i]
        if op == 0xFE:  # INVALID marks the end of code; the tail is metadata
            break
        out.append(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return bytes(out)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=20, max_size=20), st.booleans(), st.binary(max_size=200)),
        max_size=8,
    )
)
def test_encode_aggregate3_is_the_abi_encoding(raw_calls: list[tuple[bytes, bool, bytes]]) -> None:
    calls = [("0x" + target.hex(), allow, data) for target, allow, data in raw_calls]
    encoded = encode_aggregate3(calls)
    assert encoded[:4] == AGGREGATE3_SELECTOR
    (decoded,) = decode(["(address,bool,bytes)[]"], encoded[4:])
    assert [(t.lower(), a, d) for t, a, d in decoded] == calls


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=8))
def test_decode_aggregate3_round_trips(results: list[tuple[bool, bytes]]) -> None:
    assert decode_aggregate3(encode(["(bool,bytes)[]"], [results])) == results


def test_install_multicall3_and_block_getters(lab: Lab) -> None:
    code = rpc(lab.url, "eth_getCode", [MULTICALL3_ADDRESS, "latest"])
    assert bytes.fromhex(code[2:]) == multicall3_runtime()
    m = lab.multicall3
    results = aggregate3(
        lab.url,
        [
            (m, False, sel("getChainId()")),
            (m, False, sel("getBlockNumber()")),
            (m, False, sel("getEthBalance(address)") + encode(["address"], [lab.accounts[9]])),
        ],
    )
    assert all(ok for ok, _ in results)
    assert decode(["uint256"], results[0][1])[0] == 1
    assert decode(["uint256"], results[1][1])[0] == int(rpc(lab.url, "eth_blockNumber"), 16)
    assert decode(["uint256"], results[2][1])[0] == int(rpc(lab.url, "eth_getBalance", [lab.accounts[9], "latest"]), 16)


def test_aggregate3_allow_failure(chain: Lab) -> None:
    lab = chain
    lab.usdc.transact("mint", lab.lender, 123, sender=lab.lender)
    transfer = sel("transfer(address,uint256)") + encode(["address", "uint256"], [lab.borrower, 1])
    calls = [
        (lab.usdc.address, False, sel("balanceOf(address)") + encode(["address"], [lab.lender])),
        (lab.usdc.address, True, transfer),  # Multicall3 holds no USDC: ERC20InsufficientBalance
        (lab.morpho.morpho.address, True, bytes.fromhex("deadbeef")),  # no such function, no fallback
        (lab.usdc.address, False, sel("totalSupply()")),
    ]
    results = aggregate3(lab.url, calls)
    assert [ok for ok, _ in results] == [True, False, False, True]
    assert decode(["uint256"], results[0][1]) == (123,)
    insufficient = sel("ERC20InsufficientBalance(address,uint256,uint256)")
    assert results[1][1] == insufficient + encode(["address", "uint256", "uint256"], [MULTICALL3_ADDRESS, 0, 1])
    assert results[2][1] == b""
    assert decode(["uint256"], results[3][1]) == (123,)

    strict = [calls[0], (lab.usdc.address, False, transfer)]
    with pytest.raises(RpcError) as info:
        aggregate3(lab.url, strict)
    expected = sel("Error(string)") + encode(["string"], ["Multicall3: call failed"])
    assert info.value.data == "0x" + expected.hex()
    with pytest.raises(LabError, match="Multicall3: call failed"):
        eth_call(lab.url, MULTICALL3_ADDRESS, encode_aggregate3(strict))


# --- Morpho Blue ------------------------------------------------------------------------------


def test_oracle_price_scale() -> None:
    # 1 WETH (18 dec) = 2000 USDC (6 dec): 1e36 * 2000 * 1e6 / 1e18
    assert oracle_price(2000, 6, 18) == 2000 * 10**24
    assert oracle_price("0.5", 18, 18) == 5 * 10**35
    assert oracle_price(1, 18, 6) == 10**48


def test_market_id_matches_morpho(chain: Lab) -> None:
    params = chain.morpho.market_params(chain.usdc.address, chain.wsteth.address, chain.lltv)
    market = chain.morpho.create_market(params)
    by_hand = keccak(
        encode(["address", "address", "address", "address", "uint256"], [*params.as_tuple()])
    )
    assert market == by_hand == market_id(params)
    stored = chain.morpho.morpho.call("idToMarketParams", market)
    assert tuple(a.lower() if isinstance(a, str) else a for a in stored) == tuple(
        a.lower() if isinstance(a, str) else a for a in params.as_tuple()
    )


def test_morpho_supply_collateral_borrow_read_back_in_one_multicall(chain: Lab) -> None:
    lab = chain
    morpho = lab.morpho
    usdc, weth = lab.usdc, lab.weth
    lender, borrower = lab.lender, lab.borrower

    price = 2000 * 10**36 * 10**6 // 10**18  # 2000 USDC per WETH at Morpho's 1e36 scale
    morpho.set_price(price)
    params = MarketParams(usdc.address, weth.address, morpho.oracle.address, morpho.irm.address, lab.lltv)
    market = morpho.create_market(params)

    supplied = 50_000 * 10**6
    collateral = 10 * 10**18
    borrowed = 10_000 * 10**6
    usdc.transact("mint", lender, supplied, sender=lender)
    weth.transact("mint", borrower, collateral, sender=borrower)
    morpho.supply(params, supplied, sender=lender)
    morpho.supply_collateral(params, collateral, sender=borrower)
    receipt = morpho.borrow(params, borrowed, sender=borrower)
    borrow_block = rpc(lab.url, "eth_getBlockByNumber", [receipt["blockNumber"], False])
    borrow_time = int(borrow_block["timestamp"], 16)

    m = morpho.morpho.address
    calls = [
        (m, False, sel("position(bytes32,address)") + encode(["bytes32", "address"], [market, lender])),
        (m, False, sel("position(bytes32,address)") + encode(["bytes32", "address"], [market, borrower])),
        (m, False, sel("market(bytes32)") + market),
        (m, False, sel("idToMarketParams(bytes32)") + market),
        (usdc.address, False, sel("balanceOf(address)") + encode(["address"], [m])),
        (usdc.address, False, sel("balanceOf(address)") + encode(["address"], [borrower])),
        (weth.address, False, sel("balanceOf(address)") + encode(["address"], [m])),
    ]
    # The whole read is one eth_call, pinned to the borrow block.
    results = aggregate3(lab.url, calls, block=receipt["blockNumber"])
    assert all(ok for ok, _ in results)
    position_types = ["uint256", "uint128", "uint128"]
    lender_position = decode(position_types, results[0][1])
    borrower_position = decode(position_types, results[1][1])
    market_state = decode(["uint128"] * 6, results[2][1])
    stored_params = decode(["address", "address", "address", "address", "uint256"], results[3][1])

    # First supplier and first borrower in an empty market: shares = assets * VIRTUAL_SHARES (1e6),
    # because toShares(a) = a * (0 + 1e6) / (0 + 1); the IRM's rate is 0 until something is borrowed.
    assert lender_position == (supplied * 10**6, 0, 0)
    assert borrower_position == (0, borrowed * 10**6, collateral)
    assert market_state == (
        supplied,  # totalSupplyAssets
        supplied * 10**6,  # totalSupplyShares
        borrowed,  # totalBorrowAssets
        borrowed * 10**6,  # totalBorrowShares
        borrow_time,  # lastUpdate
        0,  # fee
    )
    assert [a.lower() if isinstance(a, str) else a for a in stored_params] == [
        usdc.address.lower(),
        weth.address.lower(),
        morpho.oracle.address.lower(),
        morpho.irm.address.lower(),
        lab.lltv,
    ]
    assert decode(["uint256"], results[4][1]) == (supplied - borrowed,)
    assert decode(["uint256"], results[5][1]) == (borrowed,)
    assert decode(["uint256"], results[6][1]) == (collateral,)

    # The helpers agree with the raw read.
    assert morpho.position(market, borrower) == borrower_position
    assert astuple(morpho.market(market)) == market_state

    # Max borrow = collateral * price / 1e36 * lltv / 1e18 = 20_000 USDC * 0.86 = 17_200 USDC.
    with pytest.raises(LabError, match="insufficient collateral"):
        morpho.borrow(params, 17_200 * 10**6 - borrowed + 1, sender=borrower)
    morpho.borrow(params, 17_200 * 10**6 - borrowed - 10**6, sender=borrower)


# --- snapshot isolation -----------------------------------------------------------------------

_SEEN: dict[str, int] = {}


def test_snapshot_isolation_part1_changes_state(chain: Lab) -> None:
    stranger = chain.accounts[9]
    _SEEN["block"] = int(rpc(chain.url, "eth_blockNumber"), 16)
    chain.usdc.transact("mint", stranger, 777, sender=stranger)
    assert chain.usdc.call("balanceOf", stranger) == 777
    assert int(rpc(chain.url, "eth_blockNumber"), 16) == _SEEN["block"] + 1


def test_snapshot_isolation_part2_sees_clean_state(chain: Lab) -> None:
    stranger = chain.accounts[9]
    assert chain.usdc.call("balanceOf", stranger) == 0
    if "block" in _SEEN:  # part 1 ran first in this process
        assert int(rpc(chain.url, "eth_blockNumber"), 16) == _SEEN["block"]


def test_chain_fixture_reverts_within_one_test(lab: Lab) -> None:
    snapshot = rpc(lab.url, "evm_snapshot")
    lab.weth.transact("mint", lab.accounts[8], 5, sender=lab.accounts[8])
    assert lab.weth.call("balanceOf", lab.accounts[8]) == 5
    assert rpc(lab.url, "evm_revert", [snapshot]) is True
    assert lab.weth.call("balanceOf", lab.accounts[8]) == 0
