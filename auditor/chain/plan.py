"""Reads planned in rounds: stages describe what they need as generators, the chain layer batches each round.

A plan is a generator that yields requests (`Reads` at the pin, or a `Logs` scan) and receives their answers;
its return value is its result. `run_plans` advances every plan of an audit together: in each round it gathers
the reads every plan is waiting for, sends them as one batched call per chain (Multicall3 chunks in one
JSON-RPC batch), hands each plan its answers, and goes on until every plan has returned. A stage written as a
plan therefore never waits on another stage's round trips, and nothing outside this package sends a request.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from auditor.chain.reader import ChainClient, Log, Read, ReadResult

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Reads:
    """Contract reads at the client's pinned block."""

    reads: tuple[Read, ...]


@dataclass(frozen=True)
class Logs:
    """Logs of `addresses` matching `topics` in [from_block, to_block] (the pin when to_block is None)."""

    addresses: tuple[str, ...] | None
    topics: tuple[Any, ...]
    from_block: int
    to_block: int | None = None


Request = Reads | Logs
Plan = Generator[Request, Any, T]


def reads(batch: Sequence[Read]) -> Plan[list[ReadResult]]:
    """`results = yield from reads([...])`: the answers, in order."""
    answers: list[ReadResult] = yield Reads(tuple(batch))
    return answers


def logs(addresses: Sequence[str] | None, topics: Sequence[Any], from_block: int,
         to_block: int | None = None) -> Plan[list[Log]]:
    """`found = yield from logs(...)`: every matching log, in (block, index) order."""
    found: list[Log] = yield Logs(tuple(addresses) if addresses is not None else None, tuple(topics), from_block,
                                  to_block)
    return found


def done(value: T) -> Plan[T]:
    """A plan that needs no reads (for branches that know their answer already)."""
    return value
    yield  # pragma: no cover - makes this function a generator


def run_plans(plans: Mapping[K, tuple[ChainClient, Plan[Any]]]) -> dict[K, Any]:
    """Run every plan to its end, one batched call per chain per round; returns each plan's result by key."""
    results: dict[K, Any] = {}
    waiting: dict[K, tuple[ChainClient, Plan[Any], Request]] = {}

    def advance(key: K, client: ChainClient, plan: Plan[Any], answer: Any) -> None:
        try:
            request = plan.send(answer)
        except StopIteration as stop:
            results[key] = stop.value
            return
        waiting[key] = (client, plan, request)

    for key, (client, plan) in plans.items():
        advance(key, client, plan, None)
    while waiting:
        current, answers = dict(waiting), dict[K, Any]()
        waiting.clear()
        by_client: dict[int, list[K]] = {}
        for key, (client, _plan, request) in current.items():
            if isinstance(request, Reads):
                by_client.setdefault(id(client), []).append(key)
            else:  # a log scan is its own sequence of windows
                answers[key] = list(client.scan_logs(request.addresses, request.topics, request.from_block,
                                                     client.pinned.number if request.to_block is None
                                                     else request.to_block))
        for keys in by_client.values():
            client = current[keys[0]][0]
            batch = [read for key in keys for read in _reads(current[key][2])]
            flat = client.read(batch) if batch else []
            start = 0
            for key in keys:
                count = len(_reads(current[key][2]))
                answers[key] = flat[start : start + count]
                start += count
        for key, (client, plan, _request) in current.items():
            advance(key, client, plan, answers[key])
    return results


def run_plan(client: ChainClient, plan: Plan[T]) -> T:
    """One plan on its own (callers that have not joined an audit's rounds)."""
    result: T = run_plans({0: (client, plan)})[0]
    return result


def _reads(request: Request) -> tuple[Read, ...]:
    assert isinstance(request, Reads)
    return request.reads
