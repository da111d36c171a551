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
from auditor.chain.rpc import ChainError

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Reads:
    """Contract reads at the client's pinned block, or at an earlier `block` of the pinned chain."""

    reads: tuple[Read, ...]
    block: int | None = None


@dataclass(frozen=True)
class Logs:
    """Logs of `addresses` matching `topics` in [from_block, to_block] (the pin when to_block is None)."""

    addresses: tuple[str, ...] | None
    topics: tuple[Any, ...]
    from_block: int
    to_block: int | None = None


@dataclass(frozen=True)
class Codes:
    """Whether each address holds contract code at the pin: True, False, or None when the node did not say."""

    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Batch:
    """Several requests answered in the same round, as a list in the same order (see `gather`)."""

    requests: tuple[Reads | Logs | Codes | Batch, ...]


Request = Reads | Logs | Codes | Batch
Plan = Generator[Request, Any, T]


def reads(batch: Sequence[Read]) -> Plan[list[ReadResult]]:
    """`results = yield from reads([...])`: the answers, in order."""
    answers: list[ReadResult] = yield Reads(tuple(batch))
    return answers


def at_block(block: int, plan: Plan[T]) -> Plan[T]:
    """Run `plan` at an earlier block of the pinned chain: its reads go out in the audit's rounds, at `block`.

    For the optional checks that sample old state (oracle and share prices over a window). A read the node
    cannot answer there (pruned state) comes back unavailable in its result; the plan decides what that means.
    """
    answer: Any = None
    while True:
        try:
            request = plan.send(answer)
        except StopIteration as stop:
            result: T = stop.value
            return result
        answer = yield _at(block, request)


def _at(block: int, request: Request) -> Request:
    if isinstance(request, Batch):
        return Batch(tuple(_at(block, member) for member in request.requests))
    if isinstance(request, Logs | Codes):
        raise TypeError("a plan run at an earlier block scans no logs and asks for no code at the pin")
    return Reads(request.reads, block)


def logs(addresses: Sequence[str] | None, topics: Sequence[Any], from_block: int,
         to_block: int | None = None) -> Plan[list[Log]]:
    """`found = yield from logs(...)`: every matching log, in (block, index) order."""
    found: list[Log] = yield Logs(tuple(addresses) if addresses is not None else None, tuple(topics), from_block,
                                  to_block)
    return found


def codes(addresses: Sequence[str]) -> Plan[list[bool | None]]:
    """`found = yield from codes([...])`: whether each address is a contract at the pin (None: unanswered)."""
    found: list[bool | None] = yield Codes(tuple(addresses))
    return found


def optional(plan: Plan[T]) -> Plan[tuple[T | None, ChainError | None]]:
    """Run `plan`; a chain error inside it (a refused log scan, a read it could not make) is its result, not the
    audit's end: for checks that are reported as not evaluated when they cannot run."""
    try:
        return (yield from plan), None
    except ChainError as exc:
        return None, exc


def gather(*plans: Plan[Any]) -> Plan[list[Any]]:
    """Run independent sub-plans side by side: each round carries every one's next request; their results."""
    results: list[Any] = [None] * len(plans)
    waiting: dict[int, Request] = {}

    def advance(index: int, answer: Any) -> None:
        try:
            waiting[index] = plans[index].send(answer)
        except StopIteration as stop:
            results[index] = stop.value

    for index in range(len(plans)):
        advance(index, None)
    while waiting:
        order = sorted(waiting)
        requests = tuple(waiting.pop(index) for index in order)
        answers = yield Batch(requests)
        for index, answer in zip(order, answers, strict=True):
            advance(index, answer)
    return results


def run_plans(plans: Mapping[K, tuple[ChainClient, Plan[Any]]]) -> dict[K, Any]:
    """Run every plan to its end, one batched call per chain per round; returns each plan's result by key."""
    results: dict[K, Any] = {}
    waiting: dict[K, tuple[ChainClient, Plan[Any], Request]] = {}

    def advance(key: K, client: ChainClient, plan: Plan[Any], answer: Any, error: ChainError | None = None) -> None:
        try:
            request = plan.throw(error) if error is not None else plan.send(answer)
        except StopIteration as stop:
            results[key] = stop.value
            return
        waiting[key] = (client, plan, request)

    for key, (client, plan) in plans.items():
        advance(key, client, plan, None)
    while waiting:
        current = dict(waiting)
        waiting.clear()
        for client in {id(c): c for c, _p, _r in current.values()}.values():
            client.stats.rounds += 1
        # Every read and log scan of the round, per client, goes out together (ChainClient.round): one request
        # when the scans fit one window; reads at earlier blocks of the pinned chain ride in the same batch.
        pending: dict[int, tuple[ChainClient, dict[int | None, list[Read]], list[Logs], list[str]]] = {}
        for client, _plan, request in current.values():
            _client, batch, scans, addresses = pending.setdefault(id(client), (client, {}, [], []))
            for member in _flat(request, Reads):
                batch.setdefault(member.block, []).extend(member.reads)
            scans += _flat(request, Logs)
            addresses += [address for member in _flat(request, Codes) for address in member.addresses]
        answered = {key: Answers(*client.round(batch, [
            (s.addresses, s.topics, s.from_block, client.pinned.number if s.to_block is None else s.to_block)
            for s in scans], addresses)) for key, (client, batch, scans, addresses) in pending.items()}
        for key, (client, plan, request) in current.items():
            try:
                answer = answered[id(client)].answer(request)
            except ChainError as exc:  # a log scan the node refused: the plan may catch it (an optional part)
                advance(key, client, plan, None, exc)
            else:
                advance(key, client, plan, answer)
    return results


R = TypeVar("R", Reads, Logs, Codes)


def _flat(request: Request, kind: type[R]) -> list[R]:
    if isinstance(request, Batch):
        return [inner for member in request.requests for inner in _flat(member, kind)]
    return [request] if isinstance(request, kind) else []


class Answers:
    """One client's answers to a round, handed out to the requests in the order they were gathered."""

    def __init__(self, reads: dict[int | None, list[ReadResult]], scans: list[list[Log] | ChainError],
                 codes: list[bool | None]) -> None:
        self.reads, self.scans, self.codes = reads, scans, codes
        self.read_at: dict[int | None, int] = dict.fromkeys(reads, 0)
        self.scan_at = self.code_at = 0

    def answer(self, request: Request) -> Any:
        if isinstance(request, Batch):
            return [self.answer(member) for member in request.requests]
        if isinstance(request, Codes):
            start, self.code_at = self.code_at, self.code_at + len(request.addresses)
            return self.codes[start : self.code_at]
        if isinstance(request, Logs):
            found = self.scans[self.scan_at]
            self.scan_at += 1
            if isinstance(found, ChainError):
                raise found
            return found
        start = self.read_at[request.block]
        self.read_at[request.block] = start + len(request.reads)
        return self.reads[request.block][start : start + len(request.reads)]


def run_plan(client: ChainClient, plan: Plan[T]) -> T:
    """One plan on its own (callers that have not joined an audit's rounds)."""
    result: T = run_plans({0: (client, plan)})[0]
    return result
