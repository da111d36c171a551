"""Risk flags over solved backing figures: small detector classes, each returning findings with their evidence."""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor import model
from auditor.backing import BackingResult, IssuerFigures
from auditor.detector import DEFAULT_CONFIG, HIGH, INFO, MEDIUM, SEVERITIES, Detector, FlagConfig, FlagContext
from auditor.findings import Finding
from auditor.model import Universe
from auditor.numbers import PRECISION, apy, multiple, percent, tokens, usd


def _material(figures: IssuerFigures, usd: Decimal, config: FlagConfig) -> bool:
    if usd <= 0:
        return False
    if figures.supply_usd > 0:
        return usd / figures.supply_usd >= config.min_circular_share
    return usd >= Decimal("0.01")


class CircularDependency(Detector):
    ID = "circular-dependency"
    SEVERITY = HIGH
    HELP = "The issuer is on a cycle of tokens backing each other, and the cycle carries part of its backing."

    def detect(self, context: FlagContext) -> list[Finding]:
        findings = []
        for issuer, f in context.result.issuers.items():
            cycle = context.result.cycle_of(issuer)
            if cycle is None or len(cycle.issuers) < 2:
                continue  # a self-loop carries no value (own tokens are worth 0): self-issued-collateral covers it
            # Two measures: the fixed-point gap (backing that exists only if the cycle is taken at its word),
            # and the cycle gap (what the cycle's tokens add to this issuer if they were worth par). A closed
            # loop shows in the first; an open one like xUSD/deUSD has a unique fixed point and shows in the second.
            circular = _material(f, f.circular_backing_usd, context.config)
            gap = _material(f, f.cycle_gap_usd, context.config)
            # Every member of a cycle that carries value is on it, even one whose own backing the cycle does not
            # move (xUSD at zero backing after the loss still props up deUSD): one verdict per cycle.
            carried = _material(f, cycle.circular_backing_usd + cycle.cycle_gap_usd, context.config)
            if not (circular or gap or carried):
                continue
            propped = usd(f.verifiable_backing_usd + f.cycle_gap_usd)
            message = (
                f"{issuer} is on the cycle {' -> '.join(cycle.issuers)}: verifiable backing "
                f"{usd(f.verifiable_backing_usd)}, {propped} if its cycle's tokens were worth par"
            )
            if circular:
                message += f"; {usd(f.circular_backing_usd)} exists only if the cycle is taken at its word"
            if not (circular or gap):
                message += (f"; the cycle props up {usd(cycle.circular_backing_usd + cycle.cycle_gap_usd)} of its "
                            "other members' backing")
            findings.append(
                self.finding(
                    issuer,
                    message,
                    {
                        "cycle": list(cycle.issuers),
                        "verifiable_backing_usd": f.verifiable_backing_usd,
                        "claimed_backing_usd": f.claimed_backing_usd,
                        "backing_at_par_usd": f.backing_at_par_usd,
                        "circular_backing_usd": f.circular_backing_usd,
                        "cycle_gap_usd": f.cycle_gap_usd,
                        "cycle_total_circular_backing_usd": cycle.circular_backing_usd,
                        "cycle_total_gap_usd": cycle.cycle_gap_usd,
                    },
                )
            )
        return findings


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


class UnderBacked(Detector):
    ID = "under-backed"
    SEVERITY = HIGH
    HELP = "Verifiable backing covers less of the supply than the threshold."

    def detect(self, context: FlagContext) -> list[Finding]:
        threshold = context.config.under_backed_threshold
        findings = []
        for issuer, f in context.result.issuers.items():
            if f.backing_ratio is None or f.backing_ratio >= threshold:
                continue
            bound = "" if context.result.converged else " (a lower bound: the solver did not converge)"
            findings.append(
                self.finding(
                    issuer,
                    f"{issuer} is {percent(f.backing_ratio)} backed{bound}: "
                    f"{usd(f.verifiable_backing_usd)} verifiable "
                    f"for {usd(f.supply_usd)} of supply",
                    {
                        "backing_ratio": f.backing_ratio,
                        "threshold": threshold,
                        "verifiable_backing_usd": f.verifiable_backing_usd,
                        "supply_usd": f.supply_usd,
                        "expansion_ratio": f.expansion_ratio,
                        "converged": context.result.converged,
                    },
                )
            )
        return findings


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


class UnsustainableYield(Detector):
    ID = "unsustainable-yield"
    SEVERITY = MEDIUM
    HELP = "Claimed APY exceeds the benchmark lending rate by more than the configured margin."

    def detect(self, context: FlagContext) -> list[Finding]:
        config = context.config
        limit = config.benchmark_lending_rate * config.yield_margin
        findings = []
        for issuer, f in context.result.issuers.items():
            if f.claimed_apy is None or f.claimed_apy <= limit:
                continue
            findings.append(
                self.finding(
                    issuer,
                    f"{issuer} claims {apy(f.claimed_apy)}, "
                    f"more than {multiple(config.yield_margin)} "
                    f"the benchmark lending rate {percent(config.benchmark_lending_rate)}",
                    {
                        "claimed_apy": f.claimed_apy,
                        "benchmark_lending_rate": config.benchmark_lending_rate,
                        "margin": config.yield_margin,
                        "limit": limit,
                    },
                )
            )
        return findings


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


class NotConverged(Detector):
    ID = "not-converged"
    SEVERITY = INFO
    HELP = "The solver stopped at its iteration cap: verifiable figures are lower bounds, claimed ones upper bounds."

    def detect(self, context: FlagContext) -> list[Finding]:
        result = context.result
        if result.converged:
            return []
        return [
            self.finding(
                None,
                f"backing ratios did not converge within {result.max_iterations} iterations",
                {
                    "iterations": result.iterations,
                    "max_change": format(result.max_change, "f"),
                    "tolerance": format(result.tolerance, "f"),
                },
            )
        ]


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
            # Morpho's oracle: loan units per collateral unit, times 1e36; per whole token in USD below.
            oracle_usd = None if market.oracle_price is None else (
                Decimal(market.oracle_price) / Decimal(10) ** 36
                * Decimal(10) ** (market.collateral_decimals - market.loan_decimals) * loan.price_usd)
            look_through_usd = figures.backing_ratio * figures.par_usd
            loan_unit = Decimal(10) ** market.loan_decimals
            bad_debt_usd = sum(
                (max(Decimal(0), Decimal(b.debt) / loan_unit * loan.price_usd
                     - Decimal(b.collateral) / Decimal(10) ** market.collateral_decimals * look_through_usd)
                 for b in market.borrowers),
                Decimal(0),
            )
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
            truths = [reading.look_through_usd] + ([market_price.price_usd] if market_price else [])
            if reading.oracle_usd <= max(truths) * (1 + context.config.oracle_tolerance):
                continue
            against = f"market price {usd(market_price.price_usd)}" if market_price else "no market price"
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
                        "collateral_raw": sum(b.collateral for b in market.borrowers),
                        "debt_usd": reading.debt_usd,
                        "hidden_bad_debt_usd": reading.hidden_bad_debt_usd,
                    },
                )
            )
        return findings


DETECTORS: tuple[type[Detector], ...] = (
    CircularDependency,
    SelfIssuedCollateral,
    UnderBacked,
    Opacity,
    UnsustainableYield,
    Concentration,
    OracleOvervalues,
    NoSupply,
    NotConverged,
)


def all_detectors() -> tuple[type[Detector], ...]:
    """Every flag, including those whose modules import this one (so they cannot be listed above)."""
    from auditor.oracles import OracleFrozen
    from auditor.yields import UnexplainedYield

    return (*DETECTORS, UnexplainedYield, OracleFrozen)


def flag_ids() -> tuple[str, ...]:
    """The id of every flag, as policies and the report name them."""
    return tuple(sorted(detector.ID for detector in all_detectors()))


def run_flags(
    universe: Universe,
    result: BackingResult,
    config: FlagConfig = DEFAULT_CONFIG,
    detectors: Sequence[type[Detector]] | None = None,
    *,
    oracle_watches: Sequence[Any] = (),
    vault_apys: dict[str, Decimal] | None = None,
) -> list[Finding]:
    """Run every detector; findings most severe first, then by flag id and issuer."""
    detectors = all_detectors() if detectors is None else detectors
    context = FlagContext(universe, result, config, tuple(oracle_watches), vault_apys or {})
    findings: list[Finding] = []
    with decimal.localcontext(decimal.Context(prec=PRECISION)):
        for detector in detectors:
            findings.extend(detector().detect(context))
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.id, f.issuer or ""))
