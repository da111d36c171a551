"""Unexplained inflow: an unknown contract paid an issuer account more than the account had paid it.

A lender the registry does not list looks exactly like this from the issuer's side: cash arrives from a contract
the audit cannot read, and the debt against it is nowhere in the balance sheet, so the cash counts as backing.
The audit cannot tell that loan apart from a sale through an unlisted pool or a gift; it says what it saw, with
the amount, the contract and the first transaction, and bounds the backing: at most what it shows.
"""

from __future__ import annotations

from decimal import Decimal

from auditor.findings import Finding
from auditor.flags.base import HIGH, MEDIUM, Detector, FlagContext
from auditor.numbers import percent, usd


class UnexplainedInflow(Detector):
    ID = "unexplained-inflow"
    SEVERITY = HIGH
    HELP = ("An unknown contract paid an issuer account more than the account had paid it: possibly a debt in a "
            "venue the audit cannot read. High (and the audit incomplete, its backing a bound) when material.")

    def detect(self, context: FlagContext) -> list[Finding]:
        counterparties = context.universe.counterparties
        if counterparties is None:
            return []
        findings = []
        for issuer, figures in sorted(context.result.issuers.items()):
            peers = counterparties.unexplained(issuer)
            if not peers:
                continue
            total = sum((p.net_in_usd for p in peers), Decimal(0))
            backing = figures.verifiable_backing_usd
            share = total / backing if backing else None
            material = share is None or share >= context.config.unexplained_inflow_materiality
            biggest = max(peers, key=lambda p: (p.net_in_usd, p.address))
            against = f" ({percent(share)} of verifiable backing)" if share is not None else ""
            message = (f"{len(peers)} contract(s) the audit cannot read paid {issuer} accounts {usd(total)} more than "
                       f"they were paid{against}, largest {usd(biggest.net_in_usd)} from {biggest.address} on "
                       f"{biggest.chain} (first tx {biggest.first_tx}): possibly debt in an unlisted venue")
            if material:
                message += "; verifiable backing is at most what is shown"
            findings.append(Finding(self.ID, HIGH if material else MEDIUM, issuer, message, {
                "unexplained_usd": total,
                "share_of_backing": share,
                "materiality": context.config.unexplained_inflow_materiality,
                "material": material,
                "contracts": [p.as_dict() for p in peers],
            }))
        return findings
