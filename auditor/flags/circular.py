"""Circular dependency: tokens that back each other."""

from __future__ import annotations

from decimal import Decimal

from auditor.backing import IssuerFigures
from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagConfig, FlagContext
from auditor.numbers import usd


def _material(figures: IssuerFigures, usd: Decimal, config: FlagConfig) -> bool:
    if usd <= 0:
        return False
    if figures.supply_usd > 0:
        return usd / figures.supply_usd >= config.min_circular_share
    return usd >= Decimal("0.01")


class CircularDependency(Detector):
    ID = "circular-dependency"
    SEVERITY = HIGH
    HELP = "The issuer is on a cycle of tokens backing each other, and the cycle carries part of its backing."

    def detect(self, context: FlagContext) -> list[Finding]:
        findings = []
        for issuer, f in context.result.issuers.items():
            cycle = context.result.cycle_of(issuer)
            if cycle is None or len(cycle.issuers) < 2:
                continue  # a self-loop carries no value (own tokens are worth 0): self-issued-collateral covers it
            # Two measures: the fixed-point gap (backing that exists only if the cycle is taken at its word),
            # and the cycle gap (what the cycle's tokens add to this issuer if they were worth par). A closed
            # loop shows in the first; an open one like xUSD/deUSD has a unique fixed point and shows in the second.
            circular = _material(f, f.circular_backing_usd, context.config)
            gap = _material(f, f.cycle_gap_usd, context.config)
            # Every member of a cycle that carries value is on it, even one whose own backing the cycle does not
            # move (xUSD at zero backing after the loss still props up deUSD): one verdict per cycle.
            carried = _material(f, cycle.circular_backing_usd + cycle.cycle_gap_usd, context.config)
            if not (circular or gap or carried):
                continue
            propped = usd(f.verifiable_backing_usd + f.cycle_gap_usd)
            message = (
                f"{issuer} is on the cycle {' -> '.join(cycle.issuers)}: verifiable backing "
                f"{usd(f.verifiable_backing_usd)}, {propped} if its cycle's tokens were worth par"
            )
            if circular:
                message += f"; {usd(f.circular_backing_usd)} exists only if the cycle is taken at its word"
            if not (circular or gap):
                message += (f"; the cycle props up {usd(cycle.circular_backing_usd + cycle.cycle_gap_usd)} of its "
                            "other members' backing")
            findings.append(
                self.finding(
                    issuer,
                    message,
                    {
                        "cycle": list(cycle.issuers),
                        "verifiable_backing_usd": f.verifiable_backing_usd,
                        "claimed_backing_usd": f.claimed_backing_usd,
                        "backing_at_par_usd": f.backing_at_par_usd,
                        "circular_backing_usd": f.circular_backing_usd,
                        "cycle_gap_usd": f.cycle_gap_usd,
                        "cycle_total_circular_backing_usd": cycle.circular_backing_usd,
                        "cycle_total_gap_usd": cycle.cycle_gap_usd,
                    },
                )
            )
        return findings
