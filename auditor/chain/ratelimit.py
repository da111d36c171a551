"""A request budget per RPC URL, shared by every client of a process: a token bucket.

`AUDITOR_RPC_RATE` sets requests per second per URL (a provider's plan, e.g. 25); `AUDITOR_RPC_RATE_<CHAIN>` sets
one chain's. Unset: no limit. A run on Dask divides the rate by its workers (auditor.engine sets each worker's
variable), so the URL's total holds across processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

RATE_ENV = "AUDITOR_RPC_RATE"


class TokenBucket:
    """`rate` requests a second on average, bursts of up to `burst`; `acquire` waits (sleeps) for a token."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.clock, self.sleep = clock, sleep
        self.last = clock()
        self.lock = threading.Lock()
        self.taken = 0  # tokens handed out: requests let through

    def acquire(self) -> float:
        """Take one token, waiting as long as needed; returns the seconds waited."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= 1
            self.taken += 1
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait


_BUCKETS: dict[str, TokenBucket | None] = {}
_LOCK = threading.Lock()


def rate_for(chain: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> float | None:
    """The configured requests per second for `chain`'s URL, or None (unlimited)."""
    for name in (f"{RATE_ENV}_{chain.upper().replace('-', '_')}", RATE_ENV):
        text = environ.get(name, "").strip()
        if text:
            try:
                rate = float(text)
            except ValueError:
                rate = float("nan")
            if not rate > 0 or rate == float("inf"):
                from auditor.chain.rpc import ConfigError  # here: rpc imports this module

                raise ConfigError(f"{name}={text!r}: expected a positive number of requests per second, e.g. 25")
            return rate
    return None


def bucket(chain: str, url: str) -> TokenBucket | None:
    """The process's bucket for this URL (one per URL, whichever client asks), or None when unlimited."""
    with _LOCK:
        if url not in _BUCKETS:
            rate = rate_for(chain)
            _BUCKETS[url] = TokenBucket(rate) if rate is not None else None
        return _BUCKETS[url]


def reset() -> None:
    """Forget every bucket: the next request reads the rates again (a Dask worker given its share)."""
    with _LOCK:
        _BUCKETS.clear()


class LimitedSession(requests.Session):
    """An HTTP session that takes a token from its URL's bucket before every request it sends."""

    def __init__(self, limit: TokenBucket) -> None:
        super().__init__()
        self.limit = limit

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.limit.acquire()
        return super().request(*args, **kwargs)


def session_for(chain: str, url: str) -> requests.Session | None:
    """A rate-limited session for `url` when a rate is configured for `chain`, else None (the transport's own)."""
    limit = bucket(chain, url)
    return LimitedSession(limit) if limit is not None else None
