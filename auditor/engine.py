"""Where the audits of a run execute: here, one after another (serial, the default), or as tasks on Dask.

A run is a list of `Task`s, each a module-level function and plain arguments (paths, URLs, block numbers: what
pickles and means the same on any machine). Both engines call the very same function through `guarded`, so a
Dask run computes exactly what a serial run does; results come back in task order, whatever order they finished
in. A task that fails on the tool's own errors (a chain down, a read refused, bad input) fails alone: its
`Outcome` carries the one-line reason and the other tasks go on. Anything else is a bug and is raised.

The cache of pinned reads is one SQLite file shared by every worker of a machine ($AUDITOR_CACHE_DIR, inherited
by a LocalCluster's processes): answers at a pinned block hash are immutable, so any worker may serve any other's,
and SQLite serialises writers on the file. On a remote cluster each machine keeps its own cache; the results are
the same, only the cost differs.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES = ("serial", "dask")


@dataclass(frozen=True)
class Task:
    key: str  # what the task computes, stable across runs: e.g. audit/SPEC/REGISTRY-DIGEST/PINS
    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Outcome:
    key: str
    value: Any = None
    error: str | None = None  # why the task failed, one line; None when it succeeded

    @property
    def ok(self) -> bool:
        return self.error is None


Progress = Callable[[int, int, int], None]  # (done, failed, total)


def guarded(key: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Outcome:
    """Run one task; the tool's own errors become the task's reason, anything else is raised."""
    from auditor.chain.rpc import ChainError, ConfigError
    from auditor.spec import SpecError

    try:
        return Outcome(key, fn(*args))
    except (ChainError, ConfigError, SpecError) as exc:
        return Outcome(key, error=str(exc))


def digest(path: str | Path) -> str:
    """A file's content digest, short: part of a task's key (a changed registry is another task)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def run(tasks: Sequence[Task], engine: str = "serial", scheduler: str | None = None, workers: int = 2,
        progress: Progress | None = None) -> list[Outcome]:
    """Every task's outcome, in task order."""
    from auditor.chain.rpc import ConfigError

    keys = [task.key for task in tasks]
    if len(set(keys)) != len(keys):
        raise ConfigError("two tasks of one run have the same key: the same audit asked twice")
    if engine == "serial":
        if scheduler is not None:
            raise ConfigError("--scheduler needs --engine dask")
        outcomes = []
        failed = 0
        for task in tasks:
            outcome = guarded(task.key, task.fn, task.args)
            outcomes.append(outcome)
            failed += not outcome.ok
            if progress is not None:
                progress(len(outcomes), failed, len(tasks))
        return outcomes
    if engine == "dask":
        return _run_dask(tasks, scheduler, workers, progress)
    raise ConfigError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")


def _run_dask(tasks: Sequence[Task], scheduler: str | None, workers: int, progress: Progress | None) -> list[Outcome]:
    from auditor.chain.rpc import ConfigError

    try:
        # Untyped library: held as Any so its calls do not leak untyped values into typed code.
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise ConfigError("--engine dask needs dask.distributed: pip install 'reserve-auditor[dask]'") from None
    Client, LocalCluster, as_completed = distributed.Client, distributed.LocalCluster, distributed.as_completed
    cluster = None
    try:
        if scheduler is not None:
            client = Client(scheduler, timeout="20s")
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler or '(local cluster)'}: {exc}") from None
    try:
        share_rate_limits(client)
        futures = [client.submit(guarded, task.key, task.fn, task.args, key=task.key, pure=False) for task in tasks]
        by_key: dict[str, Outcome] = {}
        failed = 0
        for future in as_completed(futures):
            outcome: Outcome = future.result()
            by_key[outcome.key] = outcome
            failed += not outcome.ok
            if progress is not None:
                progress(len(by_key), failed, len(tasks))
        return [by_key[task.key] for task in tasks]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def share_rate_limits(client: Any, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Divide every configured RPC rate (AUDITOR_RPC_RATE[_CHAIN]) among the cluster's workers, so a URL's total
    holds across processes: each worker gets rate / workers in its environment, with fresh buckets. Returns what
    each worker was given."""
    from auditor.chain.ratelimit import RATE_ENV

    source = dict(os.environ if environ is None else environ)
    rates = {k: v for k, v in source.items() if k == RATE_ENV or k.startswith(RATE_ENV + "_")}
    if not rates:
        return {}
    client.wait_for_workers(1)
    workers = max(1, len(client.scheduler_info()["workers"]))
    shares = {name: repr(float(value) / workers) for name, value in rates.items()}
    client.run(_set_rates, shares)
    return shares


def _set_rates(shares: Mapping[str, str]) -> None:
    """On a worker: its share of each rate, and buckets made afresh from it."""
    from auditor.chain import ratelimit

    os.environ.update(shares)
    ratelimit.reset()
