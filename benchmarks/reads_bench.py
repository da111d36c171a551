"""Bulk reads: N ERC-20 balanceOf at a pinned block, the chain client against the true floors and the best peers.

Contenders, interleaved in each repetition, in a shuffled order (see common.interleave):
- client: `ChainClient.read` of pre-built `Read`s, a fresh client per run (pinned and connected outside the timed
  part, no disk cache, so no answer of an earlier run helps it). A `Read` encodes its aggregate3 tuple on first use
  and keeps it, as an audit's plan keeps its Reads across pins and rounds: after the first run the client's
  encoding is joining those tuples (the floors' calldata is encoded before their clock starts);
- raw floor: aggregate3 calldata pre-encoded outside the timed part, 1,000 reads per call, the JSON-RPC batch
  bodies pre-serialised; timed: POST through one requests.Session + receive + json.loads. No ABI decoding;
- raw floor, bodies in parallel: the same bodies all in flight at once (a thread and a warm connection each), the
  floor for a client that, like ours, keeps several bodies in flight;
- decoded floor: the same plus `decode_aggregate3` and `int.from_bytes` of every uint256: the least work that
  still yields the numbers;
- naive web3: `contract.functions.balanceOf(a).call(block_identifier=pin)` in a loop;
- dank_mids: its Web3 with the dank middleware, N coroutines gathered, in the bench-only venv (peers/).
Every run's values are checked against the balances set on chain (a digest), so no contender is fast by doing less.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from eth_utils import keccak  # type: ignore[attr-defined,unused-ignore]

from auditor.chain.abi import encode_call
from auditor.chain.multicall import MULTICALL3_ADDRESS, decode_aggregate3, encode_aggregate3
from auditor.chain.reader import ChainClient, Read
from auditor.chain.rpc import HttpTransport, Stats
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from benchmarks.common import (
    CountingSession,
    Peer,
    PeerError,
    Sample,
    interleave,
    median_s,
    progress,
    requests_of,
    spread,
)

CHUNK = 1000  # reads per aggregate3 call, the client's default chunk
BODY_LIMIT = 2_000_000  # anvil refuses request bodies over 2 MiB: the floor packs its calls under that
ERC20_ABI = [{"type": "function", "name": "balanceOf", "stateMutability": "view",
              "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]
HEADERS = {"Content-Type": "application/json"}


def digest(values: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()


class Holders:
    """An ERC-20 (OpenZeppelin 5, balances at storage slot 0) whose holders have distinct balances, at a pin."""

    def __init__(self, url: str, n: int) -> None:
        self.url = url
        self.token = Contract.deploy(url, compile_lab_contracts()["LabToken"], "Bench", "BNCH", 18).address
        self.owners = [f"0x{i + 0x1000:040x}" for i in range(n)]
        self.balances = [(i + 1) * 10**15 + i * 7 for i in range(n)]
        session = requests.Session()
        for start in range(0, n, 1000):  # anvil_setStorageAt in batches: one request per 1,000 holders
            batch = [
                {"jsonrpc": "2.0", "id": i, "method": "anvil_setStorageAt",
                 "params": [self.token, "0x" + keccak(bytes(12) + bytes.fromhex(owner[2:]) + bytes(32)).hex(),
                            f"0x{balance:064x}"]}
                for i, (owner, balance) in enumerate(zip(self.owners[start:start + 1000],
                                                         self.balances[start:start + 1000], strict=True))
            ]
            answers = session.post(url, data=json.dumps(batch), headers=HEADERS, timeout=60).json()
            if any("error" in a for a in answers):
                raise RuntimeError(f"anvil_setStorageAt failed: {answers[0]}")
        rpc(url, "evm_mine", [])
        self.pin = int(rpc(url, "eth_blockNumber"), 16)
        token = Contract(url, self.token, ERC20_ABI, "LabToken")
        for index in (0, n // 2, n - 1):  # the storage layout is what we think it is
            if token.call("balanceOf", self.owners[index], block=self.pin) != self.balances[index]:
                raise RuntimeError("balanceOf does not read the balances set in storage slot 0")

    def expected(self, n: int) -> str:
        return digest(self.balances[:n])


def client_runner(url: str, holders: Holders, n: int) -> Any:
    reads = [Read(holders.token, "balanceOf(address)", (owner,)) for owner in holders.owners[:n]]  # pre-built

    def run() -> Sample:
        stats = Stats()
        client = ChainClient("bench", 1, HttpTransport("bench", url, stats), stats)
        client.open(holders.pin)  # chain id, pin and Multicall3's code: connect, outside the timed part
        client.read([])
        before = stats.http_requests
        start = time.perf_counter()
        results = client.read(reads)
        seconds = time.perf_counter() - start
        return Sample(seconds, stats.http_requests - before, digest([r.one for r in results]))

    return run


class Floor:
    """The pre-encoded, pre-serialised requests for N reads, and the two floors timed on them."""

    def __init__(self, url: str, holders: Holders, n: int) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "eth_chainId", "params": []}, timeout=10)
        calls = []
        for index, start in enumerate(range(0, n, CHUNK)):
            data = encode_aggregate3([(holders.token, True, encode_call("balanceOf(address)", owner))
                                      for owner in holders.owners[start:start + CHUNK]])
            calls.append({"jsonrpc": "2.0", "id": index, "method": "eth_call",
                          "params": [{"to": MULTICALL3_ADDRESS, "data": "0x" + data.hex()}, hex(holders.pin)]})
        self.bodies: list[bytes] = []
        batch: list[dict[str, Any]] = []
        for call in calls:  # as few bodies as the node accepts
            if batch and len(json.dumps([*batch, call])) > BODY_LIMIT:
                self.bodies.append(json.dumps(batch).encode())
                batch = []
            batch.append(call)
        self.bodies.append(json.dumps(batch).encode())
        self.pool: ThreadPoolExecutor | None = None

    def _send(self) -> list[Any]:
        post, url = self.session.post, self.url
        return [json.loads(post(url, data=body, headers=HEADERS, timeout=60).content) for body in self.bodies]

    def _post(self, body: bytes) -> Any:
        return json.loads(self.session.post(self.url, data=body, headers=HEADERS, timeout=60).content)

    def parallel(self) -> Sample:
        """The raw floor with every body in flight at once (a thread each, connections opened beforehand), as
        the client sends them (READS_IN_FLIGHT)."""
        if self.pool is None:
            self.pool = ThreadPoolExecutor(len(self.bodies))
            list(self.pool.map(self._post, self.bodies))  # one connection a thread, opened outside the clock
        start = time.perf_counter()
        replies = list(self.pool.map(self._post, self.bodies))
        seconds = time.perf_counter() - start
        return Sample(seconds, len(self.bodies), digest(self._values(replies)))

    @staticmethod
    def _values(replies: list[Any]) -> list[int]:
        return [int.from_bytes(raw, "big")
                for reply in replies for item in sorted(reply, key=lambda item: item["id"])
                for _ok, raw in decode_aggregate3(bytes.fromhex(item["result"][2:]))]

    def raw(self) -> Sample:
        start = time.perf_counter()
        replies = self._send()
        seconds = time.perf_counter() - start
        return Sample(seconds, len(self.bodies), digest(self._values(replies)))  # checked after the clock stops

    def decoded(self) -> Sample:
        start = time.perf_counter()
        values = self._values(self._send())
        seconds = time.perf_counter() - start
        return Sample(seconds, len(self.bodies), digest(values))


def naive_runner(url: str, holders: Holders, n: int) -> Any:
    from web3 import Web3

    owners = [Web3.to_checksum_address(owner) for owner in holders.owners[:n]]

    def run() -> Sample:
        session = CountingSession()
        w3 = Web3(Web3.HTTPProvider(url, session=session))
        contract = w3.eth.contract(address=Web3.to_checksum_address(holders.token), abi=ERC20_ABI)
        balance_of, pin = contract.functions.balanceOf, holders.pin
        start = time.perf_counter()
        values = [balance_of(owner).call(block_identifier=pin) for owner in owners]
        seconds = time.perf_counter() - start
        return Sample(seconds, session.count, digest(values))

    return run


def peer_runner(peer: Peer, n: int) -> Any:
    def run() -> Sample:
        reply = peer.run(n=n)
        return Sample(reply["seconds"], reply["requests"], reply["digest"])

    return run


def bench_reads(url: str, lines: list[str], notes: list[str], reps: int, sizes: Sequence[int] = (1_000, 10_000),
                naive_reps_at_10k: int = 1) -> None:
    progress(f"reads: setting {max(sizes):,} distinct balances on chain")
    holders = Holders(url, max(sizes))
    dank: Peer | None = None
    dank_problem = ""
    with tempfile.TemporaryDirectory() as folder:
        owners_file = Path(folder) / "holders.json"
        owners_file.write_text(json.dumps(holders.owners))
        try:
            dank = Peer("dank_reads.py", url, holders.token, str(holders.pin), str(owners_file))
            progress(f"reads: dank_mids peer ready ({dank.hello.get('versions')})")
        except PeerError as exc:
            dank_problem = str(exc)
            progress(f"reads: dank_mids not measured: {dank_problem}")
        rows: list[tuple[int, dict[str, list[Sample]], dict[str, str]]] = []
        try:
            for n in sizes:
                contenders: dict[str, Any] = {
                    "client": client_runner(url, holders, n),
                    "raw floor": Floor(url, holders, n).raw,
                    "raw floor, bodies in parallel": Floor(url, holders, n).parallel,
                    "decoded floor": Floor(url, holders, n).decoded,
                    "naive web3": naive_runner(url, holders, n),
                }
                if dank is not None:
                    contenders["dank_mids"] = peer_runner(dank, n)
                only_in = {"naive web3": range(naive_reps_at_10k)} if n >= 10_000 else None
                failures: dict[str, str] = {}
                samples = _interleave_guarded(contenders, reps, f"reads N={n:,}", only_in, failures)
                expected = holders.expected(n)
                for name, runs in samples.items():
                    wrong = [s for s in runs if s.digest != expected]
                    if wrong:
                        raise RuntimeError(f"{name} returned other values than the chain holds at N={n}")
                rows.append((n, samples, failures))
        finally:
            if dank is not None:
                dank.close()
    warm_up = dank.hello.get("warm_up") if dank is not None else None
    _table(lines, notes, rows, reps, dank_problem, naive_reps_at_10k)
    if warm_up and dank is not None:
        peer_versions = ", ".join(f"{name} {number}" for name, number in dank.hello["versions"].items())
        lines[-1:-1] = [
            f"dank_mids ({peer_versions}) makes one untimed warm-up gather of {warm_up['reads']} reads when "
            f"its process starts ({warm_up['requests']} HTTP requests, {warm_up['seconds']:.2f} s): in a fresh "
            "process its first batch comes back unusable and it falls back to one eth_call per read, rate-limited "
            "to its default 50 requests/s; the timed gathers after it are multicalls. On chain id 1 below "
            "Multicall3's mainnet deploy block it uses Multicall2 lent by state override (its own choice).",
        ]


def _interleave_guarded(contenders: dict[str, Any], reps: int, label: str, only_in: Any,
                        failures: dict[str, str]) -> dict[str, list[Sample]]:
    """interleave, where a peer that fails mid-way is dropped (its failure recorded), the others go on."""
    guarded: dict[str, Any] = {}
    for name, run in contenders.items():
        def safe(name: str = name, run: Any = run) -> Sample:
            if name in failures:
                return Sample(float("nan"), None, "skipped")
            try:
                sample: Sample = run()
            except PeerError as exc:
                failures[name] = str(exc)
                progress(f"{label}: {name} failed: {exc}")
                return Sample(float("nan"), None, "skipped")
            return sample
        guarded[name] = safe
    samples = interleave(guarded, reps, label, only_in)
    return {name: [s for s in runs if s.digest != "skipped"] for name, runs in samples.items()
            if name not in failures}


def _table(lines: list[str], notes: list[str], rows: list[tuple[int, dict[str, list[Sample]], dict[str, str]]],
           reps: int, dank_problem: str, naive_reps_at_10k: int) -> None:
    lines += [
        "## Bulk reads: N ERC-20 balanceOf at a pinned block (holders with distinct balances)",
        "",
        "Medians of interleaved runs (min-max in brackets); HTTP requests per run. The client reads pre-built "
        "`Read`s with a fresh client per run (connected and pinned outside the timed part, no cache; a `Read` keeps "
        "its encoded aggregate3 tuple from its first use, so later runs only join them). The floors "
        "send aggregate3 calls pre-encoded, 1,000 reads each, in JSON-RPC batch bodies serialised beforehand, "
        "as few bodies as the node takes (anvil refuses bodies over 2 MiB: at most 4 such calls a body, so "
        "10,000 reads cannot go in one batch on anvil); "
        "raw = POST + receive + `json.loads`, decoded = raw + `decode_aggregate3` + `int.from_bytes` per value. "
        "The raw floor sends its bodies one after another, as the floor is defined; the client has up to three "
        "in flight at once (`READS_IN_FLIGHT`), so the raw floor with all its bodies in flight at once (a thread "
        "and a warm connection each) is measured too, and the client's ratio to it given beside.",
        "",
        "| N | contender | runs | median s | (min-max) | HTTP requests |",
        "|---|---|---|---|---|---|",
    ]
    ratios = [
        "",
        "| N | client / raw floor | client / raw floor in parallel | client / decoded floor | naive web3 / client "
        "| dank_mids / client |",
        "|---|---|---|---|---|---|",
    ]
    naive_1k: float | None = None
    for n, samples, failures in rows:
        for name, runs in samples.items():
            lines.append(f"| {n:,} | {name} | {len(runs)} | {median_s(runs):.3f} | ({spread(runs)}) "
                         f"| {requests_of(runs)} |")
        client = median_s(samples["client"])
        naive = median_s(samples["naive web3"])
        if n == 1_000:
            naive_1k = naive
        naive_text = f"**{naive / client:,.0f}x**"
        if n >= 10_000 and naive_1k is not None:
            naive_text += f" ({len(samples['naive web3'])} run; extrapolated from N=1,000: " \
                          f"{naive_1k * n / 1_000 / client:,.0f}x)"
        dank_text = f"**{median_s(samples['dank_mids']) / client:,.1f}x**" if "dank_mids" in samples else "not run"
        ratios.append(f"| {n:,} | **{client / median_s(samples['raw floor']):.2f}x** "
                      f"| {client / median_s(samples['raw floor, bodies in parallel']):.2f}x "
                      f"| **{client / median_s(samples['decoded floor']):.2f}x** | {naive_text} | {dank_text} |")
        for name, why in failures.items():
            notes.append(f"- reads N={n:,}: {name} failed and is left out: {why}")
    lines += ratios
    lines.append("")
    lines.append(f"Every contender ran {reps} time(s) per N except naive web3 at N=10,000, which ran "
                 f"{naive_reps_at_10k} time(s) (it is the slowest contender by far): its ratio is measured from "
                 "that run, and the "
                 "N=1,000 median times ten is given beside it as the extrapolation. Ratios above 1 mean the "
                 "first-named is slower.")
    if dank_problem:
        lines.append(f"dank_mids was not measured: {dank_problem}")
    lines.append("")
