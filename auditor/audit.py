"""Run an audit: load specs, connect and pin every chain, read balance sheets, solve backing, raise flags."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from auditor import __version__
from auditor.chain.evidence import Bundle
from auditor.chain.reader import ConnectOptions, connect
from auditor.chain.rpc import ConfigError
from auditor.model import BalanceSheet, Market, Position
from auditor.spec import Registry, Spec, load_spec, spec_ids_near

Say = Callable[[str], None]


@dataclass
class AuditRequest:
    spec: Spec
    registry: Registry
    options: ConnectOptions = field(default_factory=ConnectOptions)
    specs: dict[str, Spec] = field(default_factory=dict)  # every known spec; default: those beside `spec`


def known_specs(spec: Spec, registry: Registry) -> dict[str, Spec]:
    """The audited spec plus every spec beside it: tokens with a spec are recognised wherever they turn up."""
    folder = Path(spec.path).parent
    paths = sorted(p for p in folder.glob("*.yaml") if p.name != "registry.yaml")
    ids = spec_ids_near(paths)
    specs = {spec.id: spec}
    for path in paths:
        if path.stem != spec.id:
            specs[path.stem] = load_spec(path, registry, ids)
    return specs


def run_audit(request: AuditRequest, say: Say | None = None) -> dict[str, Any]:
    """Read everything at the pins and return the findings as plain data (the findings document)."""
    from auditor.backing import solve
    from auditor.ledger import build_universe, chains_needed, issuers_in_audit
    from auditor.risk import run_flags

    specs = request.specs or known_specs(request.spec, request.registry)
    root = request.spec.id
    names = chains_needed(specs, issuers_in_audit(root, specs))
    missing = [n for n in names if n not in request.registry.chains]
    if missing:
        raise ConfigError(f"chains {missing} are not in the registry {request.registry.path}")
    if say:
        say(f"connecting to {', '.join(names)} and pinning blocks")
    clients = connect({n: request.registry.chains[n] for n in names}, request.options)
    universe, notes = build_universe(root, specs, request.registry, clients, progress=say)
    if say:
        say("solving look-through backing for " + ", ".join(sorted(universe.sheets)))
    backing = solve(universe)
    exposure = exposure_section(request.spec, request.registry, clients, universe, backing, say)
    # Markets that lend against the token without the issuer in them still need their oracles checked.
    for per_chain in exposure.values():
        for market in per_chain.get("markets", []):
            universe.markets.setdefault(market["key"], market_from_exposure(market))
    watches = oracle_watches(request, clients, universe, say)
    flags = run_flags(universe, backing, oracle_watches=watches)
    from auditor.yields import yield_sources

    yields = {issuer: yield_sources(universe, backing, issuer) for issuer in sorted(universe.sheets)}
    for client in clients.values():
        client.check_pin()
    return {
        "tool": {"name": "reserve-auditor", "version": __version__},
        "spec": root,
        "token": request.spec.token.symbol,
        "pins": {name: client.pinned.as_dict() for name, client in sorted(clients.items())},
        "issuers": {issuer: sheet_dict(sheet) for issuer, sheet in sorted(universe.sheets.items())},
        "markets": {key: market_dict(m) for key, m in sorted(universe.markets.items())},
        "hard_assets": {k: {"symbol": a.symbol, "price_usd": str(a.price_usd), "source": a.price_source}
                        for k, a in sorted(universe.hard_assets.items())},
        "backing": backing.as_dict(),
        "flags": [f.as_dict() for f in flags],
        "exposure": exposure,
        "yields": yields,
        "oracle_samples": {"window_blocks": ORACLE_WINDOW_BLOCKS, "samples": ORACLE_SAMPLES,
                           "markets": len(watches)},
        "notes": notes,
        "requests": {name: client.stats.as_dict() for name, client in sorted(clients.items())},
    }


ORACLE_WINDOW_BLOCKS = 50_400  # ~7 days of 12 s blocks: long enough for a frozen oracle to show
ORACLE_SAMPLES = 6


def oracle_watches(request: AuditRequest, clients: Mapping[str, Any], universe: Any, say: Say | None) -> list[Any]:
    """Oracle and pool prices sampled over a window before the pin, for the oracle-frozen flag."""
    from auditor.oracles import client_factory, sample_blocks, watch_markets

    if not universe.markets:
        return []
    if say:
        say(f"sampling oracle and pool prices at {ORACLE_SAMPLES} blocks of the last {ORACLE_WINDOW_BLOCKS}")
    options = ConnectOptions(rpc=request.options.rpc, use_cache=request.options.use_cache,
                             record=request.options.record, replay=request.options.replay, retry=request.options.retry)
    factories = {n: client_factory(n, request.registry.chains[n], options) for n in clients}
    blocks = {n: sample_blocks(max(0, c.pinned.number - ORACLE_WINDOW_BLOCKS), c.pinned.number, ORACLE_SAMPLES)
              for n, c in clients.items()}
    return list(watch_markets(universe, request.registry, factories, blocks))


def market_from_exposure(market: Mapping[str, Any]) -> Market:
    """The exposure map's view of a market, as the model the flags read (same reads, no second fetch)."""
    from auditor.model import Borrower

    return Market(
        key=market["key"], chain=market["key"].split(":")[0], venue="morpho_blue",
        loan_token=market["loan_token"], loan_decimals=int(market["loan_decimals"]),
        collateral_token=market["collateral_token"], collateral_decimals=int(market["collateral_decimals"]),
        total_supply_assets=int(market["total_supplied_raw"]), total_supply_shares=0,
        total_borrow_assets=int(market["total_borrowed_raw"]),
        borrowers=tuple(Borrower(b["address"], int(b["debt_raw"]), int(b["collateral_raw"]))
                        for b in market.get("borrowers", [])),
        lltv=int(market["lltv_raw"]), oracle=market["oracle"],
        oracle_price=int(market["oracle_price_raw"]) if market.get("oracle_price_raw") is not None else None,
        details={"id": market["id"], "source": "exposure map", "irm": market.get("irm"), "fee": market.get("fee")},
    )


def exposure_section(spec: Spec, registry: Registry, clients: Mapping[str, Any], universe: Any, backing: Any,
                     say: Say | None = None) -> dict[str, Any]:
    """Who lends against the audited token, per chain where it has supply and a Morpho Blue venue."""
    from auditor.exposure import run_exposure
    from auditor.model import token_key

    figures = backing.issuers.get(spec.id)
    value = None if figures is None or figures.backing_ratio is None else figures.backing_ratio * figures.par_usd
    out: dict[str, Any] = {}
    for deployment in spec.token.deployments:
        chain = deployment.chain
        if chain not in clients or chain not in registry.venues.get("morpho_blue", {}):
            continue
        if say:
            say(f"mapping who lends against {spec.token.symbol} on {chain}")
        key = token_key(chain, deployment.address)
        out[chain] = run_exposure(deployment.address, chain, registry, clients[chain],
                                  look_through={key: value} if value is not None else None)
    return out


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
        "details": _plain(position.details),
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
        "details": _plain(market.details),
    }


def _plain(value: Any) -> Any:
    """JSON-safe copy: big ints as strings (JSON readers lose precision past 2**53), bytes as hex."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > 2**53 else value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write atomically: a reader never sees half a findings file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ConfigError(f"{what} expects CHAIN=VALUE, got {value!r}")
        out[name.strip()] = rest.strip()
    return out


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


def parse_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at {text!r}: expected an ISO time such as 2025-10-28T00:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def load_bundle(path: str | None) -> Bundle | None:
    if path is None:
        return None
    bundle, _digest = Bundle.read(Path(path))
    return bundle


def _usd(text: Any) -> str:
    if text is None:
        return "n/a"
    return f"${Decimal(str(text)):,.0f}"


def summary_lines(findings: Mapping[str, Any]) -> list[str]:
    """The terminal summary: pins, then per issuer supply, verifiable backing, expansion ratio; then flags."""
    lines = [f"{findings['token']} ({findings['spec']})"]
    for name, pin in findings["pins"].items():
        stats = findings["requests"][name]
        lines.append(f"  {name}: block {pin['number']} ({pin['time']}), {stats['reads']} reads in "
                     f"{stats['http_requests']} HTTP requests, {stats['cache_hits']} answers from cache")
    for issuer, figures in findings["backing"]["issuers"].items():
        expansion = figures.get("expansion_ratio")
        lines.append(
            f"  {figures.get('symbol', issuer)}: supply {_usd(figures.get('supply_usd'))}, verifiable backing "
            f"{_usd(figures.get('verifiable_backing_usd'))}, expansion "
            f"{expansion + 'x' if expansion else 'unbounded (no verifiable backing)'}"
        )
    for flag in findings["flags"]:
        lines.append(f"  [{flag['severity']}] {flag['id']} ({flag['issuer']}): {flag['message']}")
    return lines
