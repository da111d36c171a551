"""Scaling of the chain client alone (one run each): accounts read, Morpho Blue markets read, log-scan ranges."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditor.adapters import Scope
from auditor.adapters.morpho_blue import read_markets
from auditor.chain.plan import run_plan
from auditor.chain.reader import ChainClient, Read
from auditor.chain.rpc import HttpTransport, Stats
from auditor.lab.deploy import accounts
from auditor.lab.morpho import deploy_morpho, oracle_price
from auditor.lab.node import rpc
from auditor.spec import load_registry
from benchmarks.common import progress
from benchmarks.logs_bench import LogWorld
from benchmarks.reads_bench import Holders

LLTV = 860_000_000_000_000_000


def _client(url: str) -> tuple[ChainClient, Stats]:
    stats = Stats()
    client = ChainClient("ethereum", int(rpc(url, "eth_chainId"), 16), HttpTransport("ethereum", url, stats), stats)
    client.open(int(rpc(url, "eth_blockNumber"), 16))
    client.read([])
    return client, stats


def _once(url: str, work: Callable[[ChainClient], Any]) -> tuple[float, int, Any]:
    """A fresh client, connected and pinned outside the clock; seconds and HTTP requests of `work` alone."""
    client, stats = _client(url)
    before = stats.http_requests
    start = time.perf_counter()
    result = work(client)
    return time.perf_counter() - start, stats.http_requests - before, result


def bench_scaling(url: str, lines: list[str], world: LogWorld, markets: int = 200,
                  spans: tuple[int, ...] = (10, 1_000, 10_000)) -> None:
    rows: list[str] = []
    progress("scaling: accounts")
    holders = Holders(url, 1_000)
    for n in (1, 10, 100, 1_000):
        reads = [Read(holders.token, "balanceOf(address)", (owner,)) for owner in holders.owners[:n]]
        def read(client: ChainClient, reads: list[Read] = reads) -> Any:
            return client.read(reads)

        seconds, used, results = _once(url, read)
        assert [r.one for r in results] == holders.balances[:n]
        rows.append(f"| balanceOf x 1 token | {n:,} accounts | {seconds:.3f} | {used} |")

    progress(f"scaling: creating {markets} Morpho Blue markets")
    owner = accounts(url)[0]
    morpho = deploy_morpho(url, owner)
    morpho.enable_irm()
    morpho.enable_lltv(LLTV)
    morpho.set_price(oracle_price(1, 18, 18))
    ids = []
    for index in range(markets):  # distinct collateral addresses: Morpho never calls them to create a market
        params = morpho.market_params(holders.token, f"0x{0xC0DE0000 + index:040x}", LLTV)
        ids.append(morpho.create_market(params))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "registry.yaml"
        path.write_text(f"chains:\n  ethereum: {{chain_id: {int(rpc(url, 'eth_chainId'), 16)}}}\n"
                        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{morpho.morpho.address}\", "
                        "from_block: 0}\n")
        registry = load_registry(path)
    venue = registry.venues["morpho_blue"]["ethereum"]
    for n in sorted({1, 10, markets} & set(range(1, markets + 1))):
        def work(client: ChainClient, n: int = n) -> Any:
            return run_plan(client, read_markets(Scope("ethereum", client, registry, [], {}, venue=venue), ids[:n]))

        seconds, used, found = _once(url, work)
        assert len(found) == n
        rows.append(f"| Morpho Blue `read_markets` via `run_plan` | {n:,} markets | {seconds:.3f} | {used} |")

    progress("scaling: log-scan ranges")
    for span in sorted(set(spans)):
        first = world.last - span + 1
        def scan(client: ChainClient, first: int = first) -> Any:
            return world.scan(client, first)

        seconds, used, (count, _total) = _once(url, scan)
        rows.append(f"| log scan + decode (Transfer) | {span:,} blocks ({count:,} logs) | {seconds:.3f} | {used} |")

    lines += [
        "## Scaling: the chain client alone, one run each",
        "",
        "A fresh client per row, connected and pinned outside the clock. Markets: each needs 4 reads in 2 "
        "dependent rounds (params and state, then the IRM's rate and the oracle's price). Log ranges end at the "
        f"last block with logs; the {max(spans):,}-block range is "
        f"{max(spans) - (world.last - world.first + 1):,} empty blocks "
        "followed by the logs.",
        "",
        "| what | size | seconds | HTTP requests |",
        "|---|---|---|---|",
        *rows,
        "",
    ]
    for row in rows:
        progress("scaling " + row)
