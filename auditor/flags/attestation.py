"""Stale attestation: a proof-of-reserve feed the spec names answered stale, non-positive, or not at all."""

from __future__ import annotations

from auditor.findings import Finding
from auditor.flags.base import MEDIUM, Detector, FlagContext


class StaleAttestation(Detector):
    ID = "stale-attestation"
    SEVERITY = MEDIUM
    HELP = ("A proof-of-reserve feed of the issuer is older than its heartbeat, answers zero or less, or cannot be "
            "read: the off-chain reserves it attests are not counted as attested.")

    def detect(self, context: FlagContext) -> list[Finding]:
        findings = []
        for issuer, figures in sorted(context.result.issuers.items()):
            for reserve in figures.attested:
                if reserve.status == "fresh":
                    continue
                why = {
                    "stale": f"last updated {reserve.age_s} s before the pin, heartbeat {reserve.heartbeat_s} s",
                    "non-positive": "it answers zero or less",
                    "unreadable": "it could not be read at the pin",
                }[reserve.status]
                findings.append(self.finding(
                    issuer, f"{issuer}: proof-of-reserve feed {reserve.label!r} ({reserve.feed} on {reserve.chain}) "
                            f"is {reserve.status}: {why}; its reserves are not counted as attested",
                    {**reserve.as_dict(), "evidence": [e.as_dict() for e in reserve.evidence]}))
        return findings
