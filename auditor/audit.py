"""Run an audit: load specs, connect and pin every chain, read balance sheets, solve backing, raise flags."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from auditor import __version__
from auditor.chain.evidence import Bundle
from auditor.chain.reader import ConnectOptions, connect
from auditor.chain.rpc import ConfigError
from auditor.findings import AuditResult, Skipped, plain
from auditor.model import BalanceSheet, Gap, Market, Position, token_key
from auditor.spec import Registry, Spec, load_spec, spec_ids_near, specs_in

Say = Callable[[str], None]


@dataclass
class AuditRequest:
    spec: Spec
    registry: Registry
    options: ConnectOptions = field(default_factory=ConnectOptions)
    specs: dict[str, Spec] = field(default_factory=dict)  # every known spec; default: those beside `spec`


# Specs beside an audited one, parsed once per process for a given folder state and registry: a run of N audits
# from one folder (publish, history, a Dask worker) would otherwise parse N x N files.
_BESIDE: dict[tuple[str, str, tuple[tuple[str, str], ...]], dict[str, Spec]] = {}
_BESIDE_MAX = 32


def known_specs(spec: Spec, registry: Registry) -> dict[str, Spec]:
    """The audited spec plus every spec beside it: tokens with a spec are recognised wherever they turn up."""
    folder = Path(spec.path).parent
    paths = specs_in(folder)
    stamp = tuple((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths)  # content, not mtime
    key = (str(folder.resolve()), hashlib.sha256(repr(registry).encode()).hexdigest(), stamp)
    beside = _BESIDE.get(key)
    if beside is None:
        ids = spec_ids_near(paths)
        beside = {path.stem: load_spec(path, registry, ids) for path in paths if path.stem != spec.id}
        if spec.id in {path.stem for path in paths}:
            beside[spec.id] = spec
        if len(_BESIDE) >= _BESIDE_MAX:
            _BESIDE.clear()
        _BESIDE[key] = beside
    return {spec.id: spec, **{name: other for name, other in beside.items() if name != spec.id}}


def run_audit(request: AuditRequest, say: Say | None = None) -> AuditResult:
    """Read everything at the pins and return the typed verdict with its findings document.

    A read the figures need that failed makes the audit incomplete (its gaps are listed, the figures are not
    the audit's result); an optional check that could not run (oracle sampling, the exposure map) is listed as
    not evaluated and never voids the figures.
    """
    from auditor.backing import solve
    from auditor.bridges import oft_meshes
    from auditor.flags import run_flags
    from auditor.flags.oracle_overvalues import oracle_readings
    from auditor.ledger import build_universe, chains_needed, issuers_in_audit

    specs = request.specs or known_specs(request.spec, request.registry)
    root = request.spec.id
    names = chains_needed(specs, issuers_in_audit(root, specs))
    missing = [n for n in names if n not in request.registry.chains]
    if missing:
        raise ConfigError(f"chains {missing} are not in the registry {request.registry.path}")
    if say:
        say(f"connecting to {', '.join(names)} and pinning blocks")
    clients = connect({n: request.registry.chains[n] for n in names}, request.options)
    # Copies of issued tokens on chains a spec does not list (LayerZero OFT meshes) join the deployments first.
    specs, meshes, mesh_gaps = oft_meshes(
        specs, issuers_in_audit(root, specs), request.registry, clients,
        lambda more: connect({n: request.registry.chains[n] for n in more}, request.options))
    # The exposure map's reads go out in the same rounds as the balance sheets; it is valued after the solve.
    exposure_reads: dict[tuple[str, ...], Any] = {}
    universe, notes = build_universe(root, specs, request.registry, clients, progress=say,
                                     also=exposure_plans(request.spec, request.registry, clients),
                                     also_results=exposure_reads)
    universe.gaps += mesh_gaps
    universe.bridges = meshes
    # Markets that lend against the token without the issuer in them still need their oracles checked.
    for found, error in exposure_reads.values():
        if error is None:
            for key, market in found.markets.items():
                universe.markets.setdefault(key, market)
    # The optional samples at past blocks read before the solve, in rounds of their own at earlier blocks of
    # each pinned chain (one batch per round per chain): after the solve, nothing reads.
    watches, apys, skipped = sample_window(request, clients, universe, say)
    for client in clients.values():
        client.check_pin()
    if say:
        say("solving look-through backing for " + ", ".join(sorted(universe.sheets)))
    backing = solve(universe)
    exposure, exposure_error = exposure_section(request.spec, exposure_reads, backing)
    if exposure_error:
        skipped.append(Skipped("exposure", exposure_error))
    flags = run_flags(universe, backing, oracle_watches=watches, vault_apys=apys)
    from auditor.yields import yield_sources

    yields = {issuer: yield_sources(universe, backing, issuer, vault_apys=apys) for issuer in sorted(universe.sheets)}
    counterparties = universe.counterparties
    result = AuditResult(spec=root, token=request.spec.token.symbol, backing=backing, flags=flags,
                         gaps=merge_gaps(universe.gaps, clients.values()), skipped=skipped,
                         exposure=exposure, oracles=oracle_readings(universe, backing),
                         coverage={issuer: counterparties.coverage_of(issuer) for issuer in sorted(universe.sheets)})
    backing_doc = backing.as_dict()
    for issuer, figures in backing_doc["issuers"].items():
        figures["complete"] = result.complete  # a figure from an incomplete audit is a bound, never the result
        figures["bound"] = result.bound(issuer)  # "at most" when money came in that the audit cannot explain
        figures["coverage"] = result.coverage[issuer]
    result.document = {
        "tool": {"name": "reserve-auditor", "version": __version__},
        "spec": root,
        "token": request.spec.token.symbol,
        **result.completeness(),
        # How each chain's answers were tied to its pin: "multicall" (every batch proved the block it ran at)
        # or "none" (the node's word only: direct calls, or a chain whose block.number is another chain's).
        "pins": {name: {**client.pinned.as_dict(), "block_proof": client.block_proof}
                 for name, client in sorted(clients.items())},
        "issuers": {issuer: sheet_dict(sheet) for issuer, sheet in sorted(universe.sheets.items())},
        "markets": {key: market_dict(m) for key, m in sorted(universe.markets.items())},
        "hard_assets": {k: {"symbol": a.symbol, "price_usd": a.price_usd, "source": a.price_source}
                        for k, a in sorted(universe.hard_assets.items())},
        "backing": backing_doc,
        "flags": [f.as_dict() for f in flags],
        "exposure": exposure,
        "yields": yields,
        "oracle_samples": {"window_blocks": ORACLE_WINDOW_BLOCKS, "samples": ORACLE_SAMPLES,
                           "markets": len(watches)},
        "counterparties": counterparties.as_dict(),
        "layerzero": [mesh.as_dict() for mesh in meshes],
        "liquidity": liquidity_section(universe),
        "notes": notes,
    }
    # Request counts depend on the cache, not on the chain: run metadata, outside the signed findings.
    result.requests = {name: client.stats.as_dict() for name, client in sorted(clients.items())}
    result.document = plain(result.document)
    return result


def liquidity_section(universe: Any) -> list[dict[str, Any]]:
    """Per token a registry pool prices with known exit maths: what sells before each price drop, next to what
    lending markets hold of it as collateral and what the audited accounts hold."""
    out = []
    for key, price in sorted(universe.market_prices.items()):
        if not price.depth:
            continue
        posted, markets = universe.collateral_posted(key)
        out.append({"token": key, "pool": price.source, "price_usd": price.price_usd, "twap_usd": price.twap_usd,
                    "twap_why": price.twap_why,
                    "exit": [point.as_dict() for point in price.depth], "posted_as_collateral_tokens": posted,
                    "lending_markets": sorted(m.key for m in markets),
                    "held_by_audited_accounts_raw": sum(a for _h, a in universe.holders.get(key, []))})
    return out


def merge_gaps(found: Iterable[Gap], clients: Iterable[Any]) -> list[Gap]:
    """The balance sheets' gaps, then every read a client could not get that no gap names already."""
    gaps = list(found)
    named = {gap.what.rsplit(": ", 1)[-1] for gap in gaps}
    for client in clients:
        for unread in client.unread:
            if unread.call not in named:
                named.add(unread.call)
                gaps.append(Gap(unread.chain, unread.block, unread.call, unread.reason))
    return gaps


ORACLE_WINDOW_BLOCKS = 50_400  # ~7 days of 12 s blocks: long enough for a frozen oracle to show
ORACLE_SAMPLES = 6


def sample_window(request: AuditRequest, clients: Mapping[str, Any], universe: Any, say: Say | None
                  ) -> tuple[list[Any], dict[str, Decimal], list[Skipped]]:
    """The optional checks' samples over the window before each pin: oracle and pool prices (oracle-frozen)
    and ERC-4626 share prices (unexplained-yield), every chain's in the same rounds.

    Optional: old state is often pruned (non-archive nodes keep ~128 blocks), so a read the node could not
    answer makes its check "not evaluated" with the reason, never a figure and never the audit's end.
    """
    from auditor.chain.plan import at_block, gather, optional, run_plans
    from auditor.model import VAULT_SHARE
    from auditor.oracles import sample_blocks, sample_markets, watch_markets
    from auditor.yields import sample_share_price, share_price_apy

    vaults = sorted({(p.chain, p.details["vault_path"][0]) for sheet in universe.sheets.values()
                     for p in sheet.positions if p.kind == VAULT_SHARE and p.details.get("vault_path")})
    plans: dict[tuple[str, ...], Any] = {}
    if universe.markets:
        if say:
            say(f"sampling oracle and pool prices at {ORACLE_SAMPLES} blocks of the last {ORACLE_WINDOW_BLOCKS}")
        for name, client in sorted(clients.items()):
            pin = client.pinned.number
            blocks = sample_blocks(max(0, pin - ORACLE_WINDOW_BLOCKS), pin, ORACLE_SAMPLES)
            plans[("oracles", name)] = (client, optional(sample_markets(universe, request.registry, name, blocks)))
    if vaults and say:
        say(f"sampling the share price of {len(vaults)} vault(s) over the last {ORACLE_WINDOW_BLOCKS} blocks")
    for chain, vault in vaults:
        client = clients[chain]
        pin = client.pinned.number
        start = max(0, pin - ORACLE_WINDOW_BLOCKS)
        plans[("vault", chain, vault)] = (client, optional(gather(
            at_block(start, sample_share_price(chain, vault, start, client.multicall)),
            sample_share_price(chain, vault, pin, client.multicall))))
    found = run_plans(plans)
    skipped: list[Skipped] = []
    sampled: dict[str, Any] = {}
    failure = ""
    short: set[str] = set()  # chains whose node answered nothing at some sampled block
    for key, (value, error) in found.items():
        if key[0] != "oracles":
            continue
        unavailable = [] if error else value[0].unavailable + value[1].unavailable
        if unavailable:
            short.add(key[1])
        if error or unavailable:
            failure = failure or (f"oracle sampling failed: {error}" if error else
                                  f"{len(unavailable)} sampled reads failed, first: {unavailable[0]}")
        else:
            sampled[key[1]] = value
    watches = [] if failure else list(watch_markets(universe, sampled))
    apys: dict[str, Decimal] = {}
    why = ""
    for key, (value, error) in found.items():
        if key[0] != "vault" or why:
            continue
        chain, vault = key[1], key[2]
        if error:
            why = f"vault share-price sampling failed: {error}"
            continue
        first, last = value
        if first.unavailable or last.unavailable:
            short.add(chain)
        apy = share_price_apy(first, last)
        if apy is None:
            why = f"no share-price growth for vault {vault} on {chain}: {first.error or last.error}"
            continue
        apys[token_key(chain, vault)] = apy
    # Old state the node did not have: say how far back it keeps state, so the reader knows what to change.
    state_from = state_horizon({chain: clients[chain] for chain in short}) if short else {}
    if failure:
        skipped.append(Skipped("oracle-frozen", failure + horizon_text(state_from, clients), state_from))
    if why:
        skipped.append(Skipped("unexplained-yield", why + horizon_text(state_from, clients), state_from))
        apys = {}
    return watches, apys, skipped


STATE_PROBES = 17  # blocks pin - 2**k, k < 17: reaches 65,536 blocks back, past the oracle window


def state_horizon(clients: Mapping[str, Any]) -> dict[str, int | None]:
    """Per chain, the oldest block at pin - 2**k (k = 0..16) from which the node still answers, when every newer
    probe answers too; None when even the block before the pin has no state. One request per chain."""
    from auditor.chain.plan import at_block, gather, optional, reads, run_plans
    from auditor.chain.reader import Read

    plans = {}
    probes: dict[str, list[int]] = {}
    for name, client in clients.items():
        pin = client.pinned.number
        probes[name] = sorted({max(0, pin - 2**k) for k in range(STATE_PROBES)}, reverse=True)
        plans[name] = (client, optional(gather(*(
            at_block(block, reads([Read(client.multicall, "getBlockNumber()")])) for block in probes[name]))))
    answers = run_plans(plans)
    out: dict[str, int | None] = {}
    for name, (found, error) in answers.items():
        oldest: int | None = None
        if error is None:
            for block, (result,) in zip(probes[name], found, strict=True):
                if result.unavailable:
                    break
                oldest = block
        out[name] = oldest
    return out


def horizon_text(state_from: Mapping[str, int | None], clients: Mapping[str, Any]) -> str:
    parts = []
    for chain, oldest in sorted(state_from.items()):
        pin = clients[chain].pinned.number
        parts.append(f"{chain}: no state even one block before the pin" if oldest is None else
                     f"{chain}: state from block {oldest} ({pin - oldest} blocks before the pin) on")
    return ("; the node keeps too little old state (" + "; ".join(parts) + "): use an archive node for the "
            f"{ORACLE_WINDOW_BLOCKS}-block window") if parts else ""


def exposure_plans(spec: Spec, registry: Registry, clients: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """The exposure map's reads on every chain where the token has supply and a lending venue, as plans.

    Optional: a chain error inside one is its result (the map is then listed as not evaluated), never the end
    of the audit."""
    from auditor.adapters import Scope
    from auditor.chain.plan import optional
    from auditor.exposure import exposure_reads, lending_venues

    plans: dict[tuple[str, ...], Any] = {}
    for deployment in spec.token.deployments:
        chain = deployment.chain
        if chain not in clients or not lending_venues(registry, chain):
            continue
        scope = Scope(chain, clients[chain], registry, [], {})
        plans[("exposure", chain)] = (clients[chain], optional(exposure_reads(deployment.address, scope, {})))
    return plans


def exposure_section(spec: Spec, reads: Mapping[tuple[str, ...], Any], backing: Any) -> tuple[dict[str, Any], str]:
    """Who lends against the audited token, per chain, valued at its look-through value (pure); or why not."""
    from auditor.model import token_key

    figures = backing.issuers.get(spec.id)
    value = None if figures is None or figures.backing_ratio is None else figures.backing_ratio * figures.par_usd
    out: dict[str, Any] = {}
    for (_kind, chain), (found, error) in sorted(reads.items()):
        if error is not None:
            return {}, str(error)
        deployment = next(d for d in spec.token.deployments if d.chain == chain)
        out[chain] = found.document({token_key(chain, deployment.address): value} if value is not None else {})
    return out, ""


def position_dict(position: Position) -> dict[str, Any]:
    return {
        "chain": position.chain,
        "account": position.account,
        "venue": position.venue,
        "kind": position.kind,
        "token": position.token,
        "symbol": position.symbol,
        "amount_raw": str(position.amount),
        "amount": str(Decimal(position.amount) / Decimal(10) ** position.decimals),
        "decimals": position.decimals,
        "details": plain(position.details),
        "evidence": [e.as_dict() for e in position.evidence],
    }


def sheet_dict(sheet: BalanceSheet) -> dict[str, Any]:
    return {
        "symbol": sheet.symbol,
        "par_usd": str(sheet.par_usd),
        "supply": {
            "tokens": str(sheet.supply.tokens),
            "deployments": [
                {"chain": d.chain, "address": d.address, "bridged": d.bridged, "decimals": d.decimals,
                 "total_supply_raw": str(d.total_supply), "escrowed_raw": str(d.escrowed),
                 "symbol_onchain": d.symbol_onchain}
                for d in sheet.supply.deployments
            ],
        },
        "positions": [position_dict(p) for p in sheet.positions],
        "offchain": [{"label": o.label, "usd": str(o.usd)} for o in sheet.offchain],
        "claimed_assets_usd": None if sheet.claimed_assets_usd is None else str(sheet.claimed_assets_usd),
        "claimed_apy": None if sheet.claimed_apy is None else str(sheet.claimed_apy),
        "notes": sheet.notes,
    }


def market_dict(market: Market) -> dict[str, Any]:
    return {
        "chain": market.chain,
        "venue": market.venue,
        "loan_token": market.loan_token,
        "collateral_token": market.collateral_token,
        "total_supply_assets_raw": str(market.total_supply_assets),
        "total_borrow_assets_raw": str(market.total_borrow_assets),
        "idle_raw": str(market.idle),
        "lltv": str(Decimal(market.lltv) / Decimal(10**18)),
        "oracle": market.oracle,
        "oracle_price_raw": None if market.oracle_price is None else str(market.oracle_price),
        "borrowers": [{"address": b.address, "debt_raw": str(b.debt), "collateral_raw": str(b.collateral)}
                      for b in market.borrowers],
        "details": plain(market.details),
    }


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ConfigError(f"{what} expects CHAIN=VALUE, got {value!r}")
        out[name.strip()] = rest.strip()
    return out


def require_nodes(specs: Iterable[Spec], registry: Registry, rpc: Mapping[str, str],
                  blocks: Mapping[str, object] = {}) -> None:
    """Bad input before any work: --rpc or --block naming a chain the registry lacks, or a chain an audit needs
    without a usable RPC URL (ConfigError, exit 2), rather than every audit failing one by one."""
    from auditor.chain.reader import rpc_url
    from auditor.ledger import chains_needed, issuers_in_audit

    for option, names in (("--rpc", rpc), ("--block", blocks)):
        unknown = sorted(set(names) - set(registry.chains))
        if unknown:
            raise ConfigError(f"{option} names chains the registry {registry.path} lacks: {', '.join(unknown)} "
                              f"(it has {', '.join(sorted(registry.chains))})")
    for spec in specs:
        known = known_specs(spec, registry)
        for chain in chains_needed(known, issuers_in_audit(spec.id, known)):
            rpc_url(chain, rpc)


def parse_blocks(values: tuple[str, ...]) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for name, text in parse_pairs(values, "--block").items():
        if text.isdigit():
            out[name] = int(text)
        elif text in ("latest", "finalized", "safe"):
            out[name] = text
        else:
            raise ConfigError(f"--block {name}={text}: expected a block number or latest/finalized/safe")
    return out


def parse_time(text: str, option: str = "--at") -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected an ISO time such as 2025-10-28T00:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def load_bundle(path: str | None) -> Bundle | None:
    if path is None:
        return None
    bundle, _digest = Bundle.read(Path(path))
    return bundle


def summary_lines(result: AuditResult) -> list[str]:
    """The terminal summary: completeness first, pins, then per issuer supply, backing, expansion; then flags."""
    from auditor.numbers import multiple, percent, tokens, usd
    from auditor.text import inert

    document = result.document
    lines = [f"{inert(result.token)} ({result.spec})"]
    if not result.reads_complete:
        lines.append(f"  INCOMPLETE: {len(result.gaps)} read(s) failed; the figures below are bounds, not the "
                     "audit's result:")
        lines += [f"    - {inert(gap.line())}" for gap in result.gaps]
    elif not result.complete:
        lines.append("  INCOMPLETE: money came in from contracts the audit cannot read (unexplained inflows); "
                     "verifiable backing below is at most what is shown")
    for name, pin in document["pins"].items():
        stats = result.requests.get(name, {})
        lines.append(f"  {name}: block {pin['number']} ({pin['time']}), {stats.get('reads', 0)} reads in "
                     f"{stats.get('http_requests', 0)} HTTP requests ({_count(stats.get('rounds', 0), 'round')}, "
                     f"{stats.get('retries', 0)} retries), {stats.get('cache_hits', 0)} answers from cache")
    for issuer, figures in sorted(result.backing.issuers.items()):
        bound = "" if result.complete else "[incomplete] "
        at_most = "at most " if result.bound(issuer) == "at most" else ""
        lines.append(
            f"  {bound}{inert(figures.symbol or issuer)}: supply {usd(figures.supply_usd)}, verifiable backing "
            f"{at_most}{usd(figures.verifiable_backing_usd)} ({percent(figures.backing_ratio)}), expansion "
            f"{multiple(figures.expansion_ratio, unbounded='unbounded (no verifiable backing)')}, coverage "
            f"{percent(result.coverage.get(issuer))}"
            + (f"; attested off chain {usd(figures.attested_usd)}" if figures.attested else "")
        )
    for mesh in document.get("layerzero", []):
        unit = Decimal(10) ** int(mesh["decimals"])
        chains = ", ".join(r["chain"] for r in mesh["remotes"]) or "no chain"
        copies, locked = Decimal(mesh["remote_supply"]) / unit, Decimal(mesh["locked"]) / unit
        lines.append(f"  {mesh['issuer']}: LayerZero copies on {chains}: {tokens(copies)} against {tokens(locked)} "
                     "locked at home")
    for flag in result.flags:
        lines.append(f"  [{flag.severity.value}] {flag.id} ({flag.issuer or 'audit'}): {inert(flag.message)}")
    for skip in result.skipped:
        lines.append(f"  not evaluated: {skip.check}: {inert(skip.reason)}")
    return lines


def _count(number: int, noun: str) -> str:
    """'1 round', '2 rounds'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
