"""The chain reader against a real anvil: batching, faults, cache, evidence replay, pins, log scans."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.chain.abi import address_topic, event_topic
from auditor.chain.cache import SqliteCache
from auditor.chain.evidence import Bundle, EvidenceMissing, ReplayLayer
from auditor.chain.reader import NO_CONTRACT, READS_IN_FLIGHT, ChainClient, Read, ReorgError, _next_span
from auditor.chain.rpc import ChainError, ConfigError, HttpTransport, RetryPolicy, Stats
from auditor.cli import main
from auditor.lab.deploy import Contract
from auditor.lab.node import Anvil, rpc, start_anvil
from tests.conftest import Lab
from tests.faultproxy import FaultProxy

TRANSFER = event_topic("Transfer(address,address,uint256)")
HOLDERS = [f"0x{i:040x}" for i in range(1, 1201)]


def fast_policy(recorded: list[float] | None = None, attempts: int = 6, timeout_s: float = 5.0) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts, base_delay_s=0.01, max_delay_s=0.05, timeout_s=timeout_s,
        sleep=(recorded.append if recorded is not None else (lambda _s: None)),
    )


def client_for(url: str, *, cache: SqliteCache | None = None, record: Bundle | None = None,
               policy: RetryPolicy | None = None, **kwargs: object) -> ChainClient:
    stats = Stats()
    client = ChainClient("ethereum", 1, HttpTransport("ethereum", url, stats, policy or fast_policy()), stats,
                         cache=cache, record=record, **kwargs)  # type: ignore[arg-type]
    client.check_chain_id()
    client.pin()
    return client


@pytest.fixture(scope="module")
def holders(lab: Lab) -> Iterator[Lab]:
    """1200 holders with distinct balances of USDC and WETH, minted once for this module."""
    snapshot = rpc(lab.url, "evm_snapshot")
    for index, holder in enumerate(HOLDERS[:40]):
        lab.usdc.transact("mint", holder, (index + 1) * 1_000_000)
        lab.weth.transact("mint", holder, (index + 1) * 10**18)
    yield lab
    rpc(lab.url, "evm_revert", [snapshot])


def balance_reads(lab: Lab, count: int) -> list[Read]:
    tokens = [lab.usdc.address, lab.weth.address]
    return [Read(tokens[i % 2], "balanceOf(address)", (HOLDERS[(i // 2) % len(HOLDERS)],)) for i in range(count)]


def expected_balance(lab: Lab, read: Read) -> int:
    index = HOLDERS.index(read.args[0])
    if index >= 40:
        return 0
    return (index + 1) * (1_000_000 if read.target == lab.usdc.address else 10**18)


def values(results: list) -> list[object]:
    return [(r.ok, r.value, r.error) for r in results]


def test_batched_reads_are_exact_and_use_few_requests(holders: Lab) -> None:
    reads = balance_reads(holders, 2400)
    client = client_for(holders.url)
    before = client.stats.http_requests
    results = client.read(reads)
    assert client.mode == "multicall"
    assert [r.one for r in results] == [expected_balance(holders, r) for r in reads]
    # 2400 reads = 3 aggregate3 chunks, sent as one JSON-RPC batch, plus one eth_getCode probe
    assert client.stats.http_requests - before == 2
    assert client.stats.calls["eth_call"] == 3


def test_a_reverting_read_fails_alone(holders: Lab) -> None:
    reads = [
        Read(holders.usdc.address, "balanceOf(address)", (HOLDERS[0],)),
        Read(holders.usdc.address, "transfer(address,uint256)", (HOLDERS[1], 10**30), returns=("bool",)),
        Read(HOLDERS[500], "balanceOf(address)", (HOLDERS[0],)),  # no code there: empty return
        Read(holders.usdc.address, "symbol()", returns=("string",)),
    ]
    results = client_for(holders.url).read(reads)
    assert results[0].ok and results[0].one == 1_000_000
    assert not results[1].ok and results[1].error.startswith("reverted")
    assert not results[2].ok and results[2].error == NO_CONTRACT  # no code at the address
    assert results[3].ok and results[3].one == "USDC"


@pytest.mark.parametrize("fault", ["drop", "delay", "429", "500", "truncate", "wrong_ids"])
def test_identical_results_through_every_fault(holders: Lab, fault: str) -> None:
    reads = balance_reads(holders, 1500)
    clean = values(client_for(holders.url).read(reads))
    slept: list[float] = []
    with FaultProxy(holders.url, faults=[fault, fault], delay_s=1.2, retry_after_s="3") as proxy:
        client = client_for(proxy.url, policy=fast_policy(slept, timeout_s=0.5))
        assert values(client.read(reads)) == clean
        assert proxy.state.faults_injected[fault] == 2
        assert client.stats.retries == 2
    if fault == "429":
        assert slept == [3.0, 3.0]  # Retry-After honoured


def test_a_request_that_keeps_failing_names_chain_method_and_block(holders: Lab) -> None:
    with FaultProxy(holders.url) as proxy:
        client = client_for(proxy.url, policy=fast_policy(attempts=3))
        proxy.state.faults = ["500"] * 3
        with pytest.raises(ChainError) as info:
            client.read(balance_reads(holders, 10))
    message = str(info.value)
    assert message.startswith("ethereum: eth_getCode at block ")
    assert f"block {client.pinned.number}" in message
    assert "HTTP 500" in message and "3 attempts" in message


def test_too_large_bodies_are_split(holders: Lab) -> None:
    reads = balance_reads(holders, 2400)
    clean = values(client_for(holders.url).read(reads))
    with FaultProxy(holders.url, max_body=100_000) as proxy:
        client = client_for(proxy.url)
        assert values(client.read(reads)) == clean
        assert client.stats.calls["eth_call"] > 3  # chunks were bisected to fit


def test_bodies_of_reads_go_out_several_at_once_and_a_failure_among_them_changes_no_value(holders: Lab) -> None:
    """A big read goes out READS_IN_FLIGHT bodies at a time: while one is held up (a slow answer, then an HTTP 500
    retried) the others are answered; every value lands in its place, and what was refused is asked again."""
    reads = balance_reads(holders, 1200)
    clean = values(client_for(holders.url).read(reads))
    with FaultProxy(holders.url, delay_s=1.0) as proxy:
        client = client_for(proxy.url, chunk_size=100, batch_chars=1)  # a body per chunk of 100
        client.read(reads[:1])  # the node's Multicall3 looked up before the faults are armed; 1,199 reads left:
        # 12 chunks, so 12 bodies
        proxy.state.faults = ["delay", "500", "500"]
        proxy.state.most_in_flight = 0
        before = client.stats.http_requests
        assert values(client.read(reads)) == clean
        assert proxy.state.faults_injected == {"delay": 1, "500": 2}
        assert proxy.state.most_in_flight == READS_IN_FLIGHT > 1  # no more, and not one at a time
        assert client.stats.http_requests - before == 12 + 2  # every chunk's body once, the refused two again


def test_reads_at_past_blocks_count_multicalls_lent_code_in_the_body_budget(holders: Lab) -> None:
    """A read at a past block lends Multicall3's code by state override (~7 KB a call): batches of many such small
    chunks must still fit the body budget, not be refused and halved (the estimate once counted calldata only)."""
    pin = client_for(holders.url).pinned.number
    groups = {block: balance_reads(holders, 2) for block in range(pin - 30, pin)}
    clean = client_for(holders.url).read_at(groups)
    budget = 60_000
    with FaultProxy(holders.url, max_body=budget + 2_000) as proxy:  # the JSON envelope's few hundred bytes
        client = client_for(proxy.url, batch_chars=budget)
        before = client.stats.http_requests
        got = client.read_at(groups)
        assert client.batch_chars == budget  # never refused, so never halved
    assert {b: values(r) for b, r in got.items()} == {b: values(r) for b, r in clean.items()}
    # 30 chunks (one per block) of ~11k characters each, Multicall3's code in hex most of it: several a body
    assert 2 <= client.stats.http_requests - before <= 10


def test_rerun_with_cache_sends_no_eth_call_or_get_logs(holders: Lab, tmp_path: Path) -> None:
    reads = balance_reads(holders, 1200)
    cache = SqliteCache(tmp_path / "c.sqlite3")
    with FaultProxy(holders.url) as proxy:
        first = client_for(proxy.url, cache=cache)
        block = first.pinned.number
        first_values = values(first.read(reads))
        logs_first = list(first.scan_logs([holders.usdc.address], [TRANSFER], 0, block))
        assert proxy.state.methods["eth_call"] > 0 and proxy.state.methods["eth_getLogs"] > 0
        proxy.state.methods.clear()

        stats = Stats()
        again = ChainClient("ethereum", 1, HttpTransport("ethereum", proxy.url, stats), stats, cache=cache)
        again.check_chain_id()
        again.pin(block)
        assert values(again.read(reads)) == first_values
        assert list(again.scan_logs([holders.usdc.address], [TRANSFER], 0, block)) == logs_first
        again.check_pin()
        assert set(proxy.state.methods) == {"eth_chainId", "eth_getBlockByNumber"}, proxy.state.methods


def test_replay_from_a_bundle_needs_no_node(holders: Lab, tmp_path: Path) -> None:
    reads = balance_reads(holders, 300)
    bundle = Bundle()
    recorded = client_for(holders.url, record=bundle)
    recorded_values = values(recorded.read(reads))
    recorded_logs = list(recorded.scan_logs(None, [TRANSFER], 0, recorded.pinned.number))
    recorded.check_pin()
    path = tmp_path / "evidence.json.gz"
    digest = bundle.write(path)

    loaded, loaded_digest = Bundle.read(path)
    assert loaded_digest == digest
    stats = Stats()
    replay = ChainClient("ethereum", 1, ReplayLayer(loaded, "ethereum"), stats)
    replay.check_chain_id()
    replay.pin()
    assert replay.pinned == recorded.pinned
    assert values(replay.read(reads)) == recorded_values
    assert list(replay.scan_logs(None, [TRANSFER], 0, replay.pinned.number)) == recorded_logs
    with pytest.raises(EvidenceMissing, match="no answer for eth_call"):
        replay.read([Read(holders.usdc.address, "balanceOf(address)", (HOLDERS[999],))])


def test_tampered_bundle_is_refused(holders: Lab, tmp_path: Path) -> None:
    import gzip

    bundle = Bundle()
    client_for(holders.url, record=bundle).read(balance_reads(holders, 10))
    path = tmp_path / "evidence.json.gz"
    bundle.write(path)
    document = json.loads(gzip.decompress(path.read_bytes()))
    document["chains"]["ethereum"][0]["answer"] = {"result": "0x02"}
    path.write_bytes(gzip.compress(json.dumps(document).encode()))
    with pytest.raises(ConfigError, match="digest mismatch"):
        Bundle.read(path)


def test_chain_id_mismatch_is_a_clear_error(lab: Lab) -> None:
    stats = Stats()
    client = ChainClient("plume", 98866, HttpTransport("plume", lab.url, stats, fast_policy()), stats)
    with pytest.raises(ConfigError, match="chain id 1, but the registry says plume is 98866"):
        client.check_chain_id()


def test_reorged_pin_is_detected(chain: Lab) -> None:
    before = rpc(chain.url, "evm_snapshot")
    rpc(chain.url, "evm_mine", [])
    client = client_for(chain.url)
    rpc(chain.url, "evm_revert", [before])
    rpc(chain.url, "anvil_setNextBlockTimestamp", [client.pinned.timestamp + 1000])
    rpc(chain.url, "evm_mine", [])
    with pytest.raises(ReorgError, match="reorged"):
        client.check_pin()


def test_pin_at_a_time_finds_the_last_block_at_or_before_it(chain: Lab) -> None:
    head = int(rpc(chain.url, "eth_blockNumber"), 16)
    start = int(rpc(chain.url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16) + 100
    for offset in range(40):
        rpc(chain.url, "anvil_setNextBlockTimestamp", [start + 12 * offset])
        rpc(chain.url, "evm_mine", [])
    client = client_for(chain.url)
    when = dt.datetime.fromtimestamp(start + 12 * 17 + 5, dt.UTC)
    assert client.pin(at=when).number == head + 1 + 17
    exact = dt.datetime.fromtimestamp(start + 12 * 30, dt.UTC)
    assert client.pin(at=exact).number == head + 1 + 30
    with pytest.raises(ConfigError, match="before the chain's first block"):
        client.pin(at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


@contextmanager
def node_without_multicall(lab: Lab) -> Iterator[tuple[Anvil, Contract, list[Read]]]:
    """A fresh anvil with no Multicall3, one token holding 77 for HOLDERS[0], and three balance reads."""
    node = start_anvil(1)
    try:
        token = Contract.deploy(node.url, lab.lab_contracts["LabToken"], "T", "T", 6)
        token.transact("mint", HOLDERS[0], 77)
        yield node, token, [Read(token.address, "balanceOf(address)", (h,)) for h in HOLDERS[:3]]
    finally:
        node.stop()


def test_no_multicall_at_the_pin_uses_a_state_override_then_plain_calls(lab: Lab) -> None:
    with node_without_multicall(lab) as (node, _token, reads):
        client = client_for(node.url)
        assert [r.one for r in client.read(reads)] == [77, 0, 0]
        assert client.mode == "override"
        with FaultProxy(node.url, refuse_overrides=True) as proxy:
            direct = client_for(proxy.url)
            assert [r.one for r in direct.read(reads)] == [77, 0, 0]
            assert direct.mode == "direct"


def test_log_scan_splits_refused_ranges_and_streams_in_order(chain: Lab) -> None:
    for index in range(30):
        chain.usdc.transact("mint", HOLDERS[index % 3], index + 1)
    client = client_for(chain.url)
    head = client.pinned.number
    topics = [TRANSFER, address_topic("0x" + "0" * 40)]
    clean = list(client.scan_logs([chain.usdc.address], topics, 0, head))
    assert [int.from_bytes(log.data, "big") for log in clean][-30:] == list(range(1, 31))
    for style in ("alchemy", "limit", "generic"):
        with FaultProxy(chain.url, max_log_span=7, log_error_style=style) as proxy:
            seen: list[tuple[int, int]] = []

            def progress(done: int, total: int, seen: list[tuple[int, int]] = seen) -> None:
                seen.append((done, total))

            scanner = client_for(proxy.url, log_span=1000)
            logs = list(scanner.scan_logs([chain.usdc.address], topics, 0, head, progress=progress))
            assert logs == clean, style
            assert seen[-1] == (head + 1, head + 1)


def test_log_window_errors(lab: Lab) -> None:
    client = client_for(lab.url)
    head = client.pinned.number
    with pytest.raises(ConfigError, match="beyond the pinned block"):
        list(client.scan_logs(None, [TRANSFER], 0, head + 10))
    with pytest.raises(ConfigError, match="empty block window"):
        list(client.scan_logs(None, [TRANSFER], 5, 4))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("this block range should work: [0x64, 0x6d]", 10),
        ("query returned more than 10000 results. Try with this block range [0x64, 0x95].", 50),
        ("eth_getLogs is limited to a 1000 range", 1000),
        ("block range is too wide", 1000),
        ("execution reverted", None),
    ],
)
def test_next_span_parses_provider_errors(message: str, expected: int | None) -> None:
    assert _next_span(message, 100, 2099) == expected


# ---------------------------------------------------------------- through the CLI


def write_lab_spec(folder: Path, lab: Lab, chain_id: int = 1) -> tuple[Path, Path]:
    registry = folder / "registry.yaml"
    registry.write_text(f"chains:\n  ethereum: {{chain_id: {chain_id}}}\n")
    spec = folder / "lab-usd.yaml"
    spec.write_text(
        "id: lab-usd\nname: Lab USD\ntoken:\n  symbol: USDC\n  deployments:\n"
        f'    - {{chain: ethereum, address: "{lab.usdc.address}"}}\n'
    )
    return registry, spec


def test_cli_audit_record_then_replay_gives_identical_findings(holders: Lab, tmp_path: Path) -> None:
    registry, spec = write_lab_spec(tmp_path, holders)
    runner = CliRunner()
    recorded = runner.invoke(main, ["audit", str(spec), "--registry", str(registry), "--rpc",
                                    f"ethereum={holders.url}", "--record", str(tmp_path / "ev.gz"),
                                    "--json", str(tmp_path / "a.json")])
    assert recorded.exit_code == 0, recorded.output
    replayed = runner.invoke(main, ["audit", str(spec), "--registry", str(registry), "--replay",
                                    str(tmp_path / "ev.gz"), "--json", str(tmp_path / "b.json")])
    assert replayed.exit_code == 0, replayed.output
    first = json.loads((tmp_path / "a.json").read_text())
    second = json.loads((tmp_path / "b.json").read_text())
    assert first["pins"] == second["pins"]
    assert first["issuers"] == second["issuers"]
    assert first["backing"] == second["backing"]
    deployment = first["issuers"]["lab-usd"]["supply"]["deployments"][0]
    assert deployment["total_supply_raw"] == str(sum((i + 1) * 10**6 for i in range(40)))
    assert first["evidence"]["digest"].startswith("sha256:")
    assert first["requests"]["ethereum"]["reads"] == second["requests"]["ethereum"]["reads"] > 0


def test_cli_errors_exit_cleanly(lab: Lab, tmp_path: Path) -> None:
    registry, spec = write_lab_spec(tmp_path, lab, chain_id=5)
    runner = CliRunner()
    mismatch = runner.invoke(main, ["audit", str(spec), "--registry", str(registry), "--rpc",
                                    f"ethereum={lab.url}"])
    assert mismatch.exit_code == 2
    assert "chain id 1, but the registry says ethereum is 5" in mismatch.output

    registry, spec = write_lab_spec(tmp_path, lab)
    unreachable = runner.invoke(main, ["audit", str(spec), "--registry", str(registry), "--rpc",
                                       "ethereum=http://127.0.0.1:9"], env={"AUDITOR_RPC_RETRIES": "2"})
    assert unreachable.exit_code == 1
    assert "ethereum: eth_chainId (+2 more in a batch) failed: connection failed" in unreachable.output
    assert "Traceback" not in unreachable.output

    no_url = runner.invoke(main, ["audit", str(spec), "--registry", str(registry)],
                           env={"ETH_RPC_URL": "", "AUDITOR_RPC_ETHEREUM": ""})
    assert no_url.exit_code == 2
    assert "no RPC URL for chain 'ethereum'" in no_url.output

    bad_block = runner.invoke(main, ["audit", str(spec), "--registry", str(registry), "--rpc",
                                     f"ethereum={lab.url}", "--block", "ethereum=99999999"])
    assert bad_block.exit_code == 2
    assert "block 99999999 does not exist" in bad_block.output

    missing = runner.invoke(main, ["audit", str(spec), "--registry", str(registry), "--replay",
                                   str(tmp_path / "nope.gz")])
    assert missing.exit_code == 2
    assert "not a readable evidence bundle" in missing.output


def test_event_decoder_fast_path_agrees_with_eth_abi() -> None:
    from eth_abi.abi import encode

    from auditor.chain.abi import EventDecoder

    static = EventDecoder("Borrow(bytes32 indexed id,address caller,address indexed onBehalf,uint256 assets,int256 d)")
    general = EventDecoder("Note(bytes32 indexed id,address caller,string memo)")
    sender = "0x1597E4B7cF6D2877A1d690b6088668afDb045763"
    topics = (static.topic, "0x" + "ab" * 32, "0x" + "00" * 12 + sender[2:].lower())
    data = encode(["address", "uint256", "int256"], [sender, 5 * 10**6, -3])
    assert static.decode(topics, data) == {
        "id": bytes.fromhex("ab" * 32), "caller": sender, "onBehalf": sender, "assets": 5 * 10**6, "d": -3,
    }
    memo = general.decode((general.topic, "0x" + "ab" * 32), encode(["address", "string"], [sender, "<b>"]))
    assert memo == {"id": bytes.fromhex("ab" * 32), "caller": sender, "memo": "<b>"}
    with pytest.raises(ValueError, match="malformed"):
        static.decode(topics, data[:40])
    with pytest.raises(ValueError, match="not a Borrow log"):
        static.decode((general.topic,), data)


def test_a_read_asked_twice_at_one_pin_goes_to_the_node_once(holders: Lab) -> None:
    client = client_for(holders.url)
    reads = balance_reads(holders, 10)
    first = client.read(reads)
    calls = client.stats.calls["eth_call"]
    again = client.read([*reads[:5], Read(holders.usdc.address, "symbol()", returns=("string",))])
    assert client.stats.calls["eth_call"] == calls + 1  # only symbol() was new
    assert [r.value for r in again[:5]] == [r.value for r in first[:5]] and again[5].one == "USDC"
    client.pin(client.pinned.number)  # a new pin starts afresh
    client.read(reads[:1])
    assert client.stats.calls["eth_call"] == calls + 2
