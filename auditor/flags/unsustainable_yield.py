"""Unsustainable yield: a claimed APY far above the benchmark lending rate."""

from __future__ import annotations

from auditor.findings import Finding
from auditor.flags.base import MEDIUM, Detector, FlagContext
from auditor.numbers import apy, multiple, percent


class UnsustainableYield(Detector):
    ID = "unsustainable-yield"
    SEVERITY = MEDIUM
    HELP = "Claimed APY exceeds the benchmark lending rate by more than the configured margin."

    def detect(self, context: FlagContext) -> list[Finding]:
        config = context.config
        limit = config.benchmark_lending_rate * config.yield_margin
        findings = []
        for issuer, f in context.result.issuers.items():
            if f.claimed_apy is None or f.claimed_apy <= limit:
                continue
            findings.append(
                self.finding(
                    issuer,
                    f"{issuer} claims {apy(f.claimed_apy)}, "
                    f"more than {multiple(config.yield_margin)} "
                    f"the benchmark lending rate {percent(config.benchmark_lending_rate)}",
                    {
                        "claimed_apy": f.claimed_apy,
                        "benchmark_lending_rate": config.benchmark_lending_rate,
                        "margin": config.yield_margin,
                        "limit": limit,
                    },
                )
            )
        return findings
