"""No supply: ratios are undefined."""

from __future__ import annotations

from auditor.findings import Finding
from auditor.flags.base import INFO, Detector, FlagContext


class NoSupply(Detector):
    ID = "no-supply"
    SEVERITY = INFO
    HELP = "The token has no supply at the pins: no backing ratio or expansion ratio is defined."

    def detect(self, context: FlagContext) -> list[Finding]:
        return [
            self.finding(
                issuer,
                f"{issuer} has no supply to back; its ratios are not defined",
                {"supply_tokens": f.supply_tokens, "par_usd": f.par_usd},
            )
            for issuer, f in context.result.issuers.items()
            if f.supply_usd == 0
        ]
