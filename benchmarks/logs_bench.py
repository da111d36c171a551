"""Log scans: 100,000 Transfer logs end to end through the chain client, against parsing the same responses alone
and against cryo.

Contenders, interleaved in each repetition (in a shuffled order, see common.interleave):
- client: `ChainClient.scan_log_columns` -> `LogColumns.decode` -> consume (value summed, recipient
  touched), a fresh client per run (connected and pinned outside the timed part);
- json.loads: stdlib `json.loads` of the very response bodies the client received (recorded in an untimed pass,
  held in memory as bytes); timed: the parses only;
- orjson.loads: the same bodies parsed by orjson, in the bench-only venv (peers/orjson_logs.py);
- cryo: `cryo.collect("logs", ...)` against the node with its own requests, rows iterated in Python
  (peers/cryo_logs.py, bench-only venv).
Peak Python memory (tracemalloc) of the client's scan and of the json.loads pass come from separate, untimed
passes (tracemalloc slows Python several-fold).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import requests

from auditor.chain.abi import EventDecoder
from auditor.chain.reader import ChainClient
from auditor.chain.rpc import HttpTransport, Stats
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from benchmarks.common import Peer, PeerError, Sample, interleave, median_s, progress, requests_of, spread

# Addresses decoded as the node spelled them: the consumer shows none to a person, so none is checksummed.
TRANSFER = EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)", checksum=False)
PER_TX = 250  # LogSpammer logs per transaction, one transaction a block: about a busy mainnet block's worth
EMPTY_BLOCKS = 10_000  # mined before the logs, so the scaling table has a 10,000-block range to scan
MINE_STEP = 500  # anvil_mine slows with the chain's length (~130 s for 10,000 blocks here): mined in steps


class RecordingSession(requests.Session):
    """Keeps every response body the client received, so the parsers are timed on exactly those bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override,unused-ignore]
        response = super().request(method, url, *args, **kwargs)  # type: ignore[arg-type,unused-ignore]
        self.bodies.append(response.content)
        response.raw = _Replay(self.bodies[-1])  # the transport reads the body from raw: hand it the same bytes
        return response


class _Replay:
    """A read body, readable once more (what the transport calls on a streamed response's raw)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def read(self, *_args: Any, **_kwargs: Any) -> bytes:
        body, self.body = self.body, b""
        return body


class LogWorld:
    """LogSpammer's Transfer logs, PER_TX a block, after EMPTY_BLOCKS empty blocks."""

    def __init__(self, url: str, target_logs: int, empty_blocks: int = EMPTY_BLOCKS) -> None:
        self.url = url
        for mined in range(0, empty_blocks, MINE_STEP):
            rpc(url, "anvil_mine", [hex(min(MINE_STEP, empty_blocks - mined))], timeout=600)
            progress(f"logs: mined {min(mined + MINE_STEP, empty_blocks):,} of {empty_blocks:,} empty blocks")
        spammer = Contract.deploy(url, compile_lab_contracts()["LogSpammer"])
        self.spammer = spammer.address
        self.first = int(rpc(url, "eth_blockNumber"), 16) + 1
        for batch in range(math.ceil(target_logs / PER_TX)):
            spammer.transact("emitTransfers", PER_TX, batch * PER_TX)
        self.last = int(rpc(url, "eth_blockNumber"), 16)
        self.logs = math.ceil(target_logs / PER_TX) * PER_TX
        self.value_sum = sum(range(self.logs))  # LogSpammer's values are offset + i: 0, 1, 2, ...

    def client(self, session: requests.Session | None = None) -> tuple[ChainClient, Stats]:
        stats = Stats()
        client = ChainClient("bench", int(rpc(self.url, "eth_chainId"), 16),
                             HttpTransport("bench", self.url, stats, session=session), stats)
        client.open(self.last)
        return client, stats

    def scan(self, client: ChainClient, first: int | None = None) -> tuple[int, int]:
        """Every Transfer decoded and consumed (values summed, recipients touched), a window's columns at a time, as
        the flow trace reads them."""
        count = total = width = 0
        for window in client.scan_log_columns([self.spammer], [TRANSFER.topic],
                                              self.first if first is None else first, self.last):
            fields, kept = window.decode(TRANSFER)
            total += sum(fields["value"])
            width += sum(map(len, fields["to"]))
            count += len(kept)
        return count, total


def bench_logs(url: str, lines: list[str], notes: list[str], reps: int, target_logs: int = 100_000,
               empty_blocks: int = EMPTY_BLOCKS) -> LogWorld:
    progress(f"logs: emitting {target_logs:,} Transfer logs ({PER_TX} a block) after {empty_blocks:,} empty blocks")
    world = LogWorld(url, target_logs, empty_blocks)
    expected = (world.logs, world.value_sum)

    recorder = RecordingSession()
    client, _stats = world.client(recorder)
    recorder.bodies.clear()  # connect's answers are no log windows
    if world.scan(client) != expected:
        raise RuntimeError("the client's scan did not return the logs emitted")
    bodies = recorder.bodies
    progress(f"logs: recorded {len(bodies)} eth_getLogs responses, {sum(map(len, bodies)) / 2**20:.1f} MiB")

    def client_run() -> Sample:
        scanner, stats = world.client()
        before = stats.http_requests
        start = time.perf_counter()
        found = world.scan(scanner)
        return Sample(time.perf_counter() - start, stats.http_requests - before, found)

    def json_run() -> Sample:
        loads = json.loads
        count = 0
        start = time.perf_counter()
        for body in bodies:
            count += len(loads(body)["result"])
        return Sample(time.perf_counter() - start, None, count)

    contenders: dict[str, Any] = {"client (scan + decode + consume)": client_run, "stdlib json.loads": json_run}
    peers: list[Peer] = []
    problems: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        for index, body in enumerate(bodies):
            (Path(folder) / f"{index:04d}.json").write_bytes(body)
        for name, script, args in (
            ("orjson.loads", "orjson_logs.py", (folder,)),
            ("cryo (collect + rows iterated)", "cryo_logs.py",
             (url, world.spammer, TRANSFER.topic, str(world.first), str(world.last))),
        ):
            try:
                peer = Peer(script, *args)
            except PeerError as exc:
                problems[name] = str(exc)
                progress(f"logs: {name} not measured: {exc}")
                continue
            peers.append(peer)
            progress(f"logs: {name} peer ready ({peer.hello.get('versions')})")
            contenders[name] = _peer_run(peer, name, problems)
        try:
            samples = interleave(contenders, reps, "logs")
        finally:
            for peer in peers:
                peer.close()
    samples = {name: [s for s in runs if s.digest != "failed"] for name, runs in samples.items()}
    samples = {name: runs for name, runs in samples.items() if runs and name not in problems}
    for name, runs in samples.items():
        for sample in runs:
            logs = sample.digest[0] if isinstance(sample.digest, tuple | list) else sample.digest
            if logs != world.logs or (isinstance(sample.digest, tuple | list) and tuple(sample.digest) != expected):
                raise RuntimeError(f"logs: {name} saw {sample.digest}, expected {expected}")

    progress("logs: peak memory passes (tracemalloc)")
    scanner, _stats = world.client()
    tracemalloc.start()
    world.scan(scanner)
    _current, client_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    json_run()
    _current, json_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    baseline = median_s(samples["stdlib json.loads"])
    ours = median_s(samples["client (scan + decode + consume)"])
    lines += [
        f"## Log scan: {world.logs:,} Transfer logs (blocks {world.first:,}..{world.last:,}, {PER_TX} a block)",
        "",
        "Medians of interleaved runs. json.loads and orjson.loads parse the very response bodies the client "
        f"received ({len(bodies)} eth_getLogs answers, {sum(map(len, bodies)) / 2**20:.1f} MiB, pre-fetched); "
        "the client and cryo fetch from the node in every run.",
        "",
        "| contender | runs | median s | (min-max) | logs/s | HTTP requests | / json.loads |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, runs in samples.items():
        median = median_s(runs)
        count = requests_of(runs) if name.startswith("client") else (
            "none (pre-fetched)" if "loads" in name else "not counted (its own Rust HTTP client)")
        lines.append(f"| {name} | {len(runs)} | {median:.3f} | ({spread(runs)}) | {world.logs / median:,.0f} "
                     f"| {count} | {median / baseline:.2f}x |")
    cryo = "cryo (collect + rows iterated)"
    lines.append("")
    verdicts = [f"client / stdlib json.loads: **{ours / baseline:.2f}x**"]
    if "orjson.loads" in samples:
        verdicts.append(f"client / orjson.loads: **{ours / median_s(samples['orjson.loads']):.2f}x**")
    if cryo in samples:
        collect_only = sorted(s.extra["collect_seconds"] for s in samples[cryo])[len(samples[cryo]) // 2]
        verdicts.append(f"client / cryo with rows iterated: **{ours / median_s(samples[cryo]):.2f}x** "
                        f"(cryo's DataFrame alone: median {collect_only:.3f} s, {world.logs / collect_only:,.0f} "
                        "logs/s)")
    lines.append("; ".join(verdicts) + ".")
    lines += [
        "",
        "| peak Python memory (tracemalloc, separate untimed pass) | MiB |",
        "|---|---|",
        f"| client scan, decode and consume of {world.logs:,} logs | {client_peak / 2**20:.1f} |",
        f"| json.loads of the same responses, one at a time (the bodies themselves not counted) "
        f"| {json_peak / 2**20:.1f} |",
        "",
    ]
    for name, why in problems.items():
        notes.append(f"- log scan: {name} not measured: {why}")
    return world


def _peer_run(peer: Peer, name: str, problems: dict[str, str]) -> Any:
    def run() -> Sample:
        if name in problems:
            return Sample(float("nan"), None, "failed")
        try:
            reply = peer.run()
        except PeerError as exc:
            problems[name] = str(exc)
            progress(f"logs: {name} failed: {exc}")
            return Sample(float("nan"), None, "failed")
        extra = {"collect_seconds": reply["collect_seconds"]} if "collect_seconds" in reply else {}
        found = (reply["logs"], reply["digest"]) if "digest" in reply else reply["logs"]
        return Sample(reply["seconds"], None, found, extra)

    return run
