"""One client per chain: chain-id check, pinned block, batched contract reads through Multicall3, log scans."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import itertools
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

from auditor.chain.abi import EventDecoder, decode_values, encode_call
from auditor.chain.cache import SqliteCache
from auditor.chain.evidence import Bundle, RecordingLayer, ReplayLayer
from auditor.chain.multicall import (
    AGGREGATE3_SELECTOR,
    MULTICALL3_ADDRESS,
    aggregate3_calldata_hex,
    aggregate3_tuple,
    decode_aggregate3_columns,
)
from auditor.chain.ratelimit import session_for
from auditor.chain.rpc import (
    APART_AT_ONCE,
    CachingLayer,
    Call,
    ChainError,
    CheckedColumns,
    CheckedLogs,
    ConfigError,
    HttpTransport,
    Layer,
    PayloadTooLarge,
    Response,
    RetryPolicy,
    Stats,
    error_text,
    gc_paused,
    is_error,
    is_execution_failure,
    is_transient,
    malformed,
)

DEFAULT_CHUNK = 1000  # reads per aggregate3 call: ~2000 works on anvil, 5000 does not (EVM-LAB.md)
# Request bodies of reads in flight at once. A node runs a batch's calls side by side, but not all of its cores for
# them: 10,000 balanceOf in 3 bodies on anvil (2 cores), the client took 110 ms one body at a time and 96 ms with
# all three in flight (medians of 21 interleaved runs; the raw floor, one at a time, 69 ms).
READS_IN_FLIGHT = 3
# Request body budget, in characters of calldata hex (`_chars`, and Multicall3's code where it is lent). anvil
# refuses bodies over 2 MiB (2,097,152 bytes), geth's default limit is 5 MB; a provider that refuses less (HTTP 413
# or "too large") halves it for the rest of the audit. 10,000 balanceOf reads fit in 3 bodies of 4 chunks (as
# the benchmark's floor sends them), not 4 of 3.
DEFAULT_BATCH_CHARS = 1_900_000
DEFAULT_LOG_SPAN = 100_000  # widest eth_getLogs window; sparse ranges grow to it
FIRST_LOG_SPAN = 128  # a first window riding with a round's reads: small, but wide enough for most short ranges
# A scan on its own starts smaller: its first window is the only one nothing else overlaps, and the density it shows
# steers the rest (a 128-block first window of a busy token held 32,000 logs, three times the target).
FIRST_LOG_SPAN_ALONE = 16
TARGET_LOGS_PER_WINDOW = 10_000  # keeps each answer (and so peak memory) bounded, as providers do
LOG_SPAN_GROWTH = 16  # how much wider than the last window the next may be
# A dense range's windows are each this fraction of the target, and DENSE_WINDOWS of them are asked for at once: the
# transport keeps APART_AT_ONCE in flight and starts the next as each is answered, so the node's threads stay busy
# to the last of them. 100,000 logs on anvil end to end with the compiled reader, against json.loads of the same
# bodies (medians of 15 interleaved runs): 6 windows of 1/2 the target 1.21x, 12 of 1/4 1.09x, 12 of 1/3 1.06x,
# 12 of 1/2 1.09x; peak Python memory 37, 30, 35 and 49 MiB.
DENSE_SPLIT = 3
DENSE_WINDOWS = 2 * APART_AT_ONCE
RUNTIME_HEX = Path(__file__).with_name("multicall3_runtime.hex")  # our Multicall3 (auditor/lab/contracts)
BLOCK_NUMBER_CALL = encode_call("getBlockNumber()")
# Chains where the EVM's block.number and blockhash are the parent chain's (Arbitrum and its Orbit chains,
# Plume among them): Multicall3 cannot prove the block there, so their reads are reported unproven.
PARENT_BLOCK_NUMBER_CHAINS = frozenset({42161, 42170, 98865, 98866})

ProgressFn = Callable[[int, int], None]


NO_CONTRACT = "no return data: no contract at this address at this block"


class ReorgError(ChainError):
    """The pinned block's hash changed during the audit: every read may be from a chain that no longer exists."""


class WrongBlockError(ChainError):
    """The node executed a read at another block than the pin (a lagging or misrouted backend)."""

    def __init__(self, chain: str, pinned: int, answered: int | str) -> None:
        self.pinned, self.answered = pinned, answered
        super().__init__(chain, "eth_call", str(pinned), f"the node answered at block {answered}, not at the pin")


class _Unusable(Exception):
    """An aggregate3 answer that is no answer (empty, undecodable, wrong length): the node failed."""


@dataclass(frozen=True)
class Pin:
    chain: str
    chain_id: int
    number: int
    hash: str
    timestamp: int
    parent_hash: str = ""

    @property
    def tag(self) -> str:
        return hex(self.number)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "chain_id": self.chain_id,
            "number": self.number,
            "hash": self.hash,
            "parent_hash": self.parent_hash,
            "timestamp": self.timestamp,
            "time": dt.datetime.fromtimestamp(self.timestamp, dt.UTC).isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Read:
    """A contract read: target, function signature, arguments and return types (eth-abi type strings)."""

    target: str
    signature: str
    args: tuple[Any, ...] = ()
    returns: tuple[str, ...] = ("uint256",)
    data: bytes = field(default=b"", compare=False, repr=False)
    # What identifies its answer at a block: target in lower case, calldata, return types, made once per Read into
    # one string whose hash Python keeps (the client's answer keys cost no hashing per read however often they are
    # looked up). Neither the calldata's hex nor a type string holds a ":": read from the right it splits back into
    # the three, whatever the target holds, so two different reads never share it.
    answer: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.data:
            object.__setattr__(self, "data", encode_call(self.signature, *self.args))
        object.__setattr__(self, "answer", f"{self.target.lower()}:{self.data.hex()}:{','.join(self.returns)}")

    @functools.cached_property
    def multicall_hex(self) -> str:
        """Its call as a tuple of aggregate3's calldata (allowed to fail), in hex digits as a request carries it,
        encoded once however often it is read."""
        return aggregate3_tuple(self.target, True, self.data).hex()

    def describe(self) -> str:
        args = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in self.args)
        return f"{self.target}.{self.signature.split('(')[0]}({args})"


class ReadResult(NamedTuple):
    """ok: the contract answered and it decoded. Not ok and not unavailable: the contract answered with a
    revert or undecodable bytes. unavailable: the node gave no usable answer; the value is unknown.

    A named tuple, immutable like the frozen dataclass it was, but made in C: 10,000 balances become results with
    no Python call per read (`_chunk_results`)."""

    read: Read
    ok: bool
    value: tuple[Any, ...] = ()
    error: str = ""
    unavailable: bool = False

    @property
    def one(self) -> Any:
        return self.value[0]


@dataclass(frozen=True)
class Unread:
    """A read the node never answered: the audit that needed it is incomplete."""

    chain: str
    block: int
    call: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "block": self.block, "call": self.call, "reason": self.reason}


class Log(NamedTuple):
    """One log as the node gave it (addresses as the node spelled them; data as bytes)."""

    address: str
    topics: tuple[str, ...]
    data: bytes
    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str


def _hex(value: int) -> str:
    return hex(value)


class ChainClient:
    """Every read of one chain in an audit goes through here, at one pinned block."""

    def __init__(
        self,
        chain: str,
        expected_chain_id: int,
        wire: Layer,
        stats: Stats,
        *,
        cache: SqliteCache | None = None,
        record: Bundle | None = None,
        multicall: str = MULTICALL3_ADDRESS,
        log_span: int = DEFAULT_LOG_SPAN,
        chunk_size: int = DEFAULT_CHUNK,
        batch_chars: int = DEFAULT_BATCH_CHARS,
        prove_block: bool = True,
    ) -> None:
        self.chain = chain
        self.expected_chain_id = expected_chain_id
        self.stats = stats
        self.wire = wire
        self.cache = cache
        self.record = record
        self.prove_block = prove_block and expected_chain_id not in PARENT_BLOCK_NUMBER_CHAINS
        if isinstance(wire, HttpTransport):
            wire.check = self._check_answer  # below the cache: only proven answers are ever stored
            wire.final = self._pruned
            wire.typed_logs = record is None  # evidence keeps the node's answers whole, every field
        self.unread: list[Unread] = []
        self._unread_seen: set[tuple[int, str]] = set()
        self._cached: Layer = wire
        self.layer: Layer = RecordingLayer(_Forward(self), record, chain) if record is not None else _Forward(self)
        self.multicall = multicall
        self.log_span = log_span
        # Threads made on first use: "reads" sends bodies of reads (READS_IN_FLIGHT), "scan" fetches a dense log
        # scan's next windows ahead (one).
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self.chunk_size = chunk_size
        self.batch_chars = batch_chars
        self.mode: str | None = None
        self._answers: dict[Any, ReadResult] = {}  # Read.answer at the pin, (block, Read.answer) before it
        # Aggregate3 answers the transport already decoded to check them, by id (the object is kept to be sure).
        self._checked: dict[int, tuple[Response, tuple[bytes, list[bytes]]]] = {}
        self._pin: Pin | None = None
        self._code_at_pin: str | None = None  # Multicall3's code at the pin, when `open` asked for it
        # Calls that ride along with the next batch of reads (a round's first log windows) and their answers.
        self._riders: list[Call] = []
        self._rider_answers: list[Response] = []

    # -------------------------------------------------------------- connection and pin

    @property
    def block_proof(self) -> str:
        """"multicall": every read carried Multicall3's proof of the block it ran at; "none": unproven."""
        return "multicall" if self.prove_block and self.mode in ("multicall", "override") else "none"

    def _one(self, call: Call) -> Any:
        return self._result(call, self.layer.send([call])[0])

    def _result(self, call: Call, answer: Response) -> Any:
        if is_error(answer):
            raise ChainError(self.chain, call.method, call.block, error_text(answer))
        # Checked here too: a replayed bundle never went through the transport's checks.
        problem = malformed(call, answer["result"])
        if problem is not None:
            raise ChainError(self.chain, call.method, call.block, problem)
        return answer["result"]

    def open(self, block: str | int | None = None, at: dt.datetime | None = None) -> Pin:
        """Check the chain id and pin the block; when the block is a number, one batched request also asks
        whether Multicall3 is there, so the first round of reads needs no request of its own."""
        if at is not None or isinstance(block, str):
            self.check_chain_id()
            return self.pin(block, at)
        tag = "latest" if block is None else _hex(block)
        # At "latest" the code may be asked one block after the header: Multicall3 appearing in between is no
        # risk, the block proof of every batch would refuse answers from a block without it.
        calls = [Call("eth_chainId"), Call("eth_getBlockByNumber", (tag, False)),
                 Call("eth_getCode", (self.multicall, tag))]
        answers = self.layer.send(calls)
        self.check_chain_id(self._result(calls[0], answers[0]))
        header = self._result(calls[1], answers[1])
        pin = self.pin(block, header=header if isinstance(header, dict) else None)
        self._code_at_pin = self._result(calls[2], answers[2])
        if self.record is not None and block is None:
            # A replay pins by number (the bundle's pin): keep the code under that request too.
            self.record.add(self.chain, Call("eth_getCode", (self.multicall, pin.tag)), {"result": self._code_at_pin})
        return pin

    def check_chain_id(self, result: Any = None) -> None:
        if result is None:
            result = self._one(Call("eth_chainId"))
        actual = int(result, 16)
        if actual != self.expected_chain_id:
            raise ConfigError(
                f"{self.chain}: the node reports chain id {actual}, but the registry says {self.chain} is "
                f"{self.expected_chain_id}: wrong RPC URL for this chain?"
            )

    def _block(self, tag: str) -> dict[str, Any] | None:
        block = self._one(Call("eth_getBlockByNumber", (tag, False)))
        return block if isinstance(block, dict) else None

    def pin(self, block: str | int | None = None, at: dt.datetime | None = None,
            header: dict[str, Any] | None = None) -> Pin:
        """Fix the block every read of this audit happens at: a number, a tag, or the last block at a time.

        `header` is the block's header when the caller already asked for it (see `open`)."""
        if at is not None:
            number = self._block_at(at)
            tag = _hex(number)
        elif block is None or isinstance(block, int):
            tag = "latest" if block is None else _hex(block)
        else:
            tag = block
        self._code_at_pin = None
        if header is None:
            header = self._block(tag)
        if header is None:
            head = self._block("latest")
            head_number = int(head["number"], 16) if head else "unknown"
            raise ConfigError(f"{self.chain}: block {block} does not exist (the chain head is {head_number})")
        pin = Pin(self.chain, self.expected_chain_id, int(header["number"], 16), header["hash"],
                  int(header["timestamp"], 16), header["parentHash"])
        self._pin = pin
        if self.record is not None:
            self.record.add_pin(pin.chain, _pin_record(pin))
            # Replay pins by number: keep the header under that request too when it was asked by tag or time.
            self.record.add(self.chain, Call("eth_getBlockByNumber", (pin.tag, False)), {"result": header})
        self._answers = {}
        if self.cache is not None:
            self._cached = CachingLayer(self.wire, self.cache, f"{pin.chain_id}:{pin.hash}", self.stats)
        return pin

    @property
    def pinned(self) -> Pin:
        if self._pin is None:
            raise RuntimeError(f"{self.chain}: read before the block was pinned")
        return self._pin

    def check_pin(self) -> None:
        """Fail if the pinned block was reorged away while we read (its hash changed)."""
        pin = self.pinned
        header = self._block(pin.tag)
        now = header["hash"] if header else None
        if now != pin.hash:
            raise ReorgError(
                self.chain, "eth_getBlockByNumber", str(pin.number),
                f"the pinned block was reorged (hash {pin.hash} is now {now}); re-run the audit",
            )

    def _block_at(self, when: dt.datetime) -> int:
        """Last block with timestamp <= when, by a 16-way search: ~6 batched round trips on mainnet."""
        target = int(when.timestamp())
        head = self._block("latest")
        if head is None:
            raise ChainError(self.chain, "eth_getBlockByNumber", "latest", "the node returned no head block")
        lo, hi = 0, int(head["number"], 16)
        if int(head["timestamp"], 16) <= target:
            return hi
        genesis = self._block("0x0")
        if genesis is None or int(genesis["timestamp"], 16) > target:
            raise ConfigError(f"{self.chain}: {when.isoformat()} is before the chain's first block")
        while hi - lo > 1:  # invariant: ts(lo) <= target < ts(hi)
            step = max(1, (hi - lo) // 16)
            probes = list(range(lo + step, hi, step))[:16]
            calls = [Call("eth_getBlockByNumber", (_hex(n), False)) for n in probes]
            answers = self.layer.send(calls)
            for call, number, answer in zip(calls, probes, answers, strict=True):
                problem = error_text(answer) if is_error(answer) else malformed(call, answer["result"])
                if problem or not answer["result"]:
                    raise ChainError(self.chain, call.method, str(number), problem or "the node has no such block")
                if int(answer["result"]["timestamp"], 16) <= target:
                    lo = number
                else:
                    hi = number
                    break
        return lo

    # -------------------------------------------------------------- contract reads

    def _detect_mode(self) -> str:
        code = self._code_at_pin
        if code is None:
            code = self._one(Call("eth_getCode", (self.multicall, self.pinned.tag)))
        if code != "0x":
            return "multicall"
        # No Multicall3 at this block (new chain, or before its deployment): lend it the code for
        # the duration of the call with a state override, where the node supports overrides.
        call = self._aggregate_call([], override=True)
        probe = self.layer.send([call])[0]
        if not is_error(probe):
            self._unpack(call, probe)  # a replayed probe is checked like a live one
            return "override"
        if is_transient(probe):
            # The node failed, it did not say "no overrides": falling back would silently drop the block proof.
            raise ChainError(self.chain, "eth_call", call.block, f"state override probe: {error_text(probe)}")
        return "direct"

    def _proof(self, block: int | None = None) -> list[tuple[str, bool, bytes]]:
        """Sub-calls put first in every aggregate3: the block number and, at the pin, the parent hash the node ran
        at. At an earlier block only the number is proven (its hash is not asked for: it is the pinned chain's
        ancestor by number, and the pin itself is proven and re-checked for reorgs)."""
        if not self.prove_block:
            return []
        proof = [(self.multicall, True, BLOCK_NUMBER_CALL)]
        if (block is None or block == self.pinned.number) and self.pinned.number > 0:
            proof.append((self.multicall, True, encode_call("getBlockHash(uint256)", self.pinned.number - 1)))
        return proof

    def _pruned(self, call: Call, answer: Response) -> bool:
        """A read at a block before the pin that the node answers with "no state there": final, not retried.
        (At the pin the same words may be a lagging backend behind a load balancer, and are retried.)"""
        if self._pin is None or call.method != "eth_call" or len(call.params) < 2:
            return False
        tag = call.params[1]
        if not (isinstance(tag, str) and tag.startswith("0x")) or int(tag, 16) >= self._pin.number:
            return False
        return bool(_NO_OLD_STATE.search(error_text(answer)))

    def _check_answer(self, call: Call, answer: Response) -> str | ChainError | None:
        """The transport's check of each answer: retried when unusable, refused when at the wrong block."""
        if self._pin is None or not _is_aggregate(call, self.multicall):
            return None
        try:
            unpacked = self._unpack(call, answer)
        except _Unusable as exc:
            return str(exc)
        except WrongBlockError as exc:
            return exc
        self._checked[id(answer)] = (answer, unpacked)  # the results use it: one decode per answer
        return None

    def _unpack(self, call: Call, answer: Response) -> tuple[bytes, list[bytes]]:
        """The callers' success flags (a byte each) and return data of an aggregate3 answer, once its block proof
        holds."""
        data = call.params[0]["data"]
        expected = int(data[2 + 8 + 64 : 2 + 8 + 128], 16)  # array length, after selector and offset
        try:
            flags, returns = decode_aggregate3_columns(bytes.fromhex(answer["result"][2:]))
        except Exception as exc:  # eth-abi raises several unrelated types for short or malformed data
            result = str(answer.get("result"))[:20]
            raise _Unusable(f"undecodable aggregate3 answer ({type(exc).__name__}: {result!r})") from None
        if len(returns) != expected:
            raise _Unusable(f"aggregate3 answered {len(returns)} results for {expected} calls")
        pin = self.pinned
        asked = int(call.params[1], 16) if len(call.params) > 1 and isinstance(call.params[1], str) else pin.number
        proof = len(self._proof(asked))
        if proof:
            number = returns[0]
            answered = int.from_bytes(number, "big") if flags[0] and len(number) == 32 else "unknown"
            if answered != asked:
                raise WrongBlockError(self.chain, asked, answered)
            if proof > 1 and (not flags[1] or "0x" + returns[1].hex() != pin.parent_hash.lower()):
                raise WrongBlockError(self.chain, pin.number, f"{pin.number} of another chain (parent hash differs)")
        return flags[proof:], returns[proof:]

    def _overridden(self, block: int | None) -> bool:
        """Whether an aggregate3 at `block` (None: the pin) lends Multicall3's code by state override."""
        return self.mode == "override" or (block is not None and block != self.pinned.number)

    def _chunk_chars(self, chunk: _Chunk) -> int:
        """What a chunk's aggregate3 puts in a request body (`_chars`), Multicall3's code too when it is lent."""
        _start, block, reads = chunk
        return _chars(reads) + (len(_multicall_runtime()) + 200 if self._overridden(block) else 0)

    def _aggregate_call(self, reads: Sequence[Read], override: bool | None = None, block: int | None = None) -> Call:
        """aggregate3 of `reads` at the pin, or at `block` before it (an optional check's sample)."""
        data = aggregate3_calldata_hex([*(aggregate3_tuple(*call).hex() for call in self._proof(block)),
                                        *map(_MULTICALL_HEX, reads)])
        params: tuple[Any, ...] = ({"to": self.multicall, "data": "0x" + data},
                                   self.pinned.tag if block is None or block == self.pinned.number else _hex(block))
        # Multicall3 may not exist yet at a past block: it is lent there by state override (the same stateless
        # code), as at a pin without it.
        if override if override is not None else self._overridden(block):
            params = (*params, {self.multicall: {"code": _multicall_runtime()}})
        return Call("eth_call", params)

    def read(self, reads: Sequence[Read], progress: ProgressFn | None = None) -> list[ReadResult]:
        """Answer every read at the pin; a read that reverts is marked failed, the others are unaffected."""
        return self.read_at({None: reads}, progress)[None]

    def read_at(self, groups: Mapping[int | None, Sequence[Read]], progress: ProgressFn | None = None
                ) -> dict[int | None, list[ReadResult]]:
        """Answer reads at the pin (key None) and at earlier blocks of the pinned chain, all in one batch.

        A read at an earlier block that the node cannot answer (pruned state) is only marked unavailable in its
        result: it is the optional check that asked for it that is then not evaluated, never the audit's figures.
        """
        if self.mode is None:
            self.mode = self._detect_mode()
        pin = self.pinned.number
        if any(block is not None and not 0 <= block <= pin for block, reads in groups.items() if reads):
            raise ConfigError(f"{self.chain}: reads asked at a block after the pin {pin}")
        # Built a group at a time in C (chain, repeat, map): 10,000 reads make no Python call or object each here.
        at_block = [(None if block == pin else block, reads) for block, reads in groups.items()]
        every_read = list(itertools.chain.from_iterable(reads for _b, reads in at_block))
        every_block = list(itertools.chain.from_iterable(itertools.repeat(b, len(reads)) for b, reads in at_block))
        self.stats.reads += len(every_read)
        # Answers at a block never change, so a read several stages ask for (decimals, symbol, a market's
        # state) goes to the node once per audit. Keyed by the Read's answer string at the pin, with the block
        # before it.
        keys: list[Any] = list(itertools.chain.from_iterable(
            map(_ANSWER, reads) if b is None else zip(itertools.repeat(b), map(_ANSWER, reads))
            for b, reads in at_block))
        known = self._answers
        # Each distinct read once, by its position (a repeated key is the same read at the same block), those not
        # answered already.
        missing_at: dict[Any, int] = dict(zip(keys, itertools.count()))
        if known:
            missing_at = {key: at for key, at in missing_at.items() if key not in known}
        fresh: dict[Any, ReadResult] = {}
        unavailable = False
        if missing_at:
            blocks = list(map(every_block.__getitem__, missing_at.values()))
            missing = list(map(every_read.__getitem__, missing_at.values()))
            results: list[ReadResult | None] = [None] * len(missing)
            if self.mode == "direct":
                self._read_direct(blocks, missing, results)
            else:
                self._read_multicall(blocks, missing, results, progress)
            assert not any(map(operator.is_, results, itertools.repeat(None)))  # every read answered, failed or not
            fresh = dict(zip(missing_at, cast("list[ReadResult]", results), strict=True))
            known.update(fresh)
            for (key, result), block in zip(fresh.items(), blocks, strict=True) if any(
                    map(_UNAVAILABLE, cast("list[ReadResult]", results))) else ():
                if result.unavailable:
                    del known[key]  # a later read of an unavailable one asks again
                    unavailable = True
                    if block is None:
                        self._note_unread(result)
        # Every key is answered: known holds them all unless an answer was unavailable (kept in fresh alone).
        answer = (lambda key: fresh.get(key) or known[key]) if unavailable else known.__getitem__
        out: dict[int | None, list[ReadResult]] = {}
        at = 0
        for block, reads in groups.items():
            answers = list(map(answer, keys[at : at + len(reads)]))
            at += len(reads)
            # Each its own Read (an equal one asked elsewhere shares the answer): as asked, mostly, checked in C.
            out[block] = answers if all(map(operator.is_, map(_RESULT_READ, answers), reads)) else [
                a if a.read is r else a._replace(read=r) for a, r in zip(answers, reads, strict=True)]
        return out

    def _note_unread(self, result: ReadResult) -> None:
        unread = Unread(self.chain, self.pinned.number, result.read.describe(), result.error)
        if (unread.block, unread.call) not in self._unread_seen:
            self._unread_seen.add((unread.block, unread.call))
            self.unread.append(unread)

    def _read_multicall(self, blocks: Sequence[int | None], reads: Sequence[Read], results: list[ReadResult | None],
                        progress: ProgressFn | None) -> None:
        """Each read (at its block: None is the pin) answered into `results`, by aggregate3 calls."""
        # Chunks never mix blocks: one aggregate3 runs at one block.
        pending: list[_Chunk] = []
        start = 0
        for block, run in itertools.groupby(blocks):
            end = start + len(list(run))
            pending += [(at, block, reads[at : min(at + self.chunk_size, end)])
                        for at in range(start, end, self.chunk_size)]
            start = end
        done = 0
        riders, self._riders = self._riders, []
        # Batches go to the node READS_IN_FLIGHT at a time, on the client's sender threads: the node runs them
        # while the answers already back are unpacked here.
        queue: collections.deque[tuple[list[_Chunk], list[Call], list[Call], Future[list[Response]]]] = (
            collections.deque())
        try:
            while pending or queue:
                while pending and len(queue) < READS_IN_FLIGHT:
                    batch, calls = self._next_batch(pending)
                    sent = self._pool("reads", READS_IN_FLIGHT).submit(self._send_reads, calls, riders)
                    queue.append((batch, calls, riders, sent))
                    riders = []
                batch, calls, sent_riders, future = queue.popleft()
                try:
                    answers = future.result()
                except PayloadTooLarge:
                    # Shrink the body budget for the rest of the audit; a single chunk is bisected below. What was
                    # queued behind went with the old budget: it is asked again (riders with it) under the new one.
                    for queued, _calls, queued_riders, later in queue:
                        with contextlib.suppress(Exception):
                            later.result()
                        pending[:0] = queued
                        riders = queued_riders or riders
                    queue.clear()
                    riders = sent_riders or riders
                    pending[:0] = batch
                    self.batch_chars = max(1, sum(map(self._chunk_chars, batch)) // 2)
                    if len(batch) > 1:
                        continue
                    pending.pop(0)
                    answers = [{"error": {"message": "request body too large"}}]
                for (start, block, chunk), answer, call in zip(batch, answers, calls, strict=True):
                    if is_error(answer) and len(chunk) > 1 and not is_transient(answer):
                        # too big, out of gas, or one read that breaks the whole call: bisect. Not for
                        # provider failures, which the transport already retried: halves would fail alike.
                        half = len(chunk) // 2
                        pending[:0] = [(start, block, chunk[:half]), (start + half, block, chunk[half:])]
                        continue
                    results[start : start + len(chunk)] = self._chunk_results(chunk, call, answer)
                    done += len(chunk)
                if progress is not None:
                    progress(done, len(reads))
        finally:
            for _batch, _calls, queued_riders, later in queue:  # after a failure: what was queued is not asked
                if later.cancel():
                    riders = queued_riders or riders
            self._riders = riders  # not sent (their batch was refused, or nothing was asked): the round sends them
            self._checked.clear()  # answers another layer copied were decoded again: nothing of them is kept

    def _next_batch(self, pending: list[_Chunk]) -> tuple[list[_Chunk], list[Call]]:
        """As many chunks from the front of `pending` as the body budget takes (at least one), and their calls."""
        batch: list[_Chunk] = []
        size = 0
        while pending:
            chars = self._chunk_chars(pending[0])
            if batch and size + chars > self.batch_chars:
                break
            batch.append(pending.pop(0))
            size += chars
        return batch, [self._aggregate_call(chunk, block=block) for _, block, chunk in batch]

    def _send_reads(self, calls: list[Call], riders: list[Call]) -> list[Response]:
        """The answers to a batch of aggregate3 calls; calls riding along (a round's first log windows) go in the
        same request and their answers are kept for the round."""
        answers = self.layer.send(calls + riders)
        if riders:
            answers, self._rider_answers = answers[: len(calls)], answers[len(calls):]
        return answers

    def _chunk_results(self, chunk: Sequence[Read], call: Call, answer: Response) -> list[ReadResult]:
        checked = self._checked.pop(id(answer), None)
        if not is_error(answer):
            try:
                flags, returns = (checked[1] if checked is not None and checked[0] is answer
                                  else self._unpack(call, answer))
                with gc_paused():  # a thousand results, no cycles: no collection walks everything alive meanwhile
                    return _uint256_results(chunk, flags, returns) or [
                        _decoded(r, ok, raw) for r, ok, raw in zip(chunk, map(bool, flags), returns, strict=True)]
            except _Unusable as exc:  # only from a replayed answer: live ones were checked by the transport
                answer = {"error": {"message": str(exc)}}
        return [_failed(read, answer) for read in chunk]

    def _read_direct(self, blocks: Sequence[int | None], reads: Sequence[Read],
                     results: list[ReadResult | None]) -> None:
        step = 200
        for start in range(0, len(reads), step):
            chunk = list(zip(blocks[start : start + step], reads[start : start + step], strict=True))
            calls = [Call("eth_call", ({"to": r.target, "data": "0x" + r.data.hex()},
                                       self.pinned.tag if block is None else _hex(block))) for block, r in chunk]
            for offset, ((_block, read), call, answer) in enumerate(
                    zip(chunk, calls, self.layer.send(calls), strict=True)):
                problem = None if is_error(answer) else malformed(call, answer["result"])
                if is_error(answer) or problem is not None:
                    results[start + offset] = _failed(read, {"error": {"message": problem}} if problem else answer)
                else:
                    results[start + offset] = _decoded(read, True, bytes.fromhex(answer["result"][2:]))

    # -------------------------------------------------------------- logs

    def scan_logs(
        self,
        addresses: Sequence[str] | None,
        topics: Sequence[str | Sequence[str] | None],
        from_block: int,
        to_block: int,
        progress: ProgressFn | None = None,
    ) -> Iterator[Log]:
        """Stream matching logs in (block, index) order, splitting the range whenever the node refuses it."""
        for window in self.scan_log_columns(addresses, topics, from_block, to_block, progress):
            yield from window.rows()

    def scan_log_columns(
        self,
        addresses: Sequence[str] | None,
        topics: Sequence[str | Sequence[str] | None],
        from_block: int,
        to_block: int,
        progress: ProgressFn | None = None,
    ) -> Iterator[LogColumns]:
        """What `scan_logs` streams, a window at a time, column by column: a consumer that decodes whole columns
        (`EventDecoder.decode_columns`) makes no Python object per log but the values it keeps."""
        scan = _Scan(self, addresses, topics, from_block, to_block, first_span=FIRST_LOG_SPAN_ALONE)
        ahead: Future[list[Response]] | None = None
        while ahead is not None or not scan.done:
            answers = ahead.result() if ahead is not None else self.layer.send(scan.calls())
            windows = scan.take(answers)
            del answers
            # Where the range is dense, the next windows are fetched while these are consumed.
            ahead = (self._pool("scan", 1).submit(self.layer.send, scan.calls())
                     if scan.dense and not scan.done else None)
            while windows:
                yield LogColumns(windows.pop(0))  # a window's items let go once the consumer is done with them
            del windows  # only these windows' answers (and those in flight) are ever held
            if progress is not None:
                progress(scan.start - from_block, to_block - from_block + 1)

    def _pool(self, name: str, workers: int) -> ThreadPoolExecutor:
        if name not in self._pools:
            self._pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=f"{name}-{self.chain}")
        return self._pools[name]

    def round(
        self, reads: Mapping[int | None, Sequence[Read]],
        filters: Sequence[tuple[Sequence[str] | None, Sequence[Any], int, int]],
        codes: Sequence[str] = (),
    ) -> tuple[dict[int | None, list[ReadResult]], list[list[Log] | ChainError], list[bool | None]]:
        """One round of planned work in as few requests as the node allows: the reads (at the pin, key None, and
        at earlier blocks) go in one batch that also carries every scan's first window and every code lookup;
        later windows of all scans go out together. A scan the node refuses ends with its error in its place; the
        others go on. A code lookup answers whether the address holds code at the pin (None: not answered)."""
        # Scans of the same contracts over the same blocks that constrain the same topic positions go out as one
        # filter (each position's topics OR-ed); every log is then handed to each scan it matches.
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, (addresses, topics, start, end) in enumerate(filters):
            shape = tuple(topic is None for topic in topics)
            where = None if addresses is None else tuple(sorted({a.lower() for a in addresses}))
            groups.setdefault((where, start, end, shape), []).append(index)
        merged = [_merged_topics([filters[i][1] for i in members]) for members in groups.values()]
        scans = [_Scan(self, filters[members[0]][0], topics, filters[members[0]][2], filters[members[0]][3])
                 for members, topics in zip(groups.values(), merged, strict=True)]
        first = [scan.call() for scan in scans]
        code_calls = [Call("eth_getCode", (address, self.pinned.tag)) for address in codes]
        self._riders, self._rider_answers = [*first, *code_calls], []
        try:
            results = self.read_at(reads) if any(reads.values()) else {block: [] for block in reads}
            if self._riders:  # nothing went to the node for the reads (none, or all answered already)
                self._rider_answers = self.layer.send(self._riders)
            answers = self._rider_answers
        finally:
            self._riders, self._rider_answers = [], []
        code_answers = answers[len(first):]
        has_code = [None if is_error(answer) else len(answer["result"]) > 2 for answer in code_answers]
        found = self._scan(scans, answers[: len(first)])
        out: list[list[Log] | ChainError] = [[] for _ in filters]
        for members, logs in zip(groups.values(), found, strict=True):
            for index in members:
                out[index] = logs if isinstance(logs, ChainError) or len(members) == 1 else [
                    log for log in logs if _matches(filters[index][1], log)]
        return results, out, has_code

    def _scan(self, scans: Sequence[_Scan], firsts: Sequence[Response]) -> list[list[Log] | ChainError]:
        found: list[list[Log] | ChainError] = [[] for _ in scans]
        active = list(range(len(scans)))
        answers: list[Sequence[Response]] = [[answer] for answer in firsts]
        while active:
            for index, answer in zip(active, answers, strict=True):
                logs = found[index]
                assert isinstance(logs, list)
                try:
                    for window in scans[index].take(answer):
                        logs += LogColumns(window).rows()
                except ChainError as exc:
                    found[index] = exc
            active = [index for index, scan in enumerate(scans)
                      if not scan.done and not isinstance(found[index], ChainError)]
            calls = [scans[index].calls() for index in active]
            flat = self.layer.send([call for group in calls for call in group]) if active else []
            answers, at = [], 0
            for group in calls:
                answers.append(flat[at:at + len(group)])
                at += len(group)
        return found


class _Scan:
    """One log scan's progress: its next windows, and what to do with the node's answers to them.

    Windows are steered to TARGET_LOGS_PER_WINDOW logs at the density just seen. Where the range is dense (the last
    target, not the growth cap, sets the next span), the next DENSE_WINDOWS windows go out at once, each its own
    request, so the node works on them side by side; a sparse range grows one window at a time, in few requests."""

    def __init__(self, client: ChainClient, addresses: Sequence[str] | None, topics: Sequence[Any],
                 from_block: int, to_block: int, first_span: int = FIRST_LOG_SPAN) -> None:
        head = client.pinned.number
        if from_block < 0 or to_block < from_block:
            raise ConfigError(f"{client.chain}: empty block window {from_block}..{to_block}")
        if to_block > head:
            raise ConfigError(f"{client.chain}: window ends at {to_block}, beyond the pinned block {head}")
        self.client, self.addresses, self.topics = client, addresses, list(topics)
        self.start, self.to_block = from_block, to_block
        self.span = min(client.log_span, first_span)
        self.dense = False
        self.windows: list[tuple[int, int]] = []

    @property
    def done(self) -> bool:
        return self.start > self.to_block

    def calls(self) -> list[Call]:
        """The next windows' requests: several side by side in a dense range, else one."""
        self.windows, start = [], self.start
        span = max(1, self.span // DENSE_SPLIT) if self.dense else self.span
        while len(self.windows) < (DENSE_WINDOWS if self.dense else 1) and start <= self.to_block:
            end = min(self.to_block, start + span - 1)
            self.windows.append((start, end))
            start = end + 1
        return [self._call(start, end, apart=len(self.windows) > 1) for start, end in self.windows]

    def call(self) -> Call:
        """The next window's request alone (a first window riding with a round's reads)."""
        self.windows = [(self.start, min(self.to_block, self.start + self.span - 1))]
        return self._call(*self.windows[0])

    def _call(self, start: int, end: int, apart: bool = False) -> Call:
        window: dict[str, Any] = {"fromBlock": _hex(start), "toBlock": _hex(end), "topics": self.topics}
        if self.addresses:
            window["address"] = list(self.addresses)
        return Call("eth_getLogs", (window,), apart=apart)

    def take(self, answers: Sequence[Response]) -> list[Sequence[Any]]:
        """The windows' log items in order, a list per window, and the next window. A refused window is narrowed and
        asked again (its items and those of the windows after it are dropped, to be asked again in order)."""
        items: list[Sequence[Any]] = []
        for (start, end), answer in zip(self.windows, answers, strict=True):
            call = Call("eth_getLogs", ({"fromBlock": _hex(start), "toBlock": _hex(end)},))
            if is_error(answer):
                # Still "timed out" after the transport's retries: providers say that of too wide a window.
                smaller = _next_span(error_text(answer), start, end)
                if smaller is None:
                    raise ChainError(self.client.chain, "eth_getLogs", call.block, error_text(answer))
                self.span, self.dense = smaller, False
                return items
            # Checked well-formed by every layer that answers (transport, cache, evidence): null is no "no logs".
            found: Sequence[Any] = answer["result"]
            items.append(found)
            window_blocks = end - start + 1
            self.start = end + 1
            # At most LOG_SPAN_GROWTH times wider per step (an empty window says little about the blocks after it).
            predicted = window_blocks * TARGET_LOGS_PER_WINDOW // max(1, len(found))
            self.span = max(1, min(self.client.log_span, predicted, window_blocks * LOG_SPAN_GROWTH))
            # Dense: the target, not the growth cap, sets the next span: the windows after this one go side by side
            # (from the first window on: a dense range's second window, alone, would keep the node's threads idle).
            self.dense = predicted < window_blocks * LOG_SPAN_GROWTH
        return items


class _Forward:
    """The cache is chosen once the pin is known; the recorder wraps whatever is current."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client

    def send(self, calls: Sequence[Call]) -> list[Response]:
        return self.client._cached.send(calls)


@functools.cache
def _multicall_runtime() -> str:
    return RUNTIME_HEX.read_text().strip()


def _chars(reads: Sequence[Read]) -> int:
    """The hex characters an aggregate3 of `reads` puts in a request body: per call a head word and a tuple of four
    words (target, allowFailure, offset, length) and its calldata padded to whole words; then the block proof's
    two calls and the JSON around them."""
    return sum(map(len, map(_MULTICALL_HEX, reads))) + 64 * len(reads) + 1_200


def _is_aggregate(call: Call, multicall: str) -> bool:
    target = call.params[0] if call.method == "eth_call" and call.params else None
    return (
        isinstance(target, dict)
        and str(target.get("to", "")).lower() == multicall.lower()
        and str(target.get("data", "")).startswith("0x" + AGGREGATE3_SELECTOR.hex())
    )


def _failed(read: Read, answer: Response) -> ReadResult:
    """A read whose call came back as an error: the contract's revert, or no answer at all."""
    return ReadResult(read, False, error=error_text(answer), unavailable=not is_execution_failure(answer))


def _pin_record(pin: Pin) -> dict[str, Any]:
    return {"number": pin.number, "hash": pin.hash, "parent_hash": pin.parent_hash,
            "timestamp": pin.timestamp, "chain_id": pin.chain_id}


_UINT256 = ("uint256",)
_ANSWER = operator.attrgetter("answer")
_RETURNS = operator.attrgetter("returns")
_MULTICALL_HEX = operator.attrgetter("multicall_hex")
_RESULT_READ = operator.itemgetter(0)  # ReadResult.read
_UNAVAILABLE = operator.itemgetter(4)  # ReadResult.unavailable


def _uint256_results(chunk: Sequence[Read], flags: bytes, returns: Sequence[bytes]) -> list[ReadResult] | None:
    """The results of a chunk whose every read returns one uint256 and succeeded with exactly one word (a thousand
    balances), made in C with no Python call per read: what `_decoded` makes of each. None for any other chunk."""
    if len(chunk) != len(returns) or flags != b"\1" * len(flags) or set(map(len, returns)) - {32} or not all(
            map(_UINT256.__eq__, map(_RETURNS, chunk))):
        return None
    values = zip(map(int.from_bytes, returns))  # one-tuples; big-endian is int.from_bytes' default
    fields = zip(chunk, itertools.repeat(True), values, itertools.repeat(""), itertools.repeat(False))
    return list(map(tuple.__new__, itertools.repeat(ReadResult), fields))


def _decoded(read: Read, success: bool, raw: bytes) -> ReadResult:
    if success and read.returns == _UINT256 and len(raw) >= 32:  # most reads: what decode_values does, inline
        return ReadResult(read, True, (int.from_bytes(raw[:32], "big"),))
    if not success:
        return ReadResult(read, False, error="reverted" + (f" (0x{raw[:68].hex()})" if raw else ""))
    if not raw and read.returns:
        # A call to an address without code succeeds with nothing: there is no contract there at this block.
        return ReadResult(read, False, error=NO_CONTRACT)
    try:
        return ReadResult(read, True, decode_values(read.returns, raw))
    except Exception as exc:  # eth-abi raises several unrelated types for short or malformed data
        return ReadResult(read, False, error=f"undecodable return ({type(exc).__name__}: {len(raw)} bytes)")


# How nodes and providers say they keep no state at a block (geth/erigon/reth, hosted RPCs' archive notices).
_NO_OLD_STATE = re.compile(r"missing trie node|pruned|archive|historical state|state (?:is )?not available|"
                           r"state histor", re.IGNORECASE)
_SUGGESTED_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")
_MAX_RANGE = re.compile(r"(?:range|limit(?:ed)?|maximum|max)\D{0,30}?(\d{2,})", re.IGNORECASE)
_TOO_MUCH = re.compile(
    r"too (?:many|large|wide|big)|exceed|limit|response size|range|timeout|timed out", re.IGNORECASE
)


def _next_span(message: str, start: int, end: int) -> int | None:
    """The block span to try next after a refused eth_getLogs, or None if the error is not about size."""
    current = end - start + 1
    suggested = _SUGGESTED_RANGE.search(message)
    if suggested:
        low, high = int(suggested.group(1), 16), int(suggested.group(2), 16)
        if low == start and start <= high < end:
            return high - low + 1
    limit = _MAX_RANGE.search(message)
    if limit and 0 < int(limit.group(1)) < current:
        return int(limit.group(1))
    if _TOO_MUCH.search(message) and current > 1:
        return current // 2
    return None


def _topic_set(topic: Any) -> set[str]:
    return {topic.lower()} if isinstance(topic, str) else {t.lower() for t in topic}


def _merged_topics(filters: Sequence[Sequence[Any]]) -> list[Any]:
    """The topics of filters of one shape, OR-ed position by position (None stays a wildcard)."""
    if len(filters) == 1:
        return list(filters[0])
    return [None if topics[0] is None else sorted(set().union(*(_topic_set(t) for t in topics)))
            for topics in zip(*filters, strict=True)]


def _matches(topics: Sequence[Any], log: Log) -> bool:
    """Whether a log matches a filter's topics, as the node would decide it (addresses are shared by the group)."""
    for position, wanted in enumerate(topics):
        if wanted is None:
            continue
        if position >= len(log.topics) or log.topics[position].lower() not in _topic_set(wanted):
            return False
    return True


_AFTER_0X = operator.itemgetter(slice(2, None))
_WIRE_NAMES = {"blockNumber": "block_number", "logIndex": "log_index", "transactionHash": "transaction_hash",
               "blockHash": "block_hash"}


_Chunk = tuple[int, int | None, Sequence[Read]]  # where a chunk's results go, the block it is read at, its reads


class LogColumns:
    """One window's logs (already checked well-formed: dicts, or WireLogs the transport decoded), in (block, index)
    order, column by column: each column is built when first asked for, a field at a time in C (no Python call per
    log), so a consumer pays only for the fields it reads. `rows()` gives them as Logs."""

    def __init__(self, items: Sequence[Any] | CheckedColumns) -> None:
        self._items = items
        self._typed = type(items) is CheckedLogs

    def __len__(self) -> int:
        return len(self._items)

    def _column(self, name: str) -> Iterable[Any]:
        if isinstance(self._items, CheckedColumns):  # made by the compiled reader, a column at a time
            return self._items.column(name)
        if self._typed:
            return map(operator.attrgetter(_WIRE_NAMES.get(name, name)), self._items)
        return map(operator.itemgetter(name), self._items)

    @functools.cached_property
    def address(self) -> list[str]:
        """The emitting contracts, as the node spelled them."""
        return list(self._column("address"))

    @functools.cached_property
    def topics(self) -> list[tuple[str, ...]]:
        if isinstance(self._items, CheckedColumns):
            return self._items.column("topics")  # tuples already, as for WireLogs
        return list(self._column("topics")) if self._typed else list(map(tuple, self._column("topics")))

    @functools.cached_property
    def data(self) -> list[str]:
        """Each log's data as the node sent it: "0x" and hex digits."""
        return list(self._column("data"))

    @functools.cached_property
    def block_number(self) -> list[int]:
        return list(map(int, self._column("blockNumber"), itertools.repeat(16)))

    @functools.cached_property
    def log_index(self) -> list[int]:
        return list(map(int, self._column("logIndex"), itertools.repeat(16)))

    @functools.cached_property
    def tx_hash(self) -> list[str]:
        return list(self._column("transactionHash"))

    @functools.cached_property
    def block_hash(self) -> list[str]:
        return list(self._column("blockHash"))

    def decode(self, decoder: EventDecoder) -> tuple[dict[str, list[Any]], list[int]]:
        """`decoder.decode_columns` of this window's topics and data: the same values, read straight from the reply
        body where the compiled reader made the window and every log is the decoder's event (a scan for it)."""
        if isinstance(self._items, CheckedColumns):
            decoded = decoder.decode_window(self._items.window)
            if decoded is not None:
                return decoded
        return decoder.decode_columns(self.topics, self.data)

    def rows(self) -> list[Log]:
        """The window as Logs. The garbage collector is paused meanwhile: the 10,000 Logs of a window hold no
        cycles, and each collection they would set off walks every object still alive."""
        with gc_paused():
            columns = (self._column("address"), self.topics, map(bytes.fromhex, map(_AFTER_0X, self._column("data"))),
                       self.block_number, self.log_index, self._column("transactionHash"), self._column("blockHash"))
            return list(map(tuple.__new__, itertools.repeat(Log), zip(*columns, strict=True)))  # Log's fields


# ------------------------------------------------------------------ connecting an audit's chains


@dataclass
class ConnectOptions:
    rpc: Mapping[str, str] = field(default_factory=dict)
    blocks: Mapping[str, str | int] = field(default_factory=dict)
    at: dt.datetime | None = None
    use_cache: bool = True
    record: Bundle | None = None
    replay: Bundle | None = None
    retry: RetryPolicy | None = None


def rpc_url(chain: str, given: Mapping[str, str]) -> str:
    """--rpc CHAIN=URL, else AUDITOR_RPC_<CHAIN>, else ETH_RPC_URL for ethereum (as foundry does)."""
    url = given.get(chain) or os.environ.get(f"AUDITOR_RPC_{chain.upper().replace('-', '_')}")
    if not url and chain == "ethereum":
        url = os.environ.get("ETH_RPC_URL")
    if not url:
        raise ConfigError(
            f"no RPC URL for chain {chain!r}: pass --rpc {chain}=URL or set AUDITOR_RPC_{chain.upper()}"
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the RPC URL for chain {chain!r} ({url!r}) is not an http:// or https:// URL")
    return url


def connect(
    chains: Mapping[str, Any], options: ConnectOptions, cache: SqliteCache | None = None
) -> dict[str, ChainClient]:
    """A pinned, chain-id-checked client per chain. `chains` maps name -> registry Chain."""
    clients: dict[str, ChainClient] = {}
    if options.use_cache and options.replay is None and cache is None:
        cache = SqliteCache()
    for name, chain in chains.items():
        stats = Stats()
        wire: Layer
        block = options.blocks.get(name)
        recorded = options.replay.pins.get(name) if options.replay is not None else None
        if options.replay is not None:
            wire = ReplayLayer(options.replay, name)
            if block is None and options.at is None and recorded is not None:
                block = int(recorded["number"])  # replay the recorded audit's pin: no --block needed
        else:
            url = rpc_url(name, options.rpc)
            wire = HttpTransport(name, url, stats, options.retry or RetryPolicy.from_env(), session_for(name, url))
        client = ChainClient(
            name,
            chain.chain_id,
            wire,
            stats,
            cache=cache if options.replay is None and options.use_cache else None,
            record=options.record,
            multicall=chain.multicall3 or MULTICALL3_ADDRESS,
            log_span=chain.log_span or DEFAULT_LOG_SPAN,
            # A bundle recorded before block proofs holds aggregate3 calls without them: replay those as is.
            prove_block=options.replay is None or recorded is not None,
        )
        pin = client.open(block, options.at)
        if recorded is not None and pin.number == int(recorded["number"]) and pin.hash != recorded["hash"]:
            raise ConfigError(f"{name}: the bundle's pin {pin.number} has hash {recorded['hash']}, "
                              f"its recorded header says {pin.hash}")
        clients[name] = client
    return clients
