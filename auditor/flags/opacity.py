"""Opacity: claimed assets that cannot be seen on chain."""

from __future__ import annotations

from decimal import Decimal

from auditor import model
from auditor.findings import Finding
from auditor.flags.base import MEDIUM, Detector, FlagContext
from auditor.numbers import percent, usd


class Opacity(Detector):
    ID = "opacity"
    SEVERITY = MEDIUM
    HELP = "Too large a share of the claimed assets is off-chain or cannot be seen on chain."

    def detect(self, context: FlagContext) -> list[Finding]:
        threshold = context.config.opacity_threshold
        findings = []
        for issuer, f in context.result.issuers.items():
            # On-chain assets at par: opacity is about what cannot be seen, not about look-through value.
            visible = f.gross_assets_at_par_usd
            if f.claimed_assets_usd is not None and f.claimed_assets_usd > 0:
                basis = "claimed assets"
                denominator = f.claimed_assets_usd
                hidden = min(denominator, max(Decimal(0), denominator - visible))
            else:
                basis = "off-chain plus on-chain assets"
                denominator = f.offchain_usd + visible
                hidden = f.offchain_usd
            if denominator <= 0:
                continue
            share = hidden / denominator
            if share <= threshold:
                continue
            unknown = [h for h in f.unverifiable if h.kind != model.DEBT]
            findings.append(
                self.finding(
                    issuer,
                    f"{percent(share)} of {issuer}'s {basis} ({usd(denominator)}) "
                    f"cannot be verified on chain",
                    {
                        "opaque_share": share,
                        "threshold": threshold,
                        "basis": basis,
                        "claimed_assets_usd": None
                        if f.claimed_assets_usd is None
                        else f.claimed_assets_usd,
                        "onchain_assets_at_par_usd": visible,
                        "offchain_usd": f.offchain_usd,
                        "unverifiable_positions": len(unknown),
                    },
                )
            )
        return findings
