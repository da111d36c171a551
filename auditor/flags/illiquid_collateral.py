"""Illiquid collateral: lending markets hold more of a token as collateral than its pool can absorb.

A liquidation sells the collateral: when the markets lending against a token hold more of it than the registry's
pool for it can take before its price falls by the largest drop the audit reads (10%), those loans cannot be
cleared at anything near the price the oracle or the pool shows. The figures are the pool's own swap maths at the
pin (exit liquidity, auditor/adapters/uniswap_v3.py)."""

from __future__ import annotations

from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagContext
from auditor.numbers import percent, tokens, usd


class IlliquidCollateral(Detector):
    ID = "illiquid-collateral"
    SEVERITY = HIGH
    HELP = ("Lending markets hold more of a token as collateral, with debt outstanding, than its pool can absorb "
            "before its price falls by 10%: liquidations cannot clear.")

    def detect(self, context: FlagContext) -> list[Finding]:
        universe = context.universe
        owners = {key: issuer for issuer, sheet in universe.sheets.items() for key in sheet.token_keys}
        findings = []
        for key, price in sorted(universe.market_prices.items()):
            if not price.depth:
                continue
            deepest = price.depth[-1]
            posted, markets = universe.collateral_posted(key, lending_only=True)
            if not markets or posted <= deepest.tokens:
                continue
            held = sum(amount for _holder, amount in universe.holders.get(key, []))
            findings.append(self.finding(
                owners.get(key),
                f"{len(markets)} lending market(s) hold {tokens(posted)} tokens of {key} as collateral; its pool "
                f"({price.source}) takes only {tokens(deepest.tokens)} ({usd(deepest.usd)}) before its price falls "
                f"{percent(deepest.drop)}: liquidations cannot clear",
                {"token": key, "posted_tokens": posted, "markets": sorted(m.key for m in markets),
                 "pool": price.source, "price_usd": price.price_usd,
                 "exit": [point.as_dict() for point in price.depth],
                 "held_by_audited_accounts_raw": held}))
        return findings
