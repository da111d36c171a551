"""Benchmark of the flow tracer end to end (scan + decode + graph + loops) over a window of 100,000+ Transfer logs."""

from __future__ import annotations

import math
import time
import tracemalloc
from typing import Any

from auditor.addresses import to_checksum
from auditor.chain.reader import ChainClient, ConnectOptions, connect
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from auditor.spec import Asset, Chain, Deployment, Holder, Price, Registry, Spec, Token
from auditor.trace import run_trace

PER_TX = 250  # LogSpammer logs per transaction: fast to mine, about a busy mainnet block's worth


def _world(url: str, target_logs: int) -> tuple[Registry, Spec, tuple[int, int]]:
    """A hard asset whose Transfers all leave one of 250 issuer wallets, emitted by LogSpammer in ~400 blocks."""
    built = compile_lab_contracts()
    chain_id = int(rpc(url, "eth_chainId"), 16)
    spammer = Contract.deploy(url, built["LogSpammer"])
    issued = Contract.deploy(url, built["LabToken"], "Bench issued", "BISS", 18)
    start = int(rpc(url, "eth_blockNumber"), 16) + 1
    for _ in range(math.ceil(target_logs / PER_TX)):
        # offset 0 every time: senders are addresses 1..250, the issuer's wallets; recipients are outsiders
        spammer.transact("emitTransfers", PER_TX, 0)
    end = int(rpc(url, "eth_blockNumber"), 16)
    registry = Registry(
        path="<trace benchmark>",
        chains={"ethereum": Chain("ethereum", chain_id)},
        assets={"ethereum": {"BENCH": Asset("ethereum", "BENCH", spammer.address, 18, Price())}},
        venues={},
    )
    wallets = tuple(Holder("ethereum", to_checksum(f"0x{n:040x}"), f"hot wallet {n}") for n in range(1, PER_TX + 1))
    spec = Spec(path="<trace benchmark>", id="bench", name="Bench issuer",
                token=Token("BISS", (Deployment("ethereum", issued.address),)), accounts=wallets)
    return registry, spec, (start, end)


def _clients(url: str, registry: Registry) -> dict[str, ChainClient]:
    # no disk cache: every pass scans the node
    return connect(registry.chains, ConnectOptions(rpc={"ethereum": url}, use_cache=False))


def _trace(url: str, registry: Registry, spec: Spec, window: tuple[int, int]) -> dict[str, Any]:
    return run_trace("bench", {"bench": spec}, registry, _clients(url, registry), {"ethereum": window})


def bench_trace(url: str, lines: list[str], target_logs: int = 100_000) -> None:
    """Append a markdown table: logs traced, seconds, logs/s and peak Python memory (separate untimed pass)."""
    registry, spec, window = _world(url, target_logs)
    started = time.perf_counter()
    findings = _trace(url, registry, spec, window)
    seconds = time.perf_counter() - started
    logs = findings["scanned"]["ethereum"]["transfer_logs"]
    if logs < target_logs:
        raise RuntimeError(f"trace benchmark: expected at least {target_logs} logs in the window, got {logs}")
    # tracemalloc slows Python several-fold: measure memory in a second, untimed pass.
    tracemalloc.start()
    _trace(url, registry, spec, window)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    lines += [
        "## Flow trace: Transfer logs scanned, decoded, put in the flow graph and searched for loops",
        "",
        f"One hard asset, {len(spec.accounts)} issuer wallets, blocks {window[0]}..{window[1]}; end to end through "
        "`auditor.trace.run_trace` (pin, filtered eth_getLogs, decoding, FIFO provenance, networkx graph, loops).",
        "",
        "| logs | flow events | seconds | logs/s | graph edges | loops "
        "| peak Python memory (tracemalloc, separate pass) |",
        "|---|---|---|---|---|---|---|",
        f"| {logs:,} | {findings['events']['total']:,} | {seconds:.2f} | {logs / seconds:,.0f} "
        f"| {findings['graph']['edge_count']:,} | {len(findings['loops'])} | {peak / 2**20:.1f} MiB |",
        "",
    ]
    print(lines[-2], flush=True)


if __name__ == "__main__":
    from auditor.lab.deploy import install_multicall3
    from auditor.lab.node import start_anvil

    node = start_anvil(1)
    try:
        install_multicall3(node.url)
        out: list[str] = []
        bench_trace(node.url, out)
        print("\n".join(out))
    finally:
        node.stop()


def main() -> None:
    """`python -m benchmarks.trace_bench [LOGS]`: the flow-trace row alone, on a fresh local anvil."""
    import sys

    from auditor.lab.deploy import install_multicall3
    from auditor.lab.node import start_anvil

    node = start_anvil()
    try:
        install_multicall3(node.url)
        bench_trace(node.url, [], int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    finally:
        node.stop()


if __name__ == "__main__":
    main()
