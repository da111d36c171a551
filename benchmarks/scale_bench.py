"""Serial against Dask (a LocalCluster of 2 worker processes), measured in one run on two local chains.

1. `publish`'s audits of N generated issuers (N = 10, 40, 160), half on each chain: wall time and HTTP requests.
2. A trace of LOGS Transfer logs (default 1,000,000): one pass in this process against 8 shards on Dask.

`python -m benchmarks.scale_bench [--logs N] [--sizes 10,40,160] --out benchmarks/scale.md` (what `make bench-scale`
runs). Each issuer is a token with one treasury holding USDC; every audit is the full audit (discovery scans,
balance sheets, backing, flags) at pinned blocks, with no disk cache, so serial and Dask do the same reads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from auditor import engine
from auditor.audit_output import publish_task
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract, accounts, install_multicall3
from auditor.lab.node import Anvil, rpc, start_anvil
from benchmarks.common import progress
from benchmarks.run import machine
from benchmarks.trace_bench import PER_TX, _world

CHAINS = (("ethereum", 1), ("second", 10))
USDC = 10**6


def _issuers(nodes: dict[str, Anvil], folder: Path, count: int) -> list[Path]:
    """`count` issuers alternating between the chains, their specs and a registry in `folder`."""
    built = compile_lab_contracts()
    folder.mkdir(parents=True, exist_ok=True)
    usdc = {}
    for name, _ in CHAINS:
        usdc[name] = Contract.deploy(nodes[name].url, built["LabToken"], "USD Coin (lab)", "USDC", 6)
    (folder / "registry.yaml").write_text(
        "chains:\n" + "".join(f"  {name}: {{chain_id: {cid}}}\n" for name, cid in CHAINS)
        + "assets:\n" + "".join(f"  {name}:\n    USDC: {{address: \"{usdc[name].address}\", decimals: 6, "
                                "price: par}\n" for name, _ in CHAINS))
    paths = []
    for n in range(count):
        chain = CHAINS[n % 2][0]
        url = nodes[chain].url
        holders = accounts(url)
        treasury, outsider = holders[1 + n % 8], holders[9]
        token = Contract.deploy(url, built["LabToken"], f"Issuer {n}", f"I{n}", 6)
        token.transact("mint", outsider, 1000 * USDC)
        usdc[chain].transact("mint", treasury, (500 + n) * USDC)
        path = folder / f"issuer-{n:03d}.yaml"
        path.write_text(f"id: issuer-{n:03d}\nname: Issuer {n}\ntoken:\n  symbol: I{n}\n  deployments:\n"
                        f"    - {{chain: {chain}, address: \"{token.address}\"}}\n"
                        f"accounts:\n  - {{chain: {chain}, address: \"{treasury}\", label: treasury {n}}}\n")
        paths.append(path)
    return paths


def _publish_run(paths: list[Path], registry: Path, rpc_urls: dict[str, str], pins: dict[str, int],
                 mode: str) -> tuple[float, int, int]:
    tasks = [engine.Task(f"bench/{p.stem}/{mode}", publish_task, (str(p), str(registry), rpc_urls, dict(pins), False))
             for p in paths]
    started = time.perf_counter()
    outcomes = engine.run(tasks, mode, workers=2)
    seconds = time.perf_counter() - started
    failed = sum(not o.ok or o.value["incomplete"] is not None for o in outcomes)
    requests = sum(int(stats.get("http_requests", 0)) for o in outcomes if o.ok
                   for stats in o.value["requests"].values())
    return seconds, requests, failed


def bench_issuers(sizes: list[int], lines: list[str], latency_ms: int) -> None:
    """Without and with `latency_ms` added to every HTTP request (a loopback proxy, as a remote provider's round
    trip): on a local node the audits are CPU-bound and share the cores with the nodes; behind a provider they wait."""
    from tests.faultproxy import FaultProxy

    nodes = {name: start_anvil(cid) for name, cid in CHAINS}
    proxies = {name: FaultProxy(node.url, faults=["delay"] * 200_000, delay_s=latency_ms / 1000)
               for name, node in nodes.items()}
    try:
        for node in nodes.values():
            install_multicall3(node.url)
        for proxy in proxies.values():
            proxy.__enter__()
        direct = {name: node.url for name, node in nodes.items()}
        remote = {name: proxy.url for name, proxy in proxies.items()}
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for size in sizes:
                progress(f"issuers: building {size}")
                paths = _issuers(nodes, Path(tmp) / f"n{size}", size)
                pins = {name: int(rpc(node.url, "eth_blockNumber"), 16) for name, node in nodes.items()}
                registry = Path(tmp) / f"n{size}" / "registry.yaml"
                for label, urls in (("local node", direct), (f"+{latency_ms} ms a request", remote)):
                    results = {}
                    for mode in ("serial", "dask"):
                        progress(f"issuers: {size} on {mode}, {label}")
                        results[mode] = _publish_run(paths, registry, urls, pins, mode)
                    rows.append((size, label, results))
    finally:
        for proxy in proxies.values():
            proxy.__exit__()
        for node in nodes.values():
            node.stop()
    lines += [
        "## Audits of N issuers on two chains: serial against Dask (LocalCluster, 2 worker processes)",
        "",
        "Each issuer: one token and one treasury, half on each chain; `publish`'s task per issuer (the full audit at "
        "pinned blocks, no disk cache). Dask's time includes starting its cluster (about 2-3 s). Each size runs "
        "against the nodes directly, then with a fixed delay added to every HTTP request by a loopback proxy "
        "(a hosted provider's round trip).",
        "",
        "| N | node | serial s | Dask s | serial / Dask | HTTP requests (serial, Dask) | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, label, results in rows:
        (s_time, s_req, s_fail), (d_time, d_req, d_fail) = results["serial"], results["dask"]
        lines.append(f"| {size} | {label} | {s_time:.1f} | {d_time:.1f} | **{s_time / d_time:.2f}x** "
                     f"| {s_req:,}, {d_req:,} | {s_fail + d_fail} |")
    lines.append("")


def bench_sharded_trace(logs: int, lines: list[str]) -> None:
    from auditor.trace_shards import run_sharded

    node = start_anvil(1)
    try:
        install_multicall3(node.url)
        progress(f"trace: emitting {logs:,} Transfer logs ({PER_TX} a block)")
        registry, spec, window = _world(node.url, logs)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            asset = registry.assets["ethereum"]["BENCH"]
            (folder / "registry.yaml").write_text(
                f"chains:\n  ethereum: {{chain_id: {registry.chains['ethereum'].chain_id}}}\n"
                f"assets:\n  ethereum:\n    BENCH: {{address: \"{asset.address}\", decimals: 18, price: par}}\n")
            (folder / "bench.yaml").write_text(
                f"id: bench\nname: Bench issuer\ntoken:\n  symbol: BISS\n  deployments:\n"
                f"    - {{chain: ethereum, address: \"{spec.token.deployments[0].address}\"}}\naccounts:\n"
                + "".join(f"  - {{chain: ethereum, address: \"{h.address}\", label: \"{h.label}\"}}\n"
                          for h in spec.accounts))
            header = rpc(node.url, "eth_getBlockByNumber", [hex(window[1]), False])
            pins = {"ethereum": {"number": window[1], "hash": header["hash"], "chain": "ethereum"}}
            results: dict[str, tuple[float, Any]] = {}
            for mode, shards in (("serial", 1), ("dask", 8)):
                progress(f"trace: {mode}, {shards} shard(s)")
                started = time.perf_counter()
                found = run_sharded(str(folder / "bench.yaml"), str(folder / "registry.yaml"),
                                    {"ethereum": node.url}, pins, {"ethereum": window}, shards, mode, use_cache=False)
                results[mode] = (time.perf_counter() - started, found)
    finally:
        node.stop()
    scanned = results["serial"][1]["scanned"]["ethereum"]["transfer_logs"]
    same = results["serial"][1]["events"] == results["dask"][1]["events"]
    lines += [
        f"## A trace of {scanned:,} Transfer logs: one pass against 8 shards on Dask (2 worker processes)",
        "",
        f"Blocks {window[0]:,}..{window[1]:,} of one local anvil ({PER_TX} logs a block); the same findings either "
        f"way: {'yes' if same else 'NO'}.",
        "",
        "| run | seconds | logs/s |",
        "|---|---|---|",
        f"| one pass, this process | {results['serial'][0]:.1f} | {scanned / results['serial'][0]:,.0f} |",
        f"| 8 shards on Dask | {results['dask'][0]:.1f} | {scanned / results['dask'][0]:,.0f} |",
        "",
        f"serial / Dask: **{results['serial'][0] / results['dask'][0]:.2f}x**",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,40,160")
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=int, default=50, help="added to every request in the second series")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("AUDITOR_CACHE_DIR", tempfile.mkdtemp(prefix="scale-bench-cache-"))
    lines = ["# Scale: serial against Dask", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python -m benchmarks.scale_bench` "
             f"on {machine()}.", ""]
    bench_issuers([int(n) for n in args.sizes.split(",")], lines, args.latency_ms)
    bench_sharded_trace(args.logs, lines)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
