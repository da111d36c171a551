"""JSON-RPC transport and its layers: HTTP with retries, counting, caching, evidence recording and replay."""

from __future__ import annotations

import contextlib
import email.utils
import gc
import hashlib
import itertools
import json
import math
import operator
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

import msgspec
import requests
import urllib3

from auditor.chain import native

# `apart` calls (a dense scan's log windows) in flight at once, per chain. 100,000 logs on anvil, end to end with
# the compiled reader (median of 15 interleaved runs, /json.loads of the same bodies): 4 1.22x, 6 1.13x, 8 1.15x.
APART_AT_ONCE = 6
# JSON-RPC error codes that providers use for "slow down" rather than "your request is wrong".
RATE_LIMIT_CODES = {-32005, -32029, 429}
# Our own error code for an item the node kept answering with something unusable (malformed, wrong
# block): the reader reports such reads as unavailable, never as a contract's answer.
UNUSABLE_CODE = -32099
# Error objects that say "the node failed this time", not "the call is wrong": retried, then unavailable.
_TRANSIENT = re.compile(
    r"header not found|block not found|unknown block|missing trie node|timeout|timed out|temporar|"
    r"unavailable|internal error|try again|busy|overload|capacity|upstream|gateway",
    re.IGNORECASE,
)
# Error objects that are the contract's own answer (the EVM ran and stopped): never retried.
_EXECUTION = re.compile(r"revert|evm error|out of gas|invalid opcode|invalid jump|stack (?:under|over)flow",
                        re.IGNORECASE)
# Methods whose answer at an explicit block can never change (unless that block is reorged away,
# which the pin check catches): safe to cache on disk and to replay from evidence.
IMMUTABLE_AT_BLOCK = {"eth_call", "eth_getLogs", "eth_getCode", "eth_getBalance", "eth_getStorageAt"}
BLOCK_TAGS = {"latest", "pending", "earliest", "safe", "finalized"}


class ChainError(Exception):
    """A read that could not be done; names the chain, the method and the block. The audit stops."""

    exit_code = 1

    def __init__(self, chain: str, method: str, block: str, reason: str) -> None:
        self.chain, self.method, self.block, self.reason = chain, method, block, reason
        where = f" at block {block}" if block != "-" else ""
        super().__init__(f"{chain}: {method}{where} failed: {reason}")


class ConfigError(Exception):
    """Wrong set-up by the user (no RPC URL, wrong chain id, bad pin): exit code 2."""

    exit_code = 2


class PayloadTooLarge(Exception):
    """The node refused the request body as too large: the caller splits it."""


@dataclass(frozen=True)
class Call:
    """One JSON-RPC request: method and params. Its `key` identifies it in the cache and in evidence."""

    method: str
    params: tuple[Any, ...] = ()
    # Heavy calls (log windows) that the node answers faster side by side than one after another in a batch: the
    # transport sends each as its own HTTP request, all at once. Not part of the call's identity.
    apart: bool = field(default=False, compare=False)

    @property
    def key(self) -> str:
        return canonical_json([self.method, list(self.params)])

    @property
    def block(self) -> str:
        """The block a request is about, for error messages."""
        if self.method == "eth_getLogs" and self.params and isinstance(self.params[0], dict):
            window = self.params[0]
            return f"{_block_text(window.get('fromBlock'))}..{_block_text(window.get('toBlock'))}"
        for param in reversed(self.params):
            if isinstance(param, str) and (param in BLOCK_TAGS or (param.startswith("0x") and len(param) < 20)):
                return _block_text(param)
        return "-"

    def immutable(self) -> bool:
        if self.method not in IMMUTABLE_AT_BLOCK:
            return False
        if self.method == "eth_getLogs":
            window = self.params[0] if self.params else {}
            return all(
                isinstance(window.get(k), str) and window[k] not in BLOCK_TAGS for k in ("fromBlock", "toBlock")
            )
        block_param = self.params[1] if len(self.params) > 1 else None
        if self.method == "eth_getStorageAt":
            block_param = self.params[2] if len(self.params) > 2 else None
        return isinstance(block_param, str) and block_param not in BLOCK_TAGS


def _block_text(value: Any) -> str:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return str(int(value, 16))
        except ValueError:
            return value
    return str(value)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


Response = dict[str, Any]
"""A JSON-RPC answer reduced to {"result": ...} or {"error": {...}}."""


def is_error(response: Response) -> bool:
    return "error" in response


def error_text(response: Response) -> str:
    error = response.get("error") or {}
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def is_execution_failure(response: Response) -> bool:
    """The EVM ran the call and it failed (revert, invalid opcode, out of gas): an answer, not an outage."""
    error = response.get("error")
    return isinstance(error, dict) and (error.get("code") == 3 or bool(_EXECUTION.search(error_text(response))))


def is_transient(response: Response) -> bool:
    """An error object a retry may fix (header not found, internal error, timeout); also our give-up code."""
    if not is_error(response) or is_execution_failure(response):
        return False
    error = response["error"]
    code = error.get("code") if isinstance(error, dict) else None
    return code in (-32603, UNUSABLE_CODE) or bool(_TRANSIENT.search(error_text(response)))


def _is_quantity(value: Any) -> bool:
    return type(value) is str and len(value) > 2 and _is_0x_hex(value)


def _is_data(value: Any) -> bool:
    return type(value) is str and not len(value) % 2 and _is_0x_hex(value)


def _is_0x_hex(value: str) -> bool:
    """"0x" and hex digits only. As bytes, whole (no slice copied), cleaned of hex digits, only the "x" is left: a
    bytes translate runs ~4x faster than a str one over an aggregate3 answer of half a megabyte."""
    return value[:2] == "0x" and value.isascii() and value.encode("ascii").translate(None, _HEX_DIGITS) == b"x"


_HEADER_FIELDS = ("number", "hash", "parentHash", "timestamp")


def malformed(call: Call, result: Any) -> str | None:
    """Why a result cannot be the answer to `call` (wrong type or shape), or None if it can be.

    Only shapes the JSON-RPC spec fixes are checked here; what a contract returned is the reader's business.
    """
    method = call.method
    if method == "eth_chainId":
        ok = _is_quantity(result)
    elif method in ("eth_call", "eth_getCode"):
        ok = _is_data(result)
    elif method == "eth_getBlockByNumber":
        if result is None:
            return None  # the node's answer for a block it does not have: the caller says so
        if not isinstance(result, dict) or not all(_is_quantity(result.get(k)) for k in _HEADER_FIELDS):
            return f"malformed block header {str(result)[:80]}"
        asked = call.params[0] if call.params else None
        if _is_quantity(asked) and int(result["number"], 16) != int(str(asked), 16):
            return f"asked for block {int(str(asked), 16)}, the node answered with block {int(result['number'], 16)}"
        return None
    elif method == "eth_getLogs":
        if type(result) in _CHECKED and result.call is call:
            return None  # checked by the transport as it decoded it, against this very call
        return _malformed_logs(call, result)  # any other WireLogs fail it (not objects)
    else:
        return None
    return None if ok else f"malformed result {str(result)[:80]!r} for {method}"


# A log's string fields, and the lengths each may have (None: any even length): addresses 0x + 40 hex digits,
# hashes and topics 0x + 64, quantities at least one digit.
_LOG_COLUMNS = (("address", {42}), ("transactionHash", {66}), ("blockHash", {66}), ("data", None),
                ("blockNumber", None), ("logIndex", None))
_LOG_TOPICS = operator.itemgetter("topics")


# Lengths msgspec checks as it decodes a WireLog (in C): 0x and 40 hex digits, 0x and 64, a quantity's at least one.
_Address = Annotated[str, msgspec.Meta(min_length=42, max_length=42)]
_Word = Annotated[str, msgspec.Meta(min_length=66, max_length=66)]
_Quantity = Annotated[str, msgspec.Meta(min_length=3)]


class WireLog(msgspec.Struct, gc=False, rename="camel"):
    """A log item of an eth_getLogs answer as msgspec decodes it, in C, from the reply body: every field present, a
    string (topics a list of strings, kept as a tuple) of its length, the node's other fields skipped. What msgspec
    cannot check (hex digits, data of whole bytes, the window) `_malformed_wire_logs` checks. The transport decodes a
    log window's reply this way when nothing keeps the reply (`HttpTransport.typed_logs`): a reply that does not fit
    (an error, a missing field, a number where a string belongs, a short hash) is decoded the plain way and judged
    by `_malformed_logs` as before. Only that decoder makes WireLogs the checks trust (the constructor checks no
    length): any other list of them fails the plain check."""

    address: _Address
    topics: tuple[_Word, ...]
    data: str
    block_number: _Quantity
    log_index: _Quantity
    transaction_hash: _Word
    block_hash: _Word


class _LogsReply(msgspec.Struct, gc=False):
    result: list[WireLog]
    id: Any = None
    error: Any = msgspec.UNSET


class CheckedLogs(list[WireLog]):
    """A log window's items as the transport decoded them (WireLogs) and found well-formed for `call`."""

    __slots__ = ("call",)

    def __init__(self, call: Call, items: list[WireLog]) -> None:
        super().__init__(items)
        self.call = call


class CheckedColumns:
    """A log window as the compiled reader (`_logwire.parse_logs`) read it from the reply body, every value checked
    as `_well_formed_wire_logs` checks a WireLog's, found inside `call`'s window: `window` makes each column when
    first asked for (`column`, in WIRE_FIELDS order) and reads static words of every log straight from the body."""

    __slots__ = ("call", "window")

    def __init__(self, call: Call, window: Any) -> None:
        self.call, self.window = call, window

    def __len__(self) -> int:
        return len(self.window)

    def column(self, name: str) -> list[Any]:
        with gc_paused():  # made here, when first asked for: 10,000 topic tuples, no cycles
            values: list[Any] = self.window.column(WIRE_FIELDS.index(name))
        return values

    def items(self) -> list[dict[str, Any]]:
        """The logs as JSON objects of the kept fields (what a WireLog's `to_builtins` gives)."""
        columns = [self.column(name) for name in WIRE_FIELDS]
        columns[1] = list(map(list, columns[1]))  # topics: JSON arrays
        return [dict(zip(WIRE_FIELDS, values, strict=True)) for values in zip(*columns, strict=True)]


# The fields of a log every reader keeps, in the order of WireLog's and of the compiled reader's columns.
WIRE_FIELDS = ("address", "topics", "data", "blockNumber", "logIndex", "transactionHash", "blockHash")
_CHECKED = (CheckedLogs, CheckedColumns)


def _window_bounds(call: Call) -> tuple[int | None, int | None]:
    """The first and last block of the window `call` asks for (None: not bounded by a block number)."""
    window = call.params[0] if call.params and isinstance(call.params[0], dict) else {}
    low, high = (int(window[k], 16) if _is_quantity(window.get(k)) else None for k in ("fromBlock", "toBlock"))
    return low, high


def _decode_logs_reply(call: Call, content: bytes) -> Any:
    """A log window's reply read into checked columns by the compiled reader, else decoded into WireLogs and
    checked, or, when it is no well-formed answer, decoded the plain way (into dicts) for the usual checks to judge
    and name what is wrong, exactly as for any reply. The compiled reader accepts only what the Python checks
    accept (tests/test_logwire.py); whatever it does not read plainly it leaves to them."""
    compiled = native.LOGWIRE
    if compiled is not None:
        low, high = _window_bounds(call)
        parsed = compiled.parse_logs(content, -1 if low is None else low, -1 if high is None else high)
        if parsed is not None:
            return {"id": parsed[0], "result": CheckedColumns(call, parsed[1])}
    try:
        with gc_paused():  # 10,000 topic tuples, no cycles: no collection walking everything alive for them
            reply = _decode_logs(content)
    except msgspec.ValidationError:  # not the shape of a log window's answer (invalid JSON raises DecodeError)
        return _decode_json(content)
    if reply.error is not msgspec.UNSET or not _well_formed_wire_logs(call, reply.result):
        return _decode_json(content)
    return {"id": reply.id, "result": CheckedLogs(call, reply.result)}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block that makes many objects without cycles (a log window's), back
    on after it unless it was off already: each collection those objects would set off walks every object alive.
    Process-wide: what another thread allocates meanwhile is collected once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def plain_answer(answer: Response) -> Response:
    """An answer as JSON values, for what keeps answers (the cache): a decoded log window's items as objects."""
    if type(answer.get("result")) is CheckedLogs:
        return {"result": msgspec.to_builtins(answer["result"])}
    if type(answer.get("result")) is CheckedColumns:
        return {"result": answer["result"].items()}
    return answer


_FIXED_WIRE_COLUMNS = ((operator.attrgetter("address"), 42), (operator.attrgetter("transaction_hash"), 66),
                       (operator.attrgetter("block_hash"), 66))
_WIRE_DATA = operator.attrgetter("data")
_WIRE_QUANTITIES = (operator.attrgetter("block_number"), operator.attrgetter("log_index"))
_WIRE_TOPICS = operator.attrgetter("topics")


def _well_formed_wire_logs(call: Call, result: list[WireLog]) -> bool:
    """What `_malformed_logs` checks, for WireLogs fresh from the decoder (present, strings, of their lengths): each
    column's distinct values open with "0x" (seen at once in a fixed-length column: its values joined, every 42nd or
    66th character from the first is "0", from the second "x"), data is of whole bytes, and all values joined and
    cleaned of hex digits leave only those "x"s; every block inside the window."""
    if not result:
        return True
    fixed = [(set(map(column, result)), size) for column, size in _FIXED_WIRE_COLUMNS]
    fixed.append((set(itertools.chain.from_iterable(map(_WIRE_TOPICS, result))), 66))
    data = set(map(_WIRE_DATA, result))
    numbers, indexes = (set(map(column, result)) for column in _WIRE_QUANTITIES)
    free = [*data, *numbers, *indexes]
    joined = ["".join(unique) for unique, _size in fixed]
    if any(text[0::size] != "0" * len(unique) or text[1::size] != "x" * len(unique)
           for text, (unique, size) in zip(joined, fixed, strict=True)):
        return False
    if "".join(map(_FIRST_TWO, free)) != "0x" * len(free) or any(map((1).__and__, map(len, data))):
        return False
    if not _only_hex_after_0x([*joined, *free], sum(len(unique) for unique, _size in fixed) + len(free)):
        return False
    return _outside_window(call, numbers) is None


def _outside_window(call: Call, numbers: set[str]) -> str | None:
    """Why logs of these blocks (well-formed quantities) are not all inside the window `call` asked for, or None."""
    low, high = _window_bounds(call)
    blocks = list(map(int, numbers, itertools.repeat(16)))
    lowest, highest = min(blocks), max(blocks)
    if (low is not None and lowest < low) or (high is not None and highest > high):
        return f"log of block {lowest if low is not None and lowest < low else highest} outside the asked window"
    return None


def _malformed_logs(call: Call, result: Any) -> str | None:
    """Every log of the window well-formed and inside it, checked a column at a time in C (a 100,000-log scan
    checks ~1M fields, most of them repeats: one contract, one block hash for a block's logs, one event topic):
    each column's distinct values are checked for type and length; then every value must open with "0x" (their
    first two characters, joined, are "0x" once per value) and, all of them joined and cleaned of hex digits in
    one call, leave nothing but those "x"s (0x and hex digits only)."""
    if not isinstance(result, list):
        return f"malformed eth_getLogs result {str(result)[:80]!r}"
    if not result:
        return None
    try:
        columns = [list(map(operator.itemgetter(name), result)) for name, _lengths in _LOG_COLUMNS]
        topic_lists = list(map(_LOG_TOPICS, result))
        if set(map(type, topic_lists)) != {list}:
            raise TypeError
        distinct = [set(column) for column in columns] + [set(itertools.chain.from_iterable(topic_lists))]
    except (TypeError, KeyError):  # an item not an object, a field missing, a list where a string belongs
        return f"malformed log {_first_bad_log(result)}"
    values = list(itertools.chain(*distinct))
    if not set(map(type, values)) <= {str} or any(
        not set(map(len, unique)) <= lengths
        for unique, lengths in zip(distinct, [lengths for _name, lengths in _LOG_COLUMNS] + [{66}], strict=True)
        if lengths is not None
    ) or any(map((1).__and__, map(len, distinct[3]))) or min(map(len, distinct[4] | distinct[5])) < 3:
        return f"malformed log {_first_bad_log(result)}"
    if "".join(map(_FIRST_TWO, values)) != "0x" * len(values) or not _only_hex_after_0x(values, len(values)):
        bad = next((f for f in values if not _is_data(f) and not _is_quantity(f)), "?")
        return f"malformed log field {bad[:80]!r}"
    return _outside_window(call, distinct[4])


_FIRST_TWO = operator.itemgetter(slice(2))
_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _only_hex_after_0x(texts: list[str], count: int) -> bool:
    """Given `count` values, each opening with "0x", in `texts` (alone or joined): whether the rest of each is hex
    digits. Joined, as bytes (a bytes translate is ~3x faster than a str one), cleaned of hex digits, they must
    leave exactly one "x" per value: those of their "0x"."""
    try:
        joined = "".join(texts).encode("ascii")
    except UnicodeEncodeError:
        return False
    return joined.translate(None, _HEX_DIGITS) == b"x" * count


def _first_bad_log(result: list[Any]) -> str:
    """The first log that fails the field-by-field check, for the message (the bulk check says only whether)."""
    for item in result:
        topics = item.get("topics") if isinstance(item, dict) else None
        if not (
            isinstance(item, dict) and _is_quantity(item.get("blockNumber")) and _is_quantity(item.get("logIndex"))
            and len(str(item.get("address"))) == 42 and all(_is_data(item.get(k)) for k in (
                "address", "data", "transactionHash", "blockHash"))
            and type(topics) is list and all(_is_data(t) and len(t) == 66 for t in topics)
        ):
            return str(item)[:80]
    return str(result[0])[:80]


class Layer(Protocol):
    def send(self, calls: Sequence[Call]) -> list[Response]:
        """Answer every call, in order; raise ChainError when a call could not be answered at all."""


@dataclass
class Stats:
    """What went over the wire for one chain: HTTP requests (attempts included) and calls per method."""

    http_requests: int = 0
    retries: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    cache_hits: int = 0
    reads: int = 0
    rounds: int = 0  # rounds of planned reads (auditor.chain.plan) this chain took part in

    def as_dict(self) -> dict[str, Any]:
        return {
            "http_requests": self.http_requests,
            "retries": self.retries,
            "calls": dict(sorted(self.calls.items())),
            "cache_hits": self.cache_hits,
            "reads": self.reads,
            "rounds": self.rounds,
        }


@dataclass
class RetryPolicy:
    attempts: int = 6
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    max_retry_after_s: float = 60.0
    timeout_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """AUDITOR_RPC_RETRIES and AUDITOR_RPC_TIMEOUT tune the defaults for slow or strict providers."""
        policy = cls()
        if os.environ.get("AUDITOR_RPC_RETRIES", "").isdigit():
            policy.attempts = max(1, int(os.environ["AUDITOR_RPC_RETRIES"]))
        if os.environ.get("AUDITOR_RPC_TIMEOUT", "").replace(".", "", 1).isdigit():
            policy.timeout_s = float(os.environ["AUDITOR_RPC_TIMEOUT"])
        return policy

    def delay(self, attempt: int) -> float:
        # Full jitter: spreads retries of many clients instead of hitting the provider in waves.
        return float(random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt)))


class _Retryable(Exception):
    def __init__(self, reason: str, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.wait_s = wait_s


def _retry_after(header: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP-date); None (use backoff) when unusable."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # "soon" and other inventions
        if parsed.tzinfo is None:
            return None
        seconds = max(0.0, parsed.timestamp() - time.time())
    # A negative or NaN wait is garbage; infinity is capped by max_retry_after_s like any huge value.
    return seconds if seconds >= 0 and not math.isnan(seconds) else None


class HttpTransport:
    """Send calls to a node as one JSON-RPC request or batch, retrying what a retry can fix."""

    def __init__(
        self,
        chain: str,
        url: str,
        stats: Stats | None = None,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.chain = chain
        self.url = url
        self.stats = stats or Stats()
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.batches_supported = True
        # Log windows decoded straight into WireLogs (CheckedLogs): ~2x faster than into dicts, but only the fields
        # a Log keeps survive. The chain client turns it off when answers are recorded as evidence, kept whole.
        self.typed_logs = True
        self._lock = threading.Lock()  # counts, when `apart` calls go out side by side
        self._pool: ThreadPoolExecutor | None = None
        # Set by the chain client once it knows its pin: checks answers against it (block proofs).
        # A str means "unusable, retry"; a ChainError is raised if the node keeps answering that way.
        self.check: Callable[[Call, Response], str | ChainError | None] | None = None
        # Also set by the chain client: an error item that is final although it reads as transient (old state a
        # node has pruned will not come back on a retry), so it is not retried.
        self.final: Callable[[Call, Response], bool] | None = None

    def send(self, calls: Sequence[Call]) -> list[Response]:
        """Answer every call. A whole request that keeps failing raises ChainError; items the node keeps
        answering with a transient error or an unusable result come back as error items."""
        if not calls:
            return []
        answers = self._send_batch(calls)
        problems = self._problems(calls, answers, range(len(calls)))
        for attempt in range(1, self.policy.attempts):
            if not problems:
                break
            self.stats.retries += 1
            self.policy.sleep(self.policy.delay(attempt - 1))
            again = self._send_batch([calls[i] for i in problems])
            for index, answer in zip(problems, again, strict=True):
                answers[index] = answer
            problems = self._problems(calls, answers, list(problems))
        for index, problem in problems.items():
            if isinstance(problem, ChainError):
                raise problem
            if not is_error(answers[index]):
                answers[index] = {"error": {"code": UNUSABLE_CODE, "message": problem}}
        return answers

    def _problems(
        self, calls: Sequence[Call], answers: Sequence[Response], indexes: Sequence[int]
    ) -> dict[int, str | ChainError]:
        out: dict[int, str | ChainError] = {}
        for index in indexes:
            call, answer = calls[index], answers[index]
            if is_error(answer):
                retry = is_transient(answer) and not (self.final is not None and self.final(call, answer))
                problem: str | ChainError | None = error_text(answer) if retry else None
            else:
                problem = malformed(call, answer["result"])
                if problem is None and self.check is not None:
                    problem = self.check(call, answer)
            if problem is not None:
                out[index] = problem
        return out

    def _send_batch(self, calls: Sequence[Call]) -> list[Response]:
        apart = [index for index, call in enumerate(calls) if call.apart]
        if len(apart) > 1:
            return self._send_side_by_side(calls, apart)
        if len(calls) > 1 and not self.batches_supported:
            return [self._send_with_retries([call])[0] for call in calls]
        return self._send_with_retries(calls)

    def _send_side_by_side(self, calls: Sequence[Call], apart: Sequence[int]) -> list[Response]:
        """Each `apart` call in its own request and the others in one batch, all at once (at most APART_AT_ONCE
        in flight): a node serves separate requests on several threads but a batch's items one after another."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(APART_AT_ONCE, thread_name_prefix=f"rpc-{self.chain}")
        together = [index for index, call in enumerate(calls) if not call.apart]
        groups = [[index] for index in apart] + ([together] if together else [])
        futures = [self._pool.submit(self._send_batch, [calls[i] for i in group]) for group in groups]
        out: list[Response | None] = [None] * len(calls)
        for group, future in zip(groups, futures, strict=True):
            for index, answer in zip(group, future.result(), strict=True):
                out[index] = answer
        return [answer for answer in out if answer is not None]

    def _send_with_retries(self, calls: Sequence[Call]) -> list[Response]:
        last = "no attempt made"
        for attempt in range(self.policy.attempts):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
            try:
                return self._send_once(calls)
            except _Retryable as exc:
                last = str(exc)
                if attempt + 1 < self.policy.attempts:
                    wait = exc.wait_s if exc.wait_s is not None else self.policy.delay(attempt)
                    self.policy.sleep(min(wait, self.policy.max_retry_after_s))
            except _BatchRefused:
                self.batches_supported = False
                return [self._send_with_retries([call])[0] for call in calls]
        first = calls[0]
        method = first.method if len(calls) == 1 else f"{first.method} (+{len(calls) - 1} more in a batch)"
        raise ChainError(
            self.chain, method, first.block, f"{last} (gave up after {self.policy.attempts} attempts to {self.url})"
        )

    def _send_once(self, calls: Sequence[Call]) -> list[Response]:
        payload: Any = [
            {"jsonrpc": "2.0", "id": index, "method": call.method, "params": list(call.params)}
            for index, call in enumerate(calls)
        ]
        single = len(calls) == 1
        body = _encode_json(payload[0] if single else payload)  # what goes on the wire: no key order needed
        with self._lock:
            self.stats.http_requests += 1
            for call in calls:
                self.stats.calls[call.method] += 1
        try:
            # The body is read in one call (stream, then raw.read): a 60 MiB log window otherwise arrives in 10 KiB
            # pieces, each a trip through the interpreter; the connection goes back to the pool once it is read.
            reply = self.session.post(
                self.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=(min(10.0, self.policy.timeout_s), self.policy.timeout_s),
                stream=True,
            )
            try:
                content = reply.raw.read(decode_content=True)
            finally:
                reply.close()
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"connection failed: {type(exc).__name__}") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise _Retryable(f"HTTP error: {type(exc).__name__}: {exc}") from None
        text = content[:200].decode("utf-8", "replace")
        if reply.status_code == 413:
            raise PayloadTooLarge(f"{len(body)} bytes refused (HTTP 413)")
        if reply.status_code == 429:
            raise _Retryable("rate limited (HTTP 429)", _retry_after(reply.headers.get("Retry-After")))
        if reply.status_code >= 500:
            raise _Retryable(f"HTTP {reply.status_code}", _retry_after(reply.headers.get("Retry-After")))
        if reply.status_code >= 400:
            if b"too large" in content.lower() or b"body" in content.lower():
                raise PayloadTooLarge(f"HTTP {reply.status_code}: {text}")
            raise _Retryable(f"HTTP {reply.status_code}: {text}")
        try:
            if single and self.typed_logs and calls[0].method == "eth_getLogs":
                decoded = _decode_logs_reply(calls[0], content)
            else:
                decoded = _decode_json(content)
        except ValueError:
            raise _Retryable("reply is not valid JSON (truncated?)") from None
        return self._match(calls, decoded, single)

    def _match(self, calls: Sequence[Call], decoded: Any, single: bool) -> list[Response]:
        if single:
            decoded = [decoded] if isinstance(decoded, dict) else decoded
        elif isinstance(decoded, dict):
            # One error object for a whole batch: the provider does not take batches.
            if _is_rate_limit(decoded):
                raise _Retryable(f"rate limited: {error_text(decoded)}")
            raise _BatchRefused
        if not isinstance(decoded, list):
            raise _Retryable("reply is not a JSON-RPC response")
        by_id: dict[int, Response] = {}
        for item in decoded:
            if isinstance(item, dict) and isinstance(item.get("id"), int):
                by_id[item["id"]] = item
        if set(by_id) != set(range(len(calls))):
            raise _Retryable("reply ids do not match the request ids")
        out: list[Response] = []
        for index in range(len(calls)):
            item = by_id[index]
            if "error" in item:
                if _is_rate_limit(item):
                    raise _Retryable(f"rate limited: {error_text(item)}")
                out.append({"error": item["error"]})
            elif "result" in item:
                out.append({"result": item["result"]})
            else:
                raise _Retryable("reply has neither result nor error")
        return out


class _BatchRefused(Exception):
    pass


# msgspec parses JSON-RPC replies (a 60 MiB log scan's among them) ~1.3x faster than the stdlib, into the same
# Python values (integers of any size included); a malformed reply raises msgspec.DecodeError, a ValueError.
_decode_json = msgspec.json.Decoder().decode
_encode_json = msgspec.json.Encoder().encode
_decode_logs = msgspec.json.Decoder(_LogsReply).decode


def _is_rate_limit(item: Response) -> bool:
    error = item.get("error")
    if not isinstance(error, dict):
        return False
    message = str(error.get("message", "")).lower()
    return error.get("code") in RATE_LIMIT_CODES and ("rate" in message or "limit" in message or "many" in message)


class CacheStore(Protocol):
    def get_many(self, keys: Sequence[str]) -> dict[str, Response]: ...

    def put_many(self, items: Sequence[tuple[str, Response]]) -> None: ...


class CachingLayer:
    """Answer immutable requests at a pinned block from disk; forward the rest as one batch."""

    def __init__(self, inner: Layer, store: CacheStore, namespace: str, stats: Stats) -> None:
        self.inner = inner
        self.store = store
        self.namespace = namespace  # chain id and pin hash: a reorged pin never reuses answers
        self.stats = stats

    def _key(self, call: Call) -> str:
        return hashlib.sha256(f"{self.namespace}|{call.key}".encode()).hexdigest()

    def send(self, calls: Sequence[Call]) -> list[Response]:
        keys = [self._key(c) if c.immutable() else None for c in calls]
        hits = self.store.get_many([k for k in keys if k is not None])
        for call, key in zip(calls, keys, strict=True):  # a damaged cache file is asked again, never believed
            hit = hits.get(key) if key is not None else None
            if hit is not None and (is_error(hit) or "result" not in hit or malformed(call, hit["result"])):
                del hits[key]  # type: ignore[arg-type]
        self.stats.cache_hits += sum(1 for k in keys if k is not None and k in hits)
        misses = [i for i, k in enumerate(keys) if k is None or k not in hits]
        answers = self.inner.send([calls[i] for i in misses]) if misses else []
        out: list[Response | None] = [hits.get(k) if k is not None else None for k in keys]
        to_store: list[tuple[str, Response]] = []
        for index, answer in zip(misses, answers, strict=True):
            out[index] = answer
            key = keys[index]
            if key is not None and not is_error(answer):
                to_store.append((key, plain_answer(answer)))
        if to_store:
            self.store.put_many(to_store)
        return [answer for answer in out if answer is not None]
