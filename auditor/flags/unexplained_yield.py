"""Unexplained yield: a claimed APY the positions on chain do not earn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagContext
from auditor.numbers import apy, usd
from auditor.yields import IDLE, YieldSource, analyse_yield


def _attached(context: FlagContext, name: str) -> Any:
    """Window data the audit attached for the detectors: on the context first, else on the universe."""
    for holder in (context, context.universe):
        value = getattr(holder, name, None)
        if value is not None:
            return value
    return None


class UnexplainedYield(Detector):
    ID = "unexplained-yield"
    SEVERITY = HIGH
    HELP = "The claimed APY exceeds what the issuer's positions earn on chain, net of what its debts cost."

    def detect(self, context: FlagContext) -> list[Finding]:
        margin = context.config.unexplained_yield_margin
        vault_apys = _attached(context, "vault_apys")
        findings = []
        for issuer, figures in sorted(context.result.issuers.items()):
            if figures.claimed_apy is None or issuer not in context.universe.sheets:
                continue
            breakdown = analyse_yield(context.universe, context.result, issuer,
                                      benchmark_apy=context.config.benchmark_lending_rate,
                                      vault_apys=vault_apys if isinstance(vault_apys, Mapping) else None)
            explained = breakdown.explained_apy
            if explained is None or figures.claimed_apy <= explained + margin:
                continue
            bound = "" if breakdown.complete else " at most (some rates could not be read)"
            findings.append(self.finding(
                issuer,
                f"{issuer} claims {apy(figures.claimed_apy)}; its positions on chain explain "
                f"{apy(explained)}{bound} ({usd(breakdown.net_usd_per_year)} a year on "
                f"{usd(breakdown.supply_usd)} of supply)",
                {
                    "claimed_apy": figures.claimed_apy,
                    "explained_apy": explained,
                    "unexplained_apy": figures.claimed_apy - explained,
                    "margin": margin,
                    "benchmark_apy": breakdown.benchmark_apy,
                    "supply_usd": breakdown.supply_usd,
                    "earned_usd_per_year": breakdown.earned_usd_per_year,
                    "paid_usd_per_year": breakdown.paid_usd_per_year,
                    "complete": breakdown.complete,
                    "value_basis": "face",
                    "sources": [_brief(s) for s in breakdown.sources if s.direction != IDLE or s.apy is None],
                },
            ))
        return findings


def _brief(source: YieldSource) -> dict[str, Any]:
    return {
        "where": f"{source.kind} of {source.symbol or source.token} at {source.venue} ({source.chain})",
        "market": source.market,
        "value_usd": source.value_usd,
        "apy": source.apy,
        "usd_per_year": source.usd_per_year,
    }
