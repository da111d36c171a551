"""ERC-20 balances of every relevant token for every issuer account; unknown tokens go through ERC-4626 unwrapping."""

from __future__ import annotations

from auditor.adapters import Collected, Scope, TokenInfo, adapter, decode_metadata, metadata_reads
from auditor.adapters.erc4626 import unwrap_vaults
from auditor.chain.plan import Plan, reads
from auditor.chain.reader import NO_CONTRACT, Read
from auditor.model import BALANCE, Position


@adapter("erc20")
def collect(scope: Scope) -> Plan[Collected]:
    out = Collected()
    tokens: list[TokenInfo] = sorted(scope.tokens.values(), key=lambda t: t.key)
    if not tokens or not scope.accounts:
        return out
    # Metadata and balances are independent: one round for both.
    balances = [Read(t.address, "balanceOf(address)", (a.address,)) for a in scope.accounts for t in tokens]
    addresses = [t.address for t in tokens]
    answers = yield from reads(balances + metadata_reads(addresses))
    results, metadata = answers[: len(balances)], decode_metadata(addresses, answers[len(balances):])
    for index, result in enumerate(results):
        account = scope.accounts[index // len(tokens)]
        token = tokens[index % len(tokens)]
        if not result.ok and result.error == NO_CONTRACT:
            # The token does not exist yet at this pin (a registry asset deployed later): nobody holds any.
            note = (f"{scope.chain}: no contract at {token.symbol or token.address} ({token.address}) at block "
                    f"{scope.block}: no balance")
            if note not in out.notes:
                out.notes.append(note)
            continue
        if not result.ok and token.discovered:
            # A token only the discovery scan found (airdropped spam among them) is worth 0 to the figures either
            # way: an unreadable balance is said, not a gap that would void the audit.
            note = (f"{scope.chain}: {token.address}, a token an issuer account moved, has no readable balance "
                    f"at block {scope.block} ({result.error}): counted nowhere")
            if note not in out.notes:
                out.notes.append(note)
            continue
        if not result.ok:
            out.gaps.append(scope.gap(result, f"balance of {token.symbol or token.address} held by {account.label}"))
            continue
        if result.one == 0:
            continue
        decimals, symbol, meta_results = metadata[token.address]
        if decimals is None and token.discovered:
            out.notes.append(f"{scope.chain}: {token.address}, a token an issuer account holds, has no decimals(): "
                             "counted nowhere")
            continue
        if decimals is None:
            if token.decimals is None:  # a guess would scale the amount by powers of ten: not a figure
                out.gaps.append(scope.gap(meta_results[0], f"decimals of {token.symbol or token.address}"))
                continue
            decimals = token.decimals
            out.notes.append(f"{scope.chain}: {token.address} has no decimals(); the registry's {decimals} used")
        out.positions.append(
            Position(
                chain=scope.chain,
                account=account.address,
                venue="erc20",
                kind=BALANCE,
                token=token.address,
                amount=result.one,
                decimals=decimals,
                symbol=symbol,
                details={"issuer": account.issuer, "label": account.label, "role": token.role},
                evidence=(scope.evidence(result), *(scope.evidence(r) for r in meta_results)),
            )
        )
    # Hard assets and issued tokens are valued directly; anything else may be a vault share.
    unknown = [p for p in out.positions if scope.tokens[p.token_key].role == "holding"]
    if unknown:
        known = [p for p in out.positions if p not in unknown]
        unwrapped, notes = yield from unwrap_vaults(scope, unknown)
        out.positions = known + unwrapped
        out.notes += notes
    return out
