"""The flags: one module a detector, and the registry that runs them all."""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from auditor.backing import BackingResult
from auditor.findings import Finding
from auditor.flags.attestation import StaleAttestation
from auditor.flags.base import DEFAULT_CONFIG, SEVERITIES, Detector, FlagConfig, FlagContext
from auditor.flags.circular import CircularDependency
from auditor.flags.concentration import Concentration
from auditor.flags.illiquid_collateral import IlliquidCollateral
from auditor.flags.no_supply import NoSupply
from auditor.flags.not_converged import NotConverged
from auditor.flags.oft_supply import OftSupply
from auditor.flags.opacity import Opacity
from auditor.flags.oracle_blind import OracleBlind
from auditor.flags.oracle_frozen import OracleFrozen
from auditor.flags.oracle_overvalues import OracleOvervalues
from auditor.flags.self_issued import SelfIssuedCollateral
from auditor.flags.under_backed import UnderBacked
from auditor.flags.unexplained_inflow import UnexplainedInflow
from auditor.flags.unexplained_yield import UnexplainedYield
from auditor.flags.unsustainable_yield import UnsustainableYield
from auditor.model import Universe
from auditor.numbers import PRECISION

DETECTORS: tuple[type[Detector], ...] = (
    CircularDependency,
    SelfIssuedCollateral,
    UnderBacked,
    Opacity,
    UnsustainableYield,
    Concentration,
    OracleOvervalues,
    NoSupply,
    NotConverged,
    UnexplainedYield,
    OracleFrozen,
    UnexplainedInflow,
    StaleAttestation,
    OracleBlind,
    OftSupply,
    IlliquidCollateral,
)


def all_detectors() -> tuple[type[Detector], ...]:
    """Every flag, in the order they run."""
    return DETECTORS


def flag_ids() -> tuple[str, ...]:
    """The id of every flag, as policies and the report name them."""
    return tuple(sorted(detector.ID for detector in all_detectors()))


def run_flags(
    universe: Universe,
    result: BackingResult,
    config: FlagConfig = DEFAULT_CONFIG,
    detectors: Sequence[type[Detector]] | None = None,
    *,
    oracle_watches: Sequence[Any] = (),
    vault_apys: dict[str, Decimal] | None = None,
) -> list[Finding]:
    """Run every detector; findings most severe first, then by flag id and issuer."""
    detectors = all_detectors() if detectors is None else detectors
    context = FlagContext(universe, result, config, tuple(oracle_watches), vault_apys or {})
    findings: list[Finding] = []
    with decimal.localcontext(decimal.Context(prec=PRECISION)):
        for detector in detectors:
            findings.extend(detector().detect(context))
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.id, f.issuer or ""))
