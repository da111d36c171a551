"""`auditor history`: the same audit at a series of pins, the figures over time, and when each threshold first broke.

Every point is a whole audit (the same read plan, cache and evidence as `auditor audit`) at one pin per chain:
chains are time-aligned (each pinned at its last block at or before the point's time), or, with block points,
the home chain is pinned at the block and the other chains at that block's time. A re-run is served from the
cache of pinned reads: no eth_call goes out twice.

A point whose reads failed is kept, marked incomplete with why, and never establishes a crossing: the first
crossing of a threshold is the first *complete* point where the policy's check failed (fail closed: the dates
a reader sees are ones the chain proves).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from auditor.audit import AuditRequest, run_audit
from auditor.chain.reader import ConnectOptions, connect
from auditor.chain.rpc import ConfigError
from auditor.findings import AuditResult
from auditor.numbers import exact
from auditor.policy import Policy
from auditor.spec import Registry, Spec
from auditor.text import inert

MAX_POINTS = 5000  # a typo in --every must not start a million audits
_EVERY = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Point:
    """Where one audit of the series is pinned: a time (every chain aligned to it) or a home-chain block."""

    label: str
    at: dt.datetime | None = None
    block: int | None = None


def parse_every(text: str, option: str = "--every") -> dt.timedelta:
    """'1d', '6h', '30m', '2w', '90s' -> a positive step."""
    match = _EVERY.match(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{option} {text!r}: expected a positive count and a unit, e.g. 1d, 6h, 30m, 2w")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def time_points(start: dt.datetime, end: dt.datetime, every: dt.timedelta) -> list[Point]:
    """Points from `start` to `end` inclusive, `every` apart."""
    if end < start:
        raise ConfigError(f"--to {end.isoformat()} is before --from {start.isoformat()}")
    count = int((end - start) / every) + 1
    if count > MAX_POINTS:
        raise ConfigError(f"{count} points from --from to --to every {every}: at most {MAX_POINTS}; use a larger "
                          "--every")
    return [Point(_iso(start + n * every), at=start + n * every) for n in range(count)]


def block_points(text: str) -> list[Point]:
    """'A:B:STEP' -> blocks A, A+STEP, ... up to B inclusive, on the spec's home chain."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--blocks {text!r}: expected FROM:TO:STEP in blocks, e.g. 23000000:23700000:7200")
    first, last, step = (int(p) for p in parts)
    if step == 0 or last < first:
        raise ConfigError(f"--blocks {text!r}: STEP must be positive and TO at least FROM")
    count = (last - first) // step + 1
    if count > MAX_POINTS:
        raise ConfigError(f"--blocks {text!r} makes {count} points: at most {MAX_POINTS}")
    return [Point(f"block {n}", block=n) for n in range(first, last + 1, step)]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Sample:
    """One audited point: pins, the audited token's figures, the flags raised and the policy's checks."""

    point: Point
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)  # typed (Decimal | None) figures of the audited issuer
    flags: list[str] = field(default_factory=list)  # "id" or "id:issuer", sorted
    failed_checks: list[str] = field(default_factory=list)  # the policy's checks that failed (decided)
    undecided_checks: list[str] = field(default_factory=list)
    complete: bool = False
    why_incomplete: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "point": self.point.label,
            "pins": self.pins,
            "complete": self.complete,
            "why_incomplete": self.why_incomplete or None,
            **{key: exact(value) if isinstance(value, Decimal) else value for key, value in self.figures.items()},
            "flags": self.flags,
            "failed_checks": self.failed_checks,
            "undecided_checks": self.undecided_checks,
        }


FIGURES = ("supply_usd", "verifiable_backing_usd", "backing_ratio", "expansion_ratio", "coverage")


def sample_of(point: Point, result: AuditResult, policy: Policy | None) -> Sample:
    """The figures, flags and checks of one finished audit."""
    from auditor.gate import evaluate

    issuer = result.spec
    figures = result.backing.issuers[issuer]
    pins = {chain: {"number": pin.get("number"), "time": pin.get("time")}
            for chain, pin in sorted(result.document.get("pins", {}).items())}
    checks = evaluate(result, policy) if policy is not None else []
    return Sample(
        point=point,
        pins=pins,
        figures={"supply_usd": figures.supply_usd, "verifiable_backing_usd": figures.verifiable_backing_usd,
                 "backing_ratio": figures.backing_ratio, "expansion_ratio": figures.expansion_ratio,
                 "coverage": result.coverage.get(issuer)},
        flags=sorted({f.id if f.issuer in (None, issuer) else f"{f.id}:{f.issuer}" for f in result.flags}),
        failed_checks=sorted({c.id for c in checks if c.decided and not c.passed}),  # one per check, not per market
        undecided_checks=sorted({c.id for c in checks if not c.decided}),
        complete=result.complete,
        why_incomplete="" if result.complete else result.why_incomplete(),
    )


def _options_at(spec: Spec, registry: Registry, options: ConnectOptions, point: Point) -> ConnectOptions:
    """The pins of one point: a time for every chain, or the home chain's block and the others at its time."""
    if point.at is not None:
        return replace(options, at=point.at, blocks={})
    home = spec.token.deployments[0].chain
    assert point.block is not None
    client = connect({home: registry.chains[home]}, replace(options, blocks={home: point.block}, at=None))[home]
    moment = dt.datetime.fromtimestamp(client.pinned.timestamp, dt.UTC)
    from auditor.audit import known_specs
    from auditor.ledger import chains_needed, issuers_in_audit

    specs = known_specs(spec, registry)
    others = [c for c in chains_needed(specs, issuers_in_audit(spec.id, specs)) if c != home]
    blocks: dict[str, str | int] = {home: client.pinned.number}
    if others:
        aligned = connect({c: registry.chains[c] for c in others}, replace(options, at=moment, blocks={}))
        blocks.update({c: aligned[c].pinned.number for c in others})
    return replace(options, blocks=blocks, at=None)


def audit_point(spec: Spec, registry: Registry, options: ConnectOptions, point: Point,
                policy: Policy | None) -> tuple[Sample, dict[str, Any] | None]:
    """One point of a history: its sample, and its findings document when the audit is complete."""
    result = run_audit(AuditRequest(spec, registry, _options_at(spec, registry, options, point)))
    return sample_of(point, result, policy), (result.document if result.complete else None)


def point_task(spec_path: str, registry_path: str, rpc: Mapping[str, str], use_cache: bool, point: Point,
               policy: Policy | None) -> tuple[Sample, dict[str, Any] | None]:
    """`audit_point` from plain arguments: what a task of any engine runs (see auditor.engine)."""
    from auditor.spec import load_registry, load_spec

    registry = load_registry(registry_path)
    spec = load_spec(spec_path, registry)
    return audit_point(spec, registry, ConnectOptions(rpc=dict(rpc), use_cache=use_cache), point, policy)


def run_history(spec: Spec, registry: Registry, options: ConnectOptions, points: Sequence[Point],
                policy: Policy | None, on_point: Callable[[int, int, int], None] | None = None,
                engine: str = "serial", scheduler: str | None = None,
                workers: int = 2) -> tuple[list[Sample], dict[str, Any] | None]:
    """Audit at every point: the samples in point order, and the findings of the last complete point.

    Each point is a task of `engine` (auditor.engine): serial here, or on Dask. A point whose chain failed (or
    that cannot be pinned) is kept as an incomplete sample with the reason."""
    from auditor import engine as engines

    source = engines.digest(registry.path)
    tasks = [engines.Task(f"history/{spec.id}/{source}/{point.label}", point_task,
                          (str(spec.path), str(registry.path), dict(options.rpc), options.use_cache, point, policy))
             for point in points]
    samples: list[Sample] = []
    last: dict[str, Any] | None = None
    for point, outcome in zip(points, engines.run(tasks, engine, scheduler, workers, on_point), strict=True):
        if outcome.ok:
            sample, findings = outcome.value
            last = findings if findings is not None else last
        else:
            sample = Sample(point, complete=False, why_incomplete=outcome.error or "failed")
        samples.append(sample)
    return samples, last


def crossings(samples: Sequence[Sample]) -> dict[str, dict[str, Any]]:
    """For each policy check and flag: the first complete point where it failed or was raised, and the last one
    before it where it held (the crossing lies between the two)."""
    out: dict[str, dict[str, Any]] = {}
    previous: str | None = None  # the last complete point: every condition not yet crossed held there
    for sample in samples:
        if not sample.complete:
            continue
        for name in [f"check:{c}" for c in sample.failed_checks] + [f"flag:{f}" for f in sample.flags]:
            out.setdefault(name, {"first": sample.point.label, "last_clear": previous})
        previous = sample.point.label
    return dict(sorted(out.items()))


def document(spec: Spec, samples: Sequence[Sample], policy: Policy | None, source: str) -> dict[str, Any]:
    """The history as data (JSON-ready, exact strings)."""
    return {
        "spec": spec.id,
        "token": spec.token.symbol,
        "points": source,
        "policy": _policy_data(policy),
        "series": [s.as_dict() for s in samples],
        "crossings": crossings(samples),
        "complete": all(s.complete for s in samples),
    }


def _policy_data(policy: Policy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    out: dict[str, Any] = {}
    for name in policy.checks():
        value = getattr(policy, name)
        out[name] = exact(value) if isinstance(value, Decimal) else list(value)
    return out


CSV_COLUMNS = ("point", "complete", *FIGURES, "flags", "failed_checks", "why_incomplete")


def to_csv(history: Mapping[str, Any]) -> str:
    """One row per point; pins as one column per chain ('chain block')."""
    chains = sorted({chain for row in history["series"] for chain in row["pins"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"{chain} block" for chain in chains)])
    for row in history["series"]:
        writer.writerow([
            row["point"], "yes" if row["complete"] else "no", *(_csv_cell(row.get(key)) for key in FIGURES),
            " ".join(row["flags"]), " ".join(row["failed_checks"]), _csv_cell(row["why_incomplete"]),
            *(_csv_cell(row["pins"].get(chain, {}).get("number")) for chain in chains)])
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    """A cell that a spreadsheet will not run: text from a chain (error messages) never starts a formula, and its
    control characters are spelled out (a CSV printed to a terminal)."""
    text = "" if value is None else inert(str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True
