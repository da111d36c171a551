"""JSON-RPC transport and its layers: HTTP with retries, counting, caching, evidence recording and replay."""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

# JSON-RPC error codes that providers use for "slow down" rather than "your request is wrong".
RATE_LIMIT_CODES = {-32005, -32029, 429}
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "http_requests": self.http_requests,
            "retries": self.retries,
            "calls": dict(sorted(self.calls.items())),
            "cache_hits": self.cache_hits,
            "reads": self.reads,
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
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(header) if header else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


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

    def send(self, calls: Sequence[Call]) -> list[Response]:
        if not calls:
            return []
        if len(calls) > 1 and not self.batches_supported:
            return [self._send_with_retries([call])[0] for call in calls]
        return self._send_with_retries(calls)

    def _send_with_retries(self, calls: Sequence[Call]) -> list[Response]:
        last = "no attempt made"
        for attempt in range(self.policy.attempts):
            if attempt:
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
        body = canonical_json(payload[0] if single else payload)
        self.stats.http_requests += 1
        for call in calls:
            self.stats.calls[call.method] += 1
        try:
            reply = self.session.post(
                self.url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=(min(10.0, self.policy.timeout_s), self.policy.timeout_s),
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"connection failed: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise _Retryable(f"HTTP error: {exc}") from None
        if reply.status_code == 413:
            raise PayloadTooLarge(f"{len(body)} bytes refused (HTTP 413)")
        if reply.status_code == 429:
            raise _Retryable("rate limited (HTTP 429)", _retry_after(reply.headers.get("Retry-After")))
        if reply.status_code >= 500:
            raise _Retryable(f"HTTP {reply.status_code}")
        if reply.status_code >= 400:
            if b"too large" in reply.content.lower() or b"body" in reply.content.lower():
                raise PayloadTooLarge(f"HTTP {reply.status_code}: {reply.text[:200]}")
            raise _Retryable(f"HTTP {reply.status_code}: {reply.text[:200]}")
        try:
            decoded = reply.json()
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
        self.stats.cache_hits += sum(1 for k in keys if k is not None and k in hits)
        misses = [i for i, k in enumerate(keys) if k is None or k not in hits]
        answers = self.inner.send([calls[i] for i in misses]) if misses else []
        out: list[Response | None] = [hits.get(k) if k is not None else None for k in keys]
        to_store: list[tuple[str, Response]] = []
        for index, answer in zip(misses, answers, strict=True):
            out[index] = answer
            key = keys[index]
            if key is not None and not is_error(answer):
                to_store.append((key, answer))
        if to_store:
            self.store.put_many(to_store)
        return [answer for answer in out if answer is not None]
