"""Positions -> balance sheets: run the adapters on every chain of the audit and assemble supply per issuer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from auditor.adapters import TOKEN_ADAPTERS, Account, Collected, Scope, TokenInfo, load_all
from auditor.chain.reader import ChainClient, Read
from auditor.model import (
    BALANCE,
    COLLATERAL,
    BalanceSheet,
    Deployment,
    Gap,
    HardAsset,
    MarketPrice,
    OffchainClaim,
    Position,
    Supply,
    Universe,
    token_key,
)
from auditor.spec import Registry, Spec

Progress = Callable[[str], None]


def issuers_in_audit(root: str, specs: Mapping[str, Spec]) -> list[str]:
    """The audited spec and every spec it reaches through depends_on (cycles welcome)."""
    seen: list[str] = []
    stack = [root]
    while stack:
        current = stack.pop()
        if current in seen or current not in specs:
            continue
        seen.append(current)
        stack.extend(specs[current].depends_on)
    return sorted(seen)


def chains_needed(specs: Mapping[str, Spec], issuers: list[str]) -> list[str]:
    names: set[str] = set()
    for issuer in issuers:
        spec = specs[issuer]
        names |= {d.chain for d in spec.token.deployments} | {a.chain for a in spec.accounts}
        names |= {e.chain for e in spec.token.escrow} | {h.chain for h in spec.holdings}
    return sorted(names)


def tokens_on(chain: str, registry: Registry, specs: Mapping[str, Spec], issuers: list[str]) -> dict[str, TokenInfo]:
    """Every token whose balance matters on this chain. Deployments of every known spec are included,
    so that holding a token with a spec pulls that issuer into the audit even without depends_on."""
    tokens: dict[str, TokenInfo] = {}
    for symbol, asset in registry.assets.get(chain, {}).items():
        info = TokenInfo(chain, asset.address, "hard", symbol=symbol, decimals=asset.decimals)
        tokens[info.key] = info
    for spec in specs.values():
        for deployment in spec.token.deployments:
            if deployment.chain == chain:
                info = TokenInfo(chain, deployment.address, "issued", issuer=spec.id, symbol=spec.token.symbol)
                tokens[info.key] = info
    for issuer in issuers:
        for holding in specs[issuer].holdings:
            key = token_key(chain, holding.address)
            if holding.chain == chain and key not in tokens:
                tokens[key] = TokenInfo(chain, holding.address, "holding", symbol=holding.label)
    return tokens


def collect_chain(
    chain: str, client: ChainClient, registry: Registry, specs: Mapping[str, Spec], issuers: list[str]
) -> Collected:
    adapters = load_all()
    accounts = [Account(issuer, a.address, a.label) for issuer in issuers for a in specs[issuer].accounts
                if a.chain == chain]
    tokens = tokens_on(chain, registry, specs, issuers)
    out = Collected()
    for name in TOKEN_ADAPTERS:
        out.extend(adapters[name](Scope(chain, client, registry, accounts, tokens)))
    for venue_name, per_chain in sorted(registry.venues.items()):
        venue = per_chain.get(chain)
        if venue is None:
            continue
        if venue_name not in adapters:
            out.notes.append(f"{chain}: no adapter for venue {venue_name!r}; its positions are not read")
            continue
        out.extend(adapters[venue_name](Scope(chain, client, registry, accounts, tokens, venue=venue)))
    return out


def read_supply(spec: Spec, clients: Mapping[str, ChainClient]) -> tuple[Supply, list[Gap]]:
    """totalSupply per deployment, minus canonical tokens the escrows hold for bridged copies."""
    deployments = []
    gaps: list[Gap] = []
    for deployment in spec.token.deployments:
        client = clients[deployment.chain]
        escrows = [] if deployment.bridged else [e for e in spec.token.escrow if e.chain == deployment.chain]
        reads = [Read(deployment.address, "totalSupply()"), Read(deployment.address, "decimals()", returns=("uint8",)),
                 Read(deployment.address, "symbol()", returns=("string",))]
        reads += [Read(deployment.address, "balanceOf(address)", (e.address,)) for e in escrows]
        results = client.read(reads)
        total, decimals, symbol = results[0], results[1], results[2]
        if not (total.ok and decimals.ok):
            from auditor.chain.rpc import ChainError

            failed = total if not total.ok else decimals
            raise ChainError(deployment.chain, failed.read.describe(), str(client.pinned.number),
                             f"supply of {spec.id} could not be read: {failed.error}")
        escrowed = sum(r.one for r in results[3:] if r.ok)
        # An unread escrow would leave bridged copies counted twice: the supply is not a figure then.
        gaps += [Gap(deployment.chain, client.pinned.number, f"escrow balance {r.read.describe()}",
                     r.error or "failed") for r in results[3:] if not r.ok]
        deployments.append(Deployment(deployment.chain, deployment.address, decimals.one, total.one, escrowed,
                                      deployment.bridged, symbol.one if symbol.ok else ""))
    return Supply(tuple(deployments)), gaps


def hard_asset_prices(
    registry: Registry, clients: Mapping[str, ChainClient], gaps: list[Gap] | None = None
) -> tuple[dict[str, HardAsset], list[str]]:
    """Registry prices at the pins: par, or a Chainlink-style feed read at the pin with a staleness check.

    A feed that could not be read is a gap (appended to `gaps`); a feed that answered stale or non-positive is
    a price of 0 with a note: the feed said so.
    """
    assets: dict[str, HardAsset] = {}
    notes: list[str] = []
    for chain, per_chain in registry.assets.items():
        if chain not in clients:
            continue
        client = clients[chain]
        for symbol, asset in per_chain.items():
            key = token_key(chain, asset.address)
            if asset.price.feed is None:
                assets[key] = HardAsset(key, symbol, asset.decimals, Decimal(1), "par")
                continue
            round_types = ("uint80", "int256", "uint256", "uint256", "uint80")
            round_data, feed_decimals = client.read([
                Read(asset.price.feed, "latestRoundData()", returns=round_types),
                Read(asset.price.feed, "decimals()", returns=("uint8",)),
            ])
            unread = [r for r in (round_data, feed_decimals) if not r.ok]
            if unread and gaps is not None:
                gaps += [Gap(chain, client.pinned.number, f"price feed of {symbol}: {r.read.describe()}",
                             r.error or "failed") for r in unread]
            if unread or round_data.value[1] <= 0:
                reason = round_data.error or feed_decimals.error or f"non-positive answer {round_data.value[1]}"
                notes.append(f"{chain}: price feed of {symbol} ({asset.price.feed}) unusable at block "
                             f"{client.pinned.number}: {reason}; {symbol} valued at 0")
                assets[key] = HardAsset(key, symbol, asset.decimals, Decimal(0), f"feed unusable: {reason}")
                continue
            price = Decimal(round_data.value[1]) / Decimal(10) ** feed_decimals.one
            age = client.pinned.timestamp - round_data.value[3]
            source = f"feed {asset.price.feed} round {round_data.value[0]}, {age} s old"
            if age > asset.price.heartbeat_s:
                notes.append(f"{chain}: price feed of {symbol} is stale ({age} s > heartbeat "
                             f"{asset.price.heartbeat_s} s); {symbol} valued at 0")
                price, source = Decimal(0), f"stale: {source}"
            assets[key] = HardAsset(key, symbol, asset.decimals, price, source)
    return assets, notes


def pool_prices(
    registry: Registry, clients: Mapping[str, ChainClient], hard: Mapping[str, HardAsset]
) -> tuple[dict[str, MarketPrice], list[str]]:
    """Market prices of tokens on the registry's pools, in USD through the pool's quote asset."""
    from auditor.adapters import Scope, token_metadata

    prices: dict[str, MarketPrice] = {}
    notes: list[str] = []
    for chain, pools in sorted(registry.pools.items()):
        if chain not in clients:
            continue
        client = clients[chain]
        scope = Scope(chain, client, registry, [], {})
        for pool in pools.values():
            quote = hard.get(token_key(chain, pool.quote))
            if quote is None:
                notes.append(f"{chain}: pool {pool.name} quotes in {pool.quote}, not a hard asset: ignored")
                continue
            if pool.kind == "constant_price":
                reads = [Read(pool.address, "price()")]
            else:
                reads = [Read(pool.address, "getReserves()", returns=("uint112", "uint112", "uint32")),
                         Read(pool.address, "token0()", returns=("address",))]
            results = client.read(reads)
            meta = token_metadata(scope, [pool.base, pool.quote])
            base_decimals, quote_decimals = meta[pool.base][0], meta[pool.quote][0]
            if not all(r.ok for r in results) or base_decimals is None or quote_decimals is None:
                notes.append(f"{chain}: pool {pool.name} could not be read at block {client.pinned.number}")
                continue
            if pool.kind == "constant_price":
                in_quote = Decimal(results[0].one) / Decimal(10**18)
            else:
                reserve0, reserve1, _ = results[0].value
                base_is_0 = results[1].one.lower() == pool.base.lower()
                base_reserve, quote_reserve = (reserve0, reserve1) if base_is_0 else (reserve1, reserve0)
                if base_reserve == 0:
                    notes.append(f"{chain}: pool {pool.name} is empty")
                    continue
                in_quote = (Decimal(quote_reserve) / Decimal(10) ** quote_decimals) / (
                    Decimal(base_reserve) / Decimal(10) ** base_decimals)
            key = token_key(chain, pool.base)
            prices[key] = MarketPrice(key, in_quote * quote.price_usd, f"{pool.kind} pool {pool.name} ({pool.address})",
                                      tuple(scope.evidence(r) for r in results))
    return prices, notes


def build_universe(
    root: str,
    specs: Mapping[str, Spec],
    registry: Registry,
    clients: Mapping[str, ChainClient],
    progress: Progress | None = None,
) -> tuple[Universe, list[str]]:
    """Balance sheets of the audited issuer and every issuer it reaches; returns the universe and notes."""
    issuers = issuers_in_audit(root, specs)
    owner = {token_key(d.chain, d.address): s.id for s in specs.values() for d in s.token.deployments}
    # Tokens of specs outside depends_on that turn up in the balance sheets join the audit too.
    while True:
        missing = [c for c in chains_needed(specs, issuers) if c not in clients]
        if missing:
            from auditor.chain.rpc import ConfigError

            raise ConfigError(f"the audit needs chains {missing}, which were not connected")
        collected = Collected()
        for chain in sorted(clients):
            if progress:
                progress(f"reading positions on {chain}")
            collected.extend(collect_chain(chain, clients[chain], registry, specs, issuers))
        keys = {p.token_key for p in collected.positions}
        keys |= {token_key(m.chain, m.collateral_token) for m in collected.markets.values()}
        new = sorted({owner[k] for k in keys if k in owner} - set(issuers))
        if not new:
            break
        issuers = sorted(set(issuers) | set(new))
    gaps = list(collected.gaps)
    hard_assets, notes = hard_asset_prices(registry, clients, gaps)
    market_prices, pool_notes = pool_prices(registry, clients, hard_assets)
    notes += pool_notes + collected.notes
    sheets: dict[str, BalanceSheet] = {}
    for issuer in issuers:
        spec = specs[issuer]
        supply, supply_gaps = read_supply(spec, clients)
        gaps += supply_gaps
        sheets[issuer] = BalanceSheet(
            issuer=issuer,
            symbol=spec.token.symbol,
            par_usd=Decimal(str(spec.token.par_usd)),
            token_keys=frozenset(token_key(d.chain, d.address) for d in spec.token.deployments),
            supply=supply,
            positions=[p for p in collected.positions if p.details.get("issuer") == issuer],
            offchain=[OffchainClaim(o.label, Decimal(str(o.usd))) for o in spec.offchain],
            claimed_assets_usd=_decimal(spec.claims.assets_usd),
            claimed_apy=_decimal(spec.claims.apy),
        )
    universe = Universe(sheets=sheets, hard_assets=hard_assets, markets=collected.markets,
                        holders=known_holders(collected.positions, set(owner)), market_prices=market_prices, gaps=gaps)
    return universe, notes


def known_holders(positions: Sequence[Position], issued: set[str]) -> dict[str, list[tuple[str, int]]]:
    """Issued tokens held or posted as collateral by the audit's accounts, largest first (raw units).

    These are the holders the audit can name from the positions it read; the concentration flag weighs them
    against the whole supply, so an issuer account holding most of another issuer's token shows.
    """
    held: dict[str, dict[str, int]] = {}
    for position in positions:
        if position.kind in (BALANCE, COLLATERAL) and position.token_key in issued:
            per_token = held.setdefault(position.token_key, {})
            per_token[position.account.lower()] = per_token.get(position.account.lower(), 0) + position.amount
    return {key: sorted(amounts.items(), key=lambda item: (-item[1], item[0])) for key, amounts in sorted(held.items())}


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
