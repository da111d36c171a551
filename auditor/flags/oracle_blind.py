"""Oracle blind: a lending market with debt outstanding whose oracle answers 0 or cannot be read at the pin.

Rebuilt from public post-mortem data: the Ethereum sdeUSD/USDC market of November 2025 had $55.4M borrowed against
collateral worth ~$11K at market, and its oracle answered 0; dashboards that value collateral with the oracle
showed 0 bad debt. Such a market is a finding of its own, with the debt at risk valued at look-through and at
market price, never a silent zero.
"""

from __future__ import annotations

from decimal import Decimal

from auditor import model
from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagContext
from auditor.numbers import usd


class OracleBlind(Detector):
    ID = "oracle-blind"
    SEVERITY = HIGH
    HELP = ("A lending market has debt outstanding while its oracle answers 0 or cannot be read: nothing can be "
            "liquidated, and any figure valued through that oracle shows no bad debt.")

    def detect(self, context: FlagContext) -> list[Finding]:
        universe, figures = context.universe, context.result.issuers
        owners = {key: issuer for issuer, sheet in universe.sheets.items() for key in sheet.token_keys}
        findings = []
        for market in sorted(universe.markets.values(), key=lambda m: m.key):
            if market.total_borrow_assets <= 0 or (market.oracle_price is not None and market.oracle_price > 0):
                continue
            collateral_key = model.token_key(market.chain, market.collateral_token)
            loan = universe.hard_assets.get(model.token_key(market.chain, market.loan_token))
            issuer = owners.get(collateral_key)
            issuer_figures = figures.get(issuer) if issuer else None
            look_through = (issuer_figures.backing_ratio * issuer_figures.par_usd
                            if issuer_figures is not None and issuer_figures.backing_ratio is not None else None)
            price = universe.market_prices.get(collateral_key)
            debt = Decimal(market.total_borrow_assets) / Decimal(10) ** market.loan_decimals
            debt_usd = debt * loan.price_usd if loan is not None else None
            posted = Decimal(sum(b.collateral for b in market.borrowers)) / Decimal(10) ** market.collateral_decimals

            risk_look_through = (market.shortfall_usd(loan.price_usd, look_through)
                                 if loan is not None and look_through is not None else None)
            risk_market = (market.shortfall_usd(loan.price_usd, price.price_usd)
                           if loan is not None and price is not None else None)
            says = "could not be read (it reverts or the node did not answer)" if market.oracle_price is None \
                else "answers 0"
            parts = [f"{usd(risk_look_through)} at risk at look-through value" if risk_look_through is not None
                     else "no look-through value (collateral has no spec)",
                     f"{usd(risk_market)} at market price" if risk_market is not None else "no market price"]
            findings.append(self.finding(
                issuer,
                f"market {market.key}: oracle {market.oracle} {says} while {usd(debt_usd)} is lent against "
                f"{posted} collateral tokens: {'; '.join(parts)}; a dashboard valuing it with the oracle shows no "
                "bad debt",
                {
                    "market": market.key,
                    "oracle": market.oracle,
                    "oracle_price_raw": market.oracle_price,
                    "debt_usd": debt_usd,
                    "debt_raw": market.total_borrow_assets,
                    "collateral_tokens": posted,
                    "look_through_usd": look_through,
                    "market_price_usd": price.price_usd if price is not None else None,
                    "at_risk_look_through_usd": risk_look_through,
                    "at_risk_market_usd": risk_market,
                },
            ))
        return findings
