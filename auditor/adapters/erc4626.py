"""ERC-4626 vault shares: convertToAssets at the pin, unwrapped recursively (a vault of a vault) to a depth limit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from auditor.adapters import Rate, Scope, rate, token_metadata
from auditor.chain.plan import Plan
from auditor.chain.plan import reads as plan_reads
from auditor.chain.reader import Read
from auditor.model import VAULT_SHARE, Market, Position, token_key


def unwrap_vaults(scope: Scope, positions: list[Position]) -> Plan[tuple[list[Position], list[str]]]:
    """Replace balances of vault shares by their underlying; positions that are not vaults pass unchanged.

    Unwrapping stops at a token the audit knows (hard asset or issued token: valued directly) or at
    the depth limit, which is noted so that a reader knows the value may be understated.
    """
    notes: list[str] = []
    current = positions
    done: list[Position] = []
    for depth in range(scope.vault_depth + 1):
        if not current:
            break
        if depth == scope.vault_depth:
            for position in current:
                notes.append(f"{scope.chain}: vault nesting deeper than {scope.vault_depth} at {position.token}; "
                             "the remaining shares are valued as an unknown token")
            done += current
            break
        reads: list[Read] = []
        for position in current:
            reads += [Read(position.token, "asset()", returns=("address",)),
                      Read(position.token, "convertToAssets(uint256)", (position.amount,))]
        results = yield from plan_reads(reads)
        underlying_tokens = sorted({results[2 * i].one for i in range(len(current))
                                    if results[2 * i].ok and results[2 * i + 1].ok})
        metadata = (yield from token_metadata(underlying_tokens)) if underlying_tokens else {}
        next_round: list[Position] = []
        for index, position in enumerate(current):
            asset, assets = results[2 * index], results[2 * index + 1]
            if not (asset.ok and assets.ok) or metadata.get(asset.one, (None,))[0] is None:
                done.append(position)  # not a vault: stays an unknown token
                continue
            decimals, symbol, meta_results = metadata[asset.one]
            assert decimals is not None
            path = [*position.details.get("vault_path", []), position.token]
            unwrapped = replace(
                position,
                venue="erc4626",
                kind=VAULT_SHARE,
                token=asset.one,
                amount=assets.one,
                decimals=decimals,
                symbol=symbol,
                details={**position.details, "vault_path": path,
                         "shares": position.details.get("shares", position.amount)},
                evidence=(*position.evidence, scope.evidence(asset), scope.evidence(assets),
                          *(scope.evidence(r) for r in meta_results)),
            )
            known = scope.tokens.get(token_key(scope.chain, asset.one))
            if known is not None and known.role in ("hard", "issued"):
                done.append(unwrapped)
            else:
                next_round.append(unwrapped)
        current = next_round
    return done, notes


@rate("erc4626")
def position_rate(position: Position, _markets: Mapping[str, Market], vaults: Mapping[str, Decimal]) -> Rate:
    """A vault share earns its share price's growth over the audit's window, when that was sampled."""
    path = position.details.get("vault_path") or []
    vault = path[0] if path and isinstance(path[0], str) else ""
    key = token_key(position.chain, vault) if vault else ""
    if key in vaults:
        return Rate(vaults[key], None, {"source": "share-price growth over the window", "vault": vault})
    return Rate(Decimal(0), None, {"source": "no share-price window given", "vault": vault})
