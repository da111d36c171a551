"""Oracle frozen: a lending oracle that did not move while the truth did."""

from __future__ import annotations

from collections.abc import Sequence

from auditor.findings import Finding
from auditor.flags.base import HIGH, Detector, FlagContext
from auditor.numbers import exact, percent, tokens
from auditor.oracles import (
    OracleWatch,
    _move_dict,
    _series,
    frozen_oracles,
)


class OracleFrozen(Detector):
    ID = "oracle-frozen"
    SEVERITY = HIGH
    HELP = ("A lending market's oracle did not move across the sampled blocks while the collateral's market price "
            "or look-through value did: its loans are not liquidated when they should be.")

    def __init__(self, watches: Sequence[OracleWatch] | None = None) -> None:
        # run_flags builds detectors without arguments: the samples then come attached to the context.
        self.watches = watches

    def detect(self, context: FlagContext) -> list[Finding]:
        watches = self.watches if self.watches is not None else _attached_watches(context)
        if not watches:
            return []
        threshold, still = context.config.oracle_frozen_threshold, context.config.oracle_still_tolerance
        owners = {key: issuer for issuer, sheet in context.universe.sheets.items() for key in sheet.token_keys}
        findings = []
        for frozen in frozen_oracles(watches, threshold=threshold, still_tolerance=still):
            watch, move = frozen.watch, frozen.truth_move
            issuer = owners.get(watch.collateral)
            symbol = context.universe.sheets[issuer].symbol if issuer else watch.collateral
            held = exact(frozen.oracle.first)
            if watch.oracle_to_usd is not None:
                held = f"{tokens(frozen.oracle.first * watch.oracle_to_usd)} USD"
            pool = context.universe.market_prices.get(watch.collateral)
            thin = pool is not None and frozen.truth == "market price" and pool.thin(context.config.thin_pool_usd)
            findings.append(self.finding(
                issuer,
                f"market {watch.market}: oracle {watch.oracle} held {symbol} at {held} across blocks "
                f"{frozen.oracle.first_block}..{frozen.oracle.last_block} "
                f"(moved {percent(frozen.oracle.relative)}) "
                f"while its {frozen.truth} moved {percent(move.relative)} "
                f"({tokens(move.first)} -> {tokens(move.last)})"
                + (f"; the market price is a thin pool's ({pool.shown(context.config.thin_pool_usd)})"
                   if thin and pool is not None else ""),
                {
                    "market": watch.market,
                    "oracle": watch.oracle,
                    "collateral": watch.collateral,
                    "oracle_move": frozen.oracle.relative,
                    "oracle_price_raw": str(int(frozen.oracle.first)),
                    "oracle_price_usd": None if watch.oracle_to_usd is None
                    else frozen.oracle.first * watch.oracle_to_usd,
                    "truth": frozen.truth,
                    "truth_move": move.relative,
                    "market_price": _move_dict(frozen.market_price),
                    "market_price_source": watch.market_price_source or None,
                    "market_price_thin": thin,
                    "look_through": _move_dict(frozen.look_through),
                    "threshold": threshold,
                    "still_tolerance": still,
                    "samples": {"oracle": _series(watch.oracle_prices), "market_price": _series(watch.market_prices),
                                "look_through": _series(watch.look_through)},
                },
            ))
        return findings


def _attached_watches(context: FlagContext) -> Sequence[OracleWatch]:
    """Watches the audit attached as `oracle_watches`: on the context first, else on the universe."""
    for holder in (context, context.universe):
        value = getattr(holder, "oracle_watches", None)
        if value is not None:
            return [w for w in value if isinstance(w, OracleWatch)]
    return []
