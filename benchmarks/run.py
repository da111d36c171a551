"""Benchmarks against a local anvil: the read API vs naive web3 calls vs raw Multicall3, and log scan speed.

Run with `make bench`; results go to benchmarks/results.md (figures measured in this run only).
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from auditor.chain.abi import EventDecoder, decode_values, encode_call
from auditor.chain.multicall import MULTICALL3_ADDRESS, decode_aggregate3, encode_aggregate3
from auditor.chain.reader import ChainClient, Read
from auditor.chain.rpc import HttpTransport, Stats
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract, install_multicall3
from auditor.lab.node import start_anvil

RESULTS = Path(__file__).with_name("results.md")
TRANSFER = EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)")
ERC20_ABI = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "a", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]


class CountingSession(requests.Session):
    """Counts HTTP requests, so naive web3 and our reader are measured the same way."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.count += 1
        return super().request(method, url, *args, **kwargs)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def holders(n: int) -> list[str]:
    return [f"0x{i + 0x1000:040x}" for i in range(n)]


def reader(url: str) -> tuple[ChainClient, CountingSession]:
    session = CountingSession()
    stats = Stats()
    client = ChainClient("bench", 1, HttpTransport("bench", url, stats, session=session), stats)
    client.check_chain_id()
    client.pin()
    client.read([])  # detect Multicall3 once, outside the timed part
    session.count = 0
    return client, session


def naive(url: str, token: str, owners: list[str]) -> tuple[float, int, list[int]]:
    from web3 import Web3

    session = CountingSession()
    w3 = Web3(Web3.HTTPProvider(url, session=session))
    contract = w3.eth.contract(address=Web3.to_checksum_address(token), abi=ERC20_ABI)
    seconds, values = timed(lambda: [contract.functions.balanceOf(Web3.to_checksum_address(o)).call() for o in owners])
    return seconds, session.count, values


def raw_multicall(url: str, token: str, owners: list[str], chunk: int = 1000) -> tuple[float, int, list[int]]:
    session = CountingSession()

    def run() -> list[int]:
        out: list[int] = []
        for start in range(0, len(owners), chunk):
            data = encode_aggregate3([(token, True, encode_call("balanceOf(address)", o))
                                      for o in owners[start : start + chunk]])
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                    "params": [{"to": MULTICALL3_ADDRESS, "data": "0x" + data.hex()}, "latest"]}
            result = session.post(url, json=body, timeout=60).json()["result"]
            out += [decode_values(("uint256",), raw)[0] for _ok, raw in decode_aggregate3(bytes.fromhex(result[2:]))]
        return out

    seconds, values = timed(run)
    return seconds, session.count, values


def bench_reads(url: str, token: Contract, lines: list[str]) -> None:
    lines += [
        "## Contract reads: N ERC-20 balanceOf values",
        "",
        "| N | read API (s) | HTTP req | naive web3 `.call()` loop (s) | HTTP req | speed-up vs naive "
        "| raw Multicall3, 1 call per 1000 (s) | read API / raw |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in (1_000, 10_000):
        owners = holders(n)
        client, session = reader(url)
        reads = [Read(token.address, "balanceOf(address)", (o,)) for o in owners]
        ours_s, results = timed(lambda reads=reads, client=client: client.read(reads))
        ours_requests = session.count
        naive_s, naive_requests, naive_values = naive(url, token.address, owners)
        raw_s, _raw_requests, raw_values = raw_multicall(url, token.address, owners)
        assert [r.one for r in results] == naive_values == raw_values
        budget = math.ceil(n / 1000) + 2
        lines.append(
            f"| {n:,} | {ours_s:.3f} | {ours_requests} (budget {budget}) | {naive_s:.2f} | {naive_requests:,} "
            f"| **{naive_s / ours_s:.0f}x** | {raw_s:.3f} | {ours_s / raw_s:.2f}x |"
        )
        print(lines[-1], flush=True)
    lines.append("")


def bench_logs(url: str, lines: list[str], target_logs: int = 100_000) -> None:
    built = compile_lab_contracts()
    spammer = Contract.deploy(url, built["LogSpammer"])
    per_tx = 250  # one transaction per block: ~250 Transfer logs a block, a busy mainnet block's worth
    for batch in range(math.ceil(target_logs / per_tx)):
        spammer.transact("emitTransfers", per_tx, batch * per_tx)
    client, session = reader(url)
    head = client.pinned.number

    def scan() -> tuple[int, int]:
        count = total = 0
        for log in client.scan_logs([spammer.address], [TRANSFER.topic], 0, head):
            event = TRANSFER.decode(log.topics, log.data)
            total += event["value"] + len(event["to"])
            count += 1
        return count, total

    seconds, (count, _total) = timed(scan)
    requests_used = session.count
    # tracemalloc slows Python several-fold: measure memory in a second, untimed pass.
    tracemalloc.start()
    scan()
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lines += [
        "## Log scan: Transfer logs, scanned, decoded into typed events and consumed one by one",
        "",
        "| logs | seconds | logs/s | HTTP requests | peak Python memory (tracemalloc, separate pass) |",
        "|---|---|---|---|---|",
        f"| {count:,} | {seconds:.2f} | {count / seconds:,.0f} | {requests_used} | {peak / 2**20:.1f} MiB |",
        "",
    ]
    print(lines[-2], flush=True)


def main() -> None:
    node = start_anvil(1)
    try:
        install_multicall3(node.url)
        token = Contract.deploy(node.url, compile_lab_contracts()["LabToken"], "Bench", "BNCH", 18)
        lines = [
            "# Benchmarks",
            "",
            f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `make bench` on {platform.machine()}, "
            f"Python {sys.version.split()[0]}, against a local anvil on loopback. Every figure comes from this run.",
            "",
        ]
        bench_reads(node.url, token, lines)
        bench_logs(node.url, lines)
        from trace_bench import bench_trace  # beside this script

        bench_trace(node.url, lines)
        RESULTS.write_text("\n".join(lines))
        print(f"written {RESULTS}")
    finally:
        node.stop()


if __name__ == "__main__":
    main()
