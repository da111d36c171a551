"""Run an audit: load the spec, connect and pin every chain it touches, read, and assemble the findings."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor import __version__
from auditor.chain.evidence import Bundle
from auditor.chain.reader import ConnectOptions, Read, connect
from auditor.chain.rpc import ConfigError
from auditor.spec import Registry, Spec


@dataclass
class AuditRequest:
    spec: Spec
    registry: Registry
    options: ConnectOptions = field(default_factory=ConnectOptions)


def chains_of(spec: Spec) -> list[str]:
    names = {d.chain for d in spec.token.deployments} | {a.chain for a in spec.accounts}
    names |= {e.chain for e in spec.token.escrow}
    return sorted(names)


def _supply_reads(spec: Spec, chain: str) -> list[Read]:
    reads: list[Read] = []
    for deployment in spec.token.deployments:
        if deployment.chain != chain:
            continue
        reads += [
            Read(deployment.address, "totalSupply()"),
            Read(deployment.address, "decimals()", returns=("uint8",)),
            Read(deployment.address, "symbol()", returns=("string",)),
        ]
        reads += [
            Read(deployment.address, "balanceOf(address)", (escrow.address,))
            for escrow in spec.token.escrow
            if escrow.chain == chain
        ]
    return reads


def run_audit(request: AuditRequest) -> dict[str, Any]:
    """Read everything the audit needs at the pins and return the findings as plain data."""
    names = chains_of(request.spec)
    missing = [n for n in names if n not in request.registry.chains]
    if missing:
        raise ConfigError(f"chains {missing} are not in the registry {request.registry.path}")
    clients = connect({n: request.registry.chains[n] for n in names}, request.options)
    deployments = []
    for name, client in clients.items():
        results = client.read(_supply_reads(request.spec, name))
        for result in results:
            if not result.ok:
                raise ConfigError(
                    f"{name}: {result.read.describe()} failed at block {client.pinned.number}: {result.error}"
                )
        deployments += _deployment_rows(request.spec, name, [r.value for r in results])
    for client in clients.values():
        client.check_pin()
    return {
        "tool": {"name": "reserve-auditor", "version": __version__},
        "spec": request.spec.id,
        "token": request.spec.token.symbol,
        "pins": {name: client.pinned.as_dict() for name, client in clients.items()},
        "supply": {"deployments": deployments},
        "requests": {name: client.stats.as_dict() for name, client in clients.items()},
    }


def _deployment_rows(spec: Spec, chain: str, values: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    rows = []
    position = 0
    escrows = [e for e in spec.token.escrow if e.chain == chain]
    for deployment in spec.token.deployments:
        if deployment.chain != chain:
            continue
        total, decimals, symbol = values[position][0], values[position + 1][0], values[position + 2][0]
        position += 3
        held = {e.address: values[position + i][0] for i, e in enumerate(escrows)}
        position += len(escrows)
        rows.append(
            {
                "chain": chain,
                "address": deployment.address,
                "bridged": deployment.bridged,
                "symbol_onchain": symbol,
                "decimals": decimals,
                "total_supply_raw": str(total),
                "escrow_raw": {address: str(amount) for address, amount in held.items()},
            }
        )
    return rows


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


def summary_lines(findings: Mapping[str, Any]) -> list[str]:
    lines = [f"{findings['token']} ({findings['spec']})"]
    for name, pin in findings["pins"].items():
        stats = findings["requests"][name]
        lines.append(
            f"  {name}: block {pin['number']} ({pin['time']}), {stats['reads']} reads in "
            f"{stats['http_requests']} HTTP requests, {stats['cache_hits']} from cache"
        )
    for row in findings["supply"]["deployments"]:
        amount = int(row["total_supply_raw"]) / 10 ** int(row["decimals"])
        lines.append(f"  supply on {row['chain']}: {amount:,.2f} {row['symbol_onchain']!r}")
    return lines
