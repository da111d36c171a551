"""Concentration: one holder owns most of a supply."""

from __future__ import annotations

from decimal import Decimal

from auditor import model
from auditor.findings import Finding
from auditor.flags.base import MEDIUM, Detector, FlagContext
from auditor.numbers import percent


class Concentration(Detector):
    ID = "concentration"
    SEVERITY = MEDIUM
    HELP = "One holder owns more than the threshold share of the supply."

    def detect(self, context: FlagContext) -> list[Finding]:
        universe, config = context.universe, context.config
        ignored = {a.lower() for a in config.ignored_holders}
        account_owner = {
            p.account.lower(): issuer for issuer, sheet in sorted(universe.sheets.items()) for p in sheet.positions
        }
        findings = []
        for issuer, sheet in sorted(universe.sheets.items()):
            figures = context.result.issuers.get(issuer)
            if figures is None or figures.supply_tokens <= 0:
                continue
            by_holder: dict[str, dict[str, Decimal]] = {}
            for deployment in sheet.supply.deployments:
                key = model.token_key(deployment.chain, deployment.address)
                for holder, amount in universe.holders.get(key, []):
                    # An issuer's own tokens in its own accounts are self-issued collateral, flagged as such.
                    if holder.lower() in ignored or amount <= 0 or account_owner.get(holder.lower()) == issuer:
                        continue
                    # The same address on several chains is taken as one holder (EOAs are).
                    per_chain = by_holder.setdefault(holder.lower(), {})
                    per_chain[key] = per_chain.get(key, Decimal(0)) + Decimal(amount).scaleb(-deployment.decimals)
            if not by_holder:
                continue
            totals = {holder: sum(chains.values(), Decimal(0)) for holder, chains in by_holder.items()}
            top = max(sorted(totals), key=lambda h: totals[h])
            share = totals[top] / figures.supply_tokens
            if share <= config.concentration_threshold:
                continue
            owner = account_owner.get(top)
            held_by = f" (an account of issuer {owner})" if owner else ""
            findings.append(
                self.finding(
                    issuer,
                    f"one holder {top}{held_by} owns {percent(share)} of {issuer}'s supply",
                    {
                        "holder": top,
                        "holder_issuer": owner,
                        "tokens": totals[top],
                        "supply_tokens": figures.supply_tokens,
                        "share": share,
                        "threshold": config.concentration_threshold,
                        "by_deployment": dict(sorted(by_holder[top].items())),
                    },
                )
            )
        return findings
