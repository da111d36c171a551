"""A trace sharded into block ranges: each shard scanned as a task (auditor.engine), merged in block order.

Shard i covers the i-th of `shards` contiguous ranges of every chain's window, all read at the same pins. Merging
concatenates the shards' events (dropping a log two shards both saw, by chain, transaction and log index), sums
what was scanned and keeps each note once; analysis orders events by chain, block and log index, so the findings
are those of one pass over the whole window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from auditor.trace import Collection, _merge, collect, trace_findings


def split(window: tuple[int, int], shards: int) -> list[tuple[int, int]]:
    """[a, b] as up to `shards` contiguous, non-empty ranges covering it exactly, in block order."""
    start, end = window
    size = end - start + 1
    count = max(1, min(shards, size))
    bounds = [start + size * i // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(count)]


def shard_task(spec_path: str, registry_path: str, rpc: Mapping[str, str], pins: Mapping[str, int],
               windows: Mapping[str, tuple[int, int]], use_cache: bool) -> Collection:
    """Collect one shard: every chain's sub-window, read at the whole trace's pins."""
    from auditor.audit import known_specs
    from auditor.chain.reader import ConnectOptions, connect
    from auditor.spec import load_registry, load_spec

    registry = load_registry(registry_path)
    root = load_spec(spec_path, registry)
    specs = known_specs(root, registry)
    clients = connect({n: registry.chains[n] for n in windows},
                      ConnectOptions(rpc=dict(rpc), blocks=dict(pins), use_cache=use_cache))
    return collect(root.id, specs, registry, clients, windows)


def merge(parts: Sequence[Collection]) -> Collection:
    merged = Collection()
    seen: set[tuple[str, str, int, str]] = set()
    for part in parts:
        for event in part.events:
            key = (event.chain, event.tx_hash, event.log_index, event.kind)
            if key not in seen:
                seen.add(key)
                merged.events.append(event)
        _merge(merged.labelling, part.labelling)
        for chain, counts in part.scanned.items():
            total = merged.scanned.setdefault(chain, {})
            for name, count in counts.items():
                total[name] = total.get(name, 0) + count
        merged.notes += [note for note in part.notes if note not in merged.notes]
    return merged


def run_sharded(spec_path: str, registry_path: str, rpc: Mapping[str, str], pins: Mapping[str, Any],
                windows: Mapping[str, tuple[int, int]], shards: int, engine: str = "serial",
                scheduler: str | None = None, workers: int = 2, use_cache: bool = True,
                progress: Any = None) -> dict[str, Any]:
    """The trace's findings, its windows scanned as `shards` tasks of `engine`. `pins`: chain -> Pin.as_dict()."""
    from auditor import engine as engines
    from auditor.audit import known_specs
    from auditor.chain.rpc import ChainError
    from auditor.spec import load_registry, load_spec

    registry = load_registry(registry_path)
    root = load_spec(spec_path, registry)
    ranges = {chain: split(window, shards) for chain, window in sorted(windows.items())}
    count = max(len(r) for r in ranges.values())
    numbers = {chain: int(pin["number"]) for chain, pin in pins.items()}
    tasks = []
    source = engines.digest(registry_path)
    for index in range(count):
        part = {chain: r[index] for chain, r in ranges.items() if index < len(r)}
        key = f"trace/{root.id}/{source}/shard-{index}-of-{count}/" + ",".join(
            f"{c}={a}:{b}" for c, (a, b) in sorted(part.items()))
        tasks.append(engines.Task(key, shard_task, (spec_path, registry_path, dict(rpc), numbers, part, use_cache)))
    outcomes = engines.run(tasks, engine, scheduler, workers, progress)
    failed = [o for o in outcomes if not o.ok]
    if failed:  # a trace with a hole in its window would be wrong, not incomplete: no findings
        raise ChainError("trace", "shard", failed[0].key, f"{len(failed)} of {len(outcomes)} shard(s) failed, "
                         f"the first: {failed[0].error}")
    return trace_findings(root.id, known_specs(root, registry), pins, windows, merge([o.value for o in outcomes]))
