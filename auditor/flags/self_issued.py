"""Self-issued collateral: an issuer's own tokens, or its cycle-mates', among its assets."""

from __future__ import annotations

from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagContext
from auditor.numbers import tokens


class SelfIssuedCollateral(Detector):
    ID = "self-issued-collateral"
    SEVERITY = HIGH
    HELP = "The issuer holds or posts its own token, or holds tokens of issuers on its own cycle."

    def detect(self, context: FlagContext) -> list[Finding]:
        findings = []
        for issuer, f in context.result.issuers.items():
            cycle = context.result.cycle_of(issuer)
            mates = [j for j in f.depends_on if cycle is not None and j in cycle.issuers and j != issuer]
            # Lending against (or in) its own token, through a market, with no own tokens held directly.
            lends_against_own = issuer in f.depends_on and f.self_held_tokens == 0
            if f.self_held_tokens == 0 and not mates and not lends_against_own:
                continue
            parts = []
            if f.self_held_tokens > 0:
                own = tokens(f.self_held_tokens, f.symbol)
                parts.append(f"holds or posts {own} of its own tokens (worth 0 as backing)")
            if lends_against_own:
                parts.append("lends against its own token")
            if mates:
                parts.append(f"its assets include tokens of {', '.join(mates)} on its own cycle")
            findings.append(
                self.finding(
                    issuer,
                    f"{issuer}: " + "; ".join(parts),
                    {
                        "self_held_tokens": f.self_held_tokens,
                        "lends_against_own_token": lends_against_own,
                        "cycle_issuers": mates,  # held directly or lent against
                        "cycle_issuers_held_tokens": {
                            j: f.issued_holdings_tokens[j]
                            for j in mates
                            if j in f.issued_holdings_tokens
                        },
                        "cycle": None if cycle is None else list(cycle.issuers),
                    },
                )
            )
        return findings
