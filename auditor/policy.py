"""The policy format of `auditor check`: loaded and validated like a spec, every error located, exit 2.

The flag ids a policy may name are passed in by the caller (the `ID`s of the detectors in
auditor/risk.py): importing the detectors here would tie the format to the whole audit pipeline.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from auditor.spec import Boolean, Field, Number, Obj, Ref, Seq, SpecError, load_document


@dataclass(frozen=True)
class Policy:
    """What a curator accepts as collateral. Every limit is optional; absent means not checked."""

    min_backing_ratio: Decimal | None = None
    max_expansion: Decimal | None = None
    fail_on_flags: tuple[str, ...] = ()
    max_oracle_deviation: Decimal | None = None  # oracle price over look-through value, minus 1
    max_exposure_usd: Decimal | None = None  # per collateral, summed over the markets found
    min_coverage: Decimal | None = None  # share of value moved through counterparties the audit understands
    allow_unverified_collateral: bool = False

    def checks(self) -> tuple[str, ...]:
        """The names of the limits this policy sets."""
        return tuple(name for name in LIMITS if getattr(self, name) not in (None, ()))


# The limits `auditor history` and `auditor demo` date the crossings of when no --policy is given: the same as
# examples/policy.yaml (a test keeps the two equal).
DEFAULT_POLICY = Policy(
    min_backing_ratio=Decimal("0.95"),
    max_expansion=Decimal("1.1"),
    fail_on_flags=("circular-dependency", "self-issued-collateral", "oracle-overvalues"),
    max_oracle_deviation=Decimal("0.05"),
)

# Every field but allow_unverified_collateral, which only relaxes the other checks.
LIMITS = tuple(f.name for f in fields(Policy) if f.name != "allow_unverified_collateral")


def _decimal(value: Any) -> Decimal | None:
    # Through str: the float YAML made of 0.95 becomes Decimal("0.95"), not its binary expansion.
    return None if value is None else Decimal(str(value))


def _policy(**values: Any) -> Policy:
    return Policy(
        min_backing_ratio=_decimal(values.get("min_backing_ratio")),
        max_expansion=_decimal(values.get("max_expansion")),
        fail_on_flags=tuple(values.get("fail_on_flags", ())),
        max_oracle_deviation=_decimal(values.get("max_oracle_deviation")),
        max_exposure_usd=_decimal(values.get("max_exposure_usd")),
        min_coverage=_decimal(values.get("min_coverage")),
        allow_unverified_collateral=bool(values.get("allow_unverified_collateral", False)),
    )


POLICY_FORMAT = Obj(
    {
        "min_backing_ratio": Field(Number("fail if verifiable backing ratio is below", minimum=0, maximum=1)),
        "max_expansion": Field(Number("fail if supply / verifiable backing is above (unbounded always fails)",
                                      minimum=1)),
        "fail_on_flags": Field(Seq(Ref("flag", "a flag id, e.g. circular-dependency", "the detectors"),
                                   "flags that fail the gate", unique_by=lambda flag: flag)),
        "max_oracle_deviation": Field(Number("fail if a market's oracle prices the collateral more than this "
                                             "fraction above its look-through value", minimum=0)),
        "max_exposure_usd": Field(Number("fail if more than this is lent against one collateral", minimum=0)),
        "min_coverage": Field(Number("fail if less than this share of the value the issuer's accounts moved went "
                                     "through counterparties the audit understands", minimum=0, maximum=1)),
        "allow_unverified_collateral": Field(Boolean("in --vault mode, pass collateral that has no spec")),
    },
    build=_policy,
    description="Policy of `auditor check`",
)


def load_policy(path: str | Path, known_flags: Collection[str]) -> Policy:
    """Load a policy; unknown keys, unknown flag ids and a policy that checks nothing are SpecErrors."""
    policy: Policy = load_document(path, POLICY_FORMAT, {"flag": known_flags})
    if not policy.checks():
        raise SpecError(str(path), 1, "", "a policy that checks nothing cannot pass a token; set at least "
                        f"one of: {', '.join(LIMITS)}")
    return policy
