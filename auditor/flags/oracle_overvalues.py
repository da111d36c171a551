"""Oracle overvalues: a market's oracle prices issued collateral above what it is worth."""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal

from auditor import model
from auditor.adapters.morpho_blue import oracle_in_loan_tokens
from auditor.backing import BackingResult
from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagContext
from auditor.model import Universe
from auditor.numbers import PRECISION, usd


@dataclass(frozen=True)
class OracleReading:
    """What one lending market's oracle says an issued collateral is worth, against what it is worth."""

    market: model.Market
    issuer: str
    symbol: str
    oracle_usd: Decimal | None  # None: the market's oracle price was not read
    look_through_usd: Decimal
    market_price: model.MarketPrice | None
    debt_usd: Decimal
    hidden_bad_debt_usd: Decimal  # sum over borrowers of debt beyond their collateral at look-through

    @property
    def deviation(self) -> Decimal | None:
        """Oracle over look-through value, minus 1; None when either is missing or the value is 0 (unbounded)."""
        if self.oracle_usd is None or self.look_through_usd <= 0:
            return None
        return self.oracle_usd / self.look_through_usd - 1


def oracle_readings(universe: Universe, result: BackingResult) -> list[OracleReading]:
    """Every market that lends a hard asset against an issued token, with its oracle in USD per whole token."""
    readings = []
    owners = {key: issuer for issuer, sheet in universe.sheets.items() for key in sheet.token_keys}
    with decimal.localcontext(decimal.Context(prec=PRECISION)):
        for market in sorted(universe.markets.values(), key=lambda m: m.key):
            issuer = owners.get(model.token_key(market.chain, market.collateral_token))
            loan = universe.hard_assets.get(model.token_key(market.chain, market.loan_token))
            figures = result.issuers.get(issuer) if issuer else None
            if issuer is None or figures is None or loan is None or figures.backing_ratio is None:
                continue
            oracle_usd = None if market.oracle_price is None else oracle_in_loan_tokens(
                market.oracle_price, market.loan_decimals, market.collateral_decimals) * loan.price_usd
            look_through_usd = figures.backing_ratio * figures.par_usd
            loan_unit = Decimal(10) ** market.loan_decimals
            bad_debt_usd = market.shortfall_usd(loan.price_usd, look_through_usd)
            debt_usd = sum((Decimal(b.debt) for b in market.borrowers), Decimal(0)) / loan_unit * loan.price_usd
            readings.append(OracleReading(
                market, issuer, figures.symbol or issuer, oracle_usd, look_through_usd,
                universe.market_prices.get(model.token_key(market.chain, market.collateral_token)), debt_usd,
                bad_debt_usd))
    return readings


class OracleOvervalues(Detector):
    ID = "oracle-overvalues"
    SEVERITY = HIGH
    HELP = ("A lending market's oracle prices an issued collateral above its look-through value or its market "
            "price, so loans that are already bad are not liquidated.")

    def detect(self, context: FlagContext) -> list[Finding]:
        findings = []
        for reading in oracle_readings(context.universe, context.result):
            # Nothing lent, nothing hidden: an unused market's oracle cannot shelter bad debt.
            if reading.oracle_usd is None or reading.debt_usd <= 0:
                continue
            market, market_price = reading.market, reading.market_price
            thin = market_price is not None and market_price.thin(context.config.thin_pool_usd)
            # A thin pool's price can be moved cheaply: it never vouches for an oracle, it is only shown.
            # Spot or TWAP, whichever is lower: a trade in the pinned block cannot lift the truth an oracle is held to.
            truths = [reading.look_through_usd] + ([market_price.steady_usd] if market_price and not thin else [])
            if reading.oracle_usd <= max(truths) * (1 + context.config.oracle_tolerance):
                continue
            against = (f"market price {market_price.shown(context.config.thin_pool_usd)}" if market_price
                       else "no market price")
            findings.append(
                self.finding(
                    reading.issuer,
                    f"market {market.key} prices {reading.symbol} at {usd(reading.oracle_usd)}; "
                    f"look-through value {usd(reading.look_through_usd)}, {against}; the oracle hides "
                    f"{usd(reading.hidden_bad_debt_usd)} of bad debt on {usd(reading.debt_usd)} lent",
                    {
                        "market": market.key,
                        "oracle": market.oracle,
                        "oracle_price_raw": market.oracle_price,
                        "oracle_price_usd": reading.oracle_usd,
                        "look_through_usd": reading.look_through_usd,
                        "deviation": reading.deviation,
                        "market_price_usd": market_price.price_usd if market_price else None,
                        "market_price_source": market_price.source if market_price else None,
                        "market_price_thin": thin,
                        "market_twap_usd": market_price.twap_usd if market_price else None,
                        "market_twap_why": market_price.twap_why if market_price else None,
                        "market_depth_2pct_usd": market_price.sellable_usd(model.THIN_DROP) if market_price else None,
                        "collateral_raw": sum(b.collateral for b in market.borrowers),
                        "debt_usd": reading.debt_usd,
                        "hidden_bad_debt_usd": reading.hidden_bad_debt_usd,
                    },
                )
            )
        return findings
