"""Not converged: the solver stopped at its cap, figures are bounds."""

from __future__ import annotations

from auditor.findings import Finding
from auditor.flags.base import INFO, Detector, FlagContext


class NotConverged(Detector):
    ID = "not-converged"
    SEVERITY = INFO
    HELP = "The solver stopped at its iteration cap: verifiable figures are lower bounds, claimed ones upper bounds."

    def detect(self, context: FlagContext) -> list[Finding]:
        result = context.result
        if result.converged:
            return []
        return [
            self.finding(
                None,
                f"backing ratios did not converge within {result.max_iterations} iterations",
                {
                    "iterations": result.iterations,
                    "max_change": format(result.max_change, "f"),
                    "tolerance": format(result.tolerance, "f"),
                },
            )
        ]
