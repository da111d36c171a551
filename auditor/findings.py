"""The typed verdict of an audit that every output renders: flags, figures, and whether the audit is complete."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from auditor.model import Gap
from auditor.numbers import exact

__all__ = ["AuditResult", "Finding", "Gap", "Severity", "Skipped", "plain"]


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


SEVERITY_ORDER = tuple(Severity)  # most severe first: findings are sorted in this order


def plain(value: Any) -> Any:
    """Typed evidence as JSON data: Decimals in their exact spelling, big ints as strings, enums as values."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, frozenset | set) else items
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > 2**53 else value  # JSON readers lose precision past 2**53
    if isinstance(value, Decimal):
        return exact(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


@dataclass(frozen=True)
class Finding:
    """One flag raised on one issuer (or on the whole audit when issuer is None), with the figures it used.

    `evidence` holds typed values (Decimal for USD and ratios, int for raw amounts): every output formats them
    itself through auditor.numbers, and no consumer parses a rounded string back.
    """

    id: str
    severity: Severity
    issuer: str | None
    message: str
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity.value, "issuer": self.issuer, "message": self.message,
                "evidence": plain(self.evidence)}


@dataclass(frozen=True)
class Skipped:
    """An optional check that could not run (its figures are not affected): it is reported as not evaluated."""

    check: str
    reason: str
    # When old state was missing: per chain, the oldest probed block the node still had state for (None: none).
    state_from: dict[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "reason": self.reason}
        if self.state_from:
            out["state_from"] = dict(sorted(self.state_from.items()))
        return out


@dataclass
class AuditResult:
    """One audit: the typed pieces the gate and the renderers use, and the findings document they share."""

    spec: str
    token: str
    backing: Any  # auditor.backing.BackingResult
    flags: list[Finding]
    gaps: list[Gap] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    exposure: dict[str, Any] = field(default_factory=dict)  # chain -> exposure map (data), who lends against it
    oracles: list[Any] = field(default_factory=list)  # flags.oracle_overvalues.OracleReading, per market
    document: dict[str, Any] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)  # per chain: what went over the wire (run metadata)
    coverage: dict[str, Decimal] = field(default_factory=dict)  # issuer -> share of value moved understood

    @property
    def reads_complete(self) -> bool:
        """Every read the figures need was answered (else nothing is signed: the figures are not a result)."""
        return not self.gaps

    @property
    def unexplained(self) -> list[Finding]:
        """Material unexplained inflows: money the audit cannot account for, so backing is only a bound."""
        return [f for f in self.flags if f.id == "unexplained-inflow" and f.evidence.get("material")]

    @property
    def complete(self) -> bool:
        """The figures are the audit's result: every read answered and every material inflow explained."""
        return self.reads_complete and not self.unexplained

    def bound(self, issuer: str) -> str:
        """How to read an issuer's verifiable backing: "exact", or "at most" when money came in unexplained."""
        return "at most" if any(f.issuer == issuer for f in self.unexplained) else "exact"

    def why_incomplete(self) -> str:
        """One line: what makes the audit incomplete ("" when it is complete)."""
        if self.gaps:
            return f"{len(self.gaps)} read(s) failed, first {self.gaps[0].line()}"
        if self.unexplained:
            first = self.unexplained[0]
            return (f"material unexplained inflows for {', '.join(sorted({f.issuer or '' for f in self.unexplained}))}"
                    f" ({first.message})")
        return ""

    def completeness(self) -> dict[str, Any]:
        return {"complete": self.complete, "gaps": [g.as_dict() for g in self.gaps],
                "unexplained_inflows": [{"issuer": f.issuer, "usd": plain(f.evidence.get("unexplained_usd"))}
                                        for f in self.unexplained],
                "not_evaluated": [s.as_dict() for s in self.skipped]}
