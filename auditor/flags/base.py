"""What every flag is made of: its thresholds, what it sees, and the Detector base class."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from auditor.backing import BackingResult
from auditor.findings import SEVERITY_ORDER, Finding, Severity
from auditor.model import Universe

HIGH, MEDIUM, LOW, INFO = Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO
SEVERITIES = SEVERITY_ORDER  # most severe first: findings are sorted in this order


@dataclass(frozen=True)
class FlagConfig:
    """Thresholds of the flags; every default is stated here and nowhere else."""

    under_backed_threshold: Decimal = Decimal("0.95")  # backing ratio below this is under-backed
    opacity_threshold: Decimal = Decimal("0.2")  # share of claimed assets not visible on chain
    benchmark_lending_rate: Decimal = Decimal("0.05")  # what a plain stablecoin loan earns
    yield_margin: Decimal = Decimal("2")  # claimed APY above benchmark * margin is unsustainable
    concentration_threshold: Decimal = Decimal("0.5")  # one holder owning more than this share of supply
    # Circular backing below this share of supply is numerical noise of the iteration (tolerance-sized).
    min_circular_share: Decimal = Decimal("0.000001")
    ignored_holders: frozenset[str] = field(default_factory=frozenset)  # e.g. bridge escrows (lowercase)
    oracle_tolerance: Decimal = Decimal("0.05")  # an oracle more than 5% above the truth overvalues collateral
    unexplained_yield_margin: Decimal = Decimal("0.02")  # claimed APY above what the chain explains, plus this
    oracle_frozen_threshold: Decimal = Decimal("0.05")  # the truth moved more than this while the oracle did not
    oracle_still_tolerance: Decimal = Decimal("0.001")  # an oracle moving less than this counts as not moving
    # Unexplained inflows at or above this share of verifiable backing are material: the flag is high and the
    # audit is incomplete (its backing a bound, "at most").
    unexplained_inflow_materiality: Decimal = Decimal("0.01")
    # A pool that fetches less than this (USD) for what sells before its price falls 2% is thin: its price is
    # shown as such wherever a flag uses it, never trusted silently.
    thin_pool_usd: Decimal = Decimal("100000")


DEFAULT_CONFIG = FlagConfig()


@dataclass(frozen=True)
class FlagContext:
    universe: Universe
    result: BackingResult
    config: FlagConfig
    oracle_watches: tuple[Any, ...] = ()  # auditor.oracles.OracleWatch: oracle and truth samples over a window
    vault_apys: dict[str, Decimal] = field(default_factory=dict)  # vault token key -> share-price APY


class Detector:
    """Base of every flag: metadata in class constants, one `detect` method."""

    ID: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    HELP: ClassVar[str]

    def detect(self, context: FlagContext) -> list[Finding]:
        raise NotImplementedError

    def finding(self, issuer: str | None, message: str, evidence: dict[str, Any]) -> Finding:
        return Finding(self.ID, self.SEVERITY, issuer, message, evidence)
