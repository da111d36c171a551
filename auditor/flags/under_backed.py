"""Under-backed: verifiable backing below the threshold share of supply."""

from __future__ import annotations

from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagContext
from auditor.numbers import percent, usd


class UnderBacked(Detector):
    ID = "under-backed"
    SEVERITY = HIGH
    HELP = "Verifiable backing covers less of the supply than the threshold."

    def detect(self, context: FlagContext) -> list[Finding]:
        threshold = context.config.under_backed_threshold
        findings = []
        for issuer, f in context.result.issuers.items():
            if f.backing_ratio is None or f.backing_ratio >= threshold:
                continue
            bound = "" if context.result.converged else " (a lower bound: the solver did not converge)"
            findings.append(
                self.finding(
                    issuer,
                    f"{issuer} is {percent(f.backing_ratio)} backed{bound}: "
                    f"{usd(f.verifiable_backing_usd)} verifiable "
                    f"for {usd(f.supply_usd)} of supply",
                    {
                        "backing_ratio": f.backing_ratio,
                        "threshold": threshold,
                        "verifiable_backing_usd": f.verifiable_backing_usd,
                        "supply_usd": f.supply_usd,
                        "expansion_ratio": f.expansion_ratio,
                        "converged": context.result.converged,
                    },
                )
            )
        return findings
