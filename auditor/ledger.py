"""Positions -> balance sheets: run the adapters on every chain of the audit and assemble supply per issuer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor.adapters import (
    TOKEN_ADAPTERS,
    Account,
    Collected,
    Scope,
    TokenInfo,
    depth,
    load_all,
    quote,
    twap,
)
from auditor.chain.plan import Plan, gather, optional, reads, run_plans
from auditor.chain.reader import ChainClient, Read
from auditor.chain.rpc import ChainError, ConfigError
from auditor.discovery import ChainDiscovery, Known, account_flows, discover
from auditor.model import (
    BALANCE,
    COLLATERAL,
    EXIT_DROPS,
    AttestedReserve,
    BalanceSheet,
    Deployment,
    Evidence,
    ExitPoint,
    Gap,
    HardAsset,
    MarketPrice,
    OffchainClaim,
    Position,
    Supply,
    Universe,
    token_key,
)
from auditor.spec import Pool, Registry, Spec

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
        names |= {a.chain for a in spec.attestations}
        names |= {spec.token.layerzero.chain} if spec.token.layerzero is not None else set()
    return sorted(names)


def tokens_on(chain: str, registry: Registry, specs: Mapping[str, Spec], issuers: list[str],
              discovered: Mapping[str, TokenInfo] | None = None) -> dict[str, TokenInfo]:
    """Every token whose balance matters on this chain. Deployments of every known spec are included,
    so that holding a token with a spec pulls that issuer into the audit even without depends_on; tokens the
    discovery scan found issuer accounts moving are holdings like those a spec lists."""
    tokens: dict[str, TokenInfo] = dict(discovered or {})
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


def chain_plans(
    chain: str, client: ChainClient, registry: Registry, specs: Mapping[str, Spec], issuers: list[str],
    discovered: Mapping[str, TokenInfo] | None = None,
) -> list[Plan[Collected]]:
    """Every adapter's plan for one chain: the token adapters, then each venue the registry lists there."""
    adapters = load_all()
    accounts = [Account(issuer, a.address, a.label) for issuer in issuers for a in specs[issuer].accounts
                if a.chain == chain]
    tokens = tokens_on(chain, registry, specs, issuers, discovered)
    plans = [adapters[name](Scope(chain, client, registry, accounts, tokens)) for name in TOKEN_ADAPTERS]
    for venue_name, per_chain in sorted(registry.venues.items()):
        venue = per_chain.get(chain)
        if venue is not None:  # every venue name is an adapter's: the registry's validation refuses others
            plans.append(adapters[venue_name](Scope(chain, client, registry, accounts, tokens, venue=venue)))
    return plans


def deployment_supply(spec: Spec, index: int, pin: int) -> Plan[tuple[Deployment, list[Gap]]]:
    """totalSupply of one deployment, and the canonical tokens its escrows hold for bridged copies."""
    deployment = spec.token.deployments[index]
    escrows = [] if deployment.bridged else [e for e in spec.token.escrow if e.chain == deployment.chain]
    batch = [Read(deployment.address, "totalSupply()"), Read(deployment.address, "decimals()", returns=("uint8",)),
             Read(deployment.address, "symbol()", returns=("string",))]
    batch += [Read(deployment.address, "balanceOf(address)", (e.address,)) for e in escrows]
    results = yield from reads(batch)
    total, decimals, symbol = results[0], results[1], results[2]
    if not (total.ok and decimals.ok):
        failed = total if not total.ok else decimals
        raise ChainError(deployment.chain, failed.read.describe(), str(pin),
                         f"supply of {spec.id} could not be read: {failed.error}")
    escrowed = sum(r.one for r in results[3:] if r.ok)
    # An unread escrow would leave bridged copies counted twice: the supply is not a figure then.
    gaps = [Gap(deployment.chain, pin, f"escrow balance {r.read.describe()}", r.error or "failed")
            for r in results[3:] if not r.ok]
    return Deployment(deployment.chain, deployment.address, decimals.one, total.one, escrowed, deployment.bridged,
                      symbol.one if symbol.ok else ""), gaps


def chain_prices(
    chain: str, registry: Registry, timestamp: int, pin: int
) -> Plan[tuple[dict[str, HardAsset], list[str], list[Gap]]]:
    """Registry prices at the pin: par, or a Chainlink-style feed read at the pin with a staleness check.

    A feed that could not be read is a gap; a feed that answered stale or non-positive is a price of 0 with a
    note: the feed said so.
    """
    assets: dict[str, HardAsset] = {}
    notes: list[str] = []
    gaps: list[Gap] = []
    per_chain = registry.assets.get(chain, {})
    fed = [(symbol, asset) for symbol, asset in per_chain.items() if asset.price.feed is not None]
    results = yield from reads([read for _, asset in fed for read in (
        Read(str(asset.price.feed), "latestRoundData()", returns=ROUND_DATA),
        Read(str(asset.price.feed), "decimals()", returns=("uint8",)))])
    answers = {symbol: (results[2 * i], results[2 * i + 1]) for i, (symbol, _) in enumerate(fed)}
    for symbol, asset in per_chain.items():
        key = token_key(chain, asset.address)
        if asset.price.feed is None:
            assets[key] = HardAsset(key, symbol, asset.decimals, Decimal(1), "par")
            continue
        round_data, feed_decimals = answers[symbol]
        unread = [r for r in (round_data, feed_decimals) if not r.ok]
        gaps += [Gap(chain, pin, f"price feed of {symbol}: {r.read.describe()}", r.error or "failed")
                 for r in unread]
        if unread or round_data.value[1] <= 0:
            reason = round_data.error or feed_decimals.error or f"non-positive answer {round_data.value[1]}"
            notes.append(f"{chain}: price feed of {symbol} ({asset.price.feed}) unusable at block {pin}: {reason}; "
                         f"{symbol} valued at 0")
            assets[key] = HardAsset(key, symbol, asset.decimals, Decimal(0), f"feed unusable: {reason}")
            continue
        price = Decimal(round_data.value[1]) / Decimal(10) ** feed_decimals.one
        age = timestamp - round_data.value[3]
        source = f"feed {asset.price.feed} round {round_data.value[0]}, {age} s old"
        if age > asset.price.heartbeat_s:
            notes.append(f"{chain}: price feed of {symbol} is stale ({age} s > heartbeat "
                         f"{asset.price.heartbeat_s} s); {symbol} valued at 0")
            price, source = Decimal(0), f"stale: {source}"
        assets[key] = HardAsset(key, symbol, asset.decimals, price, source)
    return assets, notes, gaps


ROUND_DATA = ("uint80", "int256", "uint256", "uint256", "uint80")  # Chainlink AggregatorV3 latestRoundData


def attested_reserves(spec: Spec, scope: Scope, timestamp: int) -> Plan[list[AttestedReserve]]:
    """The spec's proof-of-reserve feeds on one chain at the pin: fresh answers are attested USD; a stale,
    non-positive or unreadable one is listed with its status (and flagged), never counted."""
    mine = [a for a in spec.attestations if a.chain == scope.chain]
    results = yield from reads([read for a in mine for read in (
        Read(a.feed, "latestRoundData()", returns=ROUND_DATA), Read(a.feed, "decimals()", returns=("uint8",)))])
    out = []
    for index, attestation in enumerate(mine):
        round_data, decimals = results[2 * index], results[2 * index + 1]
        evidence = (scope.evidence(round_data), scope.evidence(decimals))
        if not (round_data.ok and decimals.ok):
            out.append(AttestedReserve(attestation.label, scope.chain, attestation.feed, "unreadable", None, None,
                                       attestation.heartbeat_s, None, evidence))
            continue
        round_id, answer, _started, updated, _answered = round_data.value
        age = timestamp - updated
        status = "non-positive" if answer <= 0 else ("stale" if age > attestation.heartbeat_s else "fresh")
        usd = Decimal(answer) / Decimal(10) ** decimals.one if answer > 0 else None
        out.append(AttestedReserve(attestation.label, scope.chain, attestation.feed, status, usd, age,
                                   attestation.heartbeat_s, round_id, evidence))
    return out


TWAP_SECONDS = 1800  # the window of a pool's time-weighted price: half an hour, longer than a manipulation can last


@dataclass(frozen=True)
class PoolQuote:
    pool: Pool
    in_quote: Decimal  # whole quote tokens per whole base token
    evidence: tuple[Evidence, ...]
    depth: tuple[tuple[Decimal, Decimal, Decimal], ...] = ()  # (drop, base sold, quote fetched), whole tokens
    twap: Decimal | None = None  # whole quote tokens per whole base token over TWAP_SECONDS
    twap_why: str = ""


def chain_pool_quotes(scope: Scope, pools: Sequence[Pool]) -> Plan[tuple[list[PoolQuote], list[str]]]:
    """Each registry pool's price of its base token in its quote token, at the pin, by its kind's venue, and its
    exit liquidity at EXIT_DROPS where the venue module knows the pool's maths (side by side, same rounds)."""
    found, depths, twaps = yield from gather(gather(*(quote(pool) for pool in pools)),
                                             gather(*(depth(pool, EXIT_DROPS) for pool in pools)),
                                             gather(*(twap(pool, TWAP_SECONDS) for pool in pools)))
    quotes: list[PoolQuote] = []
    notes: list[str] = []
    for pool, answer, (points, why), (mean, mean_why) in zip(pools, found, depths, twaps, strict=True):
        if answer.price is None:
            notes.append(f"{scope.chain}: pool {pool.name} {answer.why} at block {scope.block}")
            continue
        if points is None and not why.startswith("no exit-liquidity maths"):
            notes.append(f"{scope.chain}: exit liquidity of pool {pool.name} {why} at block {scope.block}")
        shape = tuple((p.drop, p.base_in, p.quote_out) for p in points or ())
        quotes.append(PoolQuote(pool, answer.price, tuple(scope.evidence(r) for r in answer.results), shape, mean,
                                mean_why))
    return quotes, notes


def pool_prices(
    quotes: Mapping[str, Sequence[PoolQuote]], hard: Mapping[str, HardAsset]
) -> tuple[dict[str, MarketPrice], list[str]]:
    """Market prices of tokens on the registry's pools, in USD through the pool's quote asset."""
    prices: dict[str, MarketPrice] = {}
    notes: list[str] = []
    for chain, chain_quotes in sorted(quotes.items()):
        for found in chain_quotes:
            pool = found.pool
            quote_asset = hard.get(token_key(chain, pool.quote))
            if quote_asset is None:
                notes.append(f"{chain}: pool {pool.name} quotes in {pool.quote}, not a hard asset: ignored")
                continue
            key = token_key(chain, pool.base)
            depth = tuple(ExitPoint(drop, sold, fetched * quote_asset.price_usd) for drop, sold, fetched in found.depth)
            prices[key] = MarketPrice(key, found.in_quote * quote_asset.price_usd,
                                      f"{pool.kind} pool {pool.name} ({pool.address})", found.evidence, depth,
                                      found.twap * quote_asset.price_usd if found.twap is not None else None,
                                      found.twap_why)
    return prices, notes


def build_universe(
    root: str,
    specs: Mapping[str, Spec],
    registry: Registry,
    clients: Mapping[str, ChainClient],
    progress: Progress | None = None,
    *,
    also: Mapping[tuple[str, ...], tuple[ChainClient, Plan[Any]]] | None = None,
    also_results: dict[tuple[str, ...], Any] | None = None,
) -> tuple[Universe, list[str]]:
    """Balance sheets of the audited issuer and every issuer it reaches; returns the universe and notes.

    Every read of every chain goes out in rounds (auditor.chain.plan): the adapters, the supplies, the feeds
    and the pools of all chains advance together, one batched call per chain per round. `also` are other
    plans of the audit to run in the same rounds; their results go to `also_results` by key.
    """
    issuers = issuers_in_audit(root, specs)
    owner = {token_key(d.chain, d.address): s.id for s in specs.values() for d in s.token.deployments}
    plans: dict[tuple[str, ...], tuple[ChainClient, Plan[Any]]] = dict(also or {})
    for chain, client in sorted(clients.items()):
        plans[("prices", chain)] = (client, chain_prices(chain, registry, client.pinned.timestamp,
                                                         client.pinned.number))
        pools = sorted(registry.pools.get(chain, {}).values(), key=lambda pool: pool.name)
        if pools:
            plans[("pools", chain)] = (client, chain_pool_quotes(Scope(chain, client, registry, [], {}), pools))
    collected = Collected()
    supplies: dict[str, list[tuple[Deployment, list[Gap]]]] = {}
    attested: dict[str, list[AttestedReserve]] = {}
    hard_assets: dict[str, HardAsset] = {}
    quotes: dict[str, list[PoolQuote]] = {}
    gaps: list[Gap] = []
    notes: list[str] = []
    # Tokens of specs outside depends_on that turn up in the balance sheets join the audit too, and so do tokens
    # the discovery scan finds issuer accounts moving: a further pass reads their supply or balances (positions
    # already read at the pin are answered from the client's memory).
    pending = list(issuers)
    discoveries: list[ChainDiscovery] = []
    scanned: set[tuple[str, str]] = set()
    discovered: dict[str, dict[str, TokenInfo]] = {}
    more = True
    while pending or more:
        missing = [c for c in chains_needed(specs, issuers) if c not in clients]
        if missing:
            raise ConfigError(f"the audit needs chains {missing}, which were not connected")
        if progress:
            progress(f"reading positions on {', '.join(sorted(clients))}")
        for chain, client in sorted(clients.items()):
            for index, plan in enumerate(chain_plans(chain, client, registry, specs, issuers, discovered.get(chain))):
                plans[("positions", chain, str(index))] = (client, plan)
            accounts = {a.address.lower(): issuer for issuer in issuers for a in specs[issuer].accounts
                        if a.chain == chain and (chain, a.address.lower()) not in scanned}
            if accounts:
                scanned.update((chain, account) for account in accounts)
                plans[("discovery", chain)] = (client, optional(discover(
                    chain, accounts, known_addresses(chain, registry, specs).all(),
                    min(registry.chains[chain].discover_from, client.pinned.number), client.pinned.number)))
        for issuer in pending:
            for chain in sorted({a.chain for a in specs[issuer].attestations}):
                client = clients[chain]
                plans[("attested", issuer, chain)] = (client, attested_reserves(
                    specs[issuer], Scope(chain, client, registry, [], {}), client.pinned.timestamp))
            for index, deployment in enumerate(specs[issuer].token.deployments):
                client = clients[deployment.chain]
                plans[("supply", issuer, str(index))] = (client, deployment_supply(specs[issuer], index,
                                                                                   client.pinned.number))
        results = run_plans(plans)
        plans = {}
        collected = Collected()
        for key in sorted(results):
            kind, value = key[0], results[key]
            if kind == "positions":
                collected.extend(value)
            elif kind == "supply":
                supplies.setdefault(key[1], []).append(value)
            elif kind == "attested":
                attested.setdefault(key[1], []).extend(value)
            elif kind == "prices":
                hard_assets.update(value[0])
                notes += value[1]
                gaps += value[2]
            elif kind == "pools":
                quotes[key[1]] = value[0]
                notes += value[1]
            elif kind == "discovery":
                found, error = value
                if error is not None:  # what it could not scan, it cannot vouch for: the audit is incomplete
                    gaps.append(Gap(key[1], clients[key[1]].pinned.number,
                                    "discovery scan of issuer accounts' Transfer logs", str(error)))
                else:
                    discoveries.append(found)
            elif also_results is not None:
                also_results[key] = value
        held = {p.token_key for p in collected.positions}
        held |= {token_key(m.chain, m.collateral_token) for m in collected.markets.values()}
        held |= {collected.derived[k].underlying for k in held if k in collected.derived}  # a PT's asset
        pending = sorted({owner[k] for k in held if k in owner} - set(issuers))
        issuers = sorted(set(issuers) | set(pending))
        more = False
        for found in discoveries:
            listed = tokens_on(found.chain, registry, specs, issuers, discovered.get(found.chain))
            for address in found.tokens:  # a venue's own receipt or debt token is that venue's position
                if token_key(found.chain, address) not in listed and address not in collected.addresses:
                    info = TokenInfo(found.chain, address, "holding", symbol="", discovered=True)
                    discovered.setdefault(found.chain, {})[info.key] = info
                    more = True
    gaps = collected.gaps + gaps
    market_prices, price_notes = pool_prices(quotes, hard_assets)
    notes += price_notes + collected.notes
    sheets: dict[str, BalanceSheet] = {}
    for issuer in issuers:
        spec = specs[issuer]
        deployments = supplies[issuer]
        gaps += [gap for _, deployment_gaps in deployments for gap in deployment_gaps]
        sheets[issuer] = BalanceSheet(
            issuer=issuer,
            symbol=spec.token.symbol,
            par_usd=Decimal(str(spec.token.par_usd)),
            token_keys=frozenset(token_key(d.chain, d.address) for d in spec.token.deployments),
            supply=Supply(tuple(deployment for deployment, _ in deployments)),
            positions=[p for p in collected.positions if p.details.get("issuer") == issuer],
            offchain=[OffchainClaim(o.label, Decimal(str(o.usd))) for o in spec.offchain],
            claimed_assets_usd=_decimal(spec.claims.assets_usd),
            claimed_apy=_decimal(spec.claims.apy),
            attested=attested.get(issuer, []),
        )
    for found in discoveries:
        gaps += [Gap(found.chain, found.to_block, f"code of {peer} (counterparty of an issuer account)",
                     "the node did not answer eth_getCode") for peer, code in found.has_code.items() if code is None]
    prices: dict[str, tuple[Decimal, int]] = {k: (a.price_usd, a.decimals) for k, a in hard_assets.items()}
    for sheet in sheets.values():
        for issued in sheet.supply.deployments:
            prices[token_key(issued.chain, issued.address)] = (sheet.par_usd, issued.decimals)
    # A vault the audit unwrapped (ERC-4626 shares valued through their assets) is understood like a venue.
    vaults = {str(v).lower(): "ERC-4626 vault the audit values" for p in collected.positions
              for v in p.details.get("vault_path", [])}
    known = {chain: known_addresses(chain, registry, specs, {**vaults, **collected.addresses}) for chain in clients}
    universe = Universe(sheets=sheets, hard_assets=hard_assets, markets=collected.markets, derived=collected.derived,
                        holders=known_holders(collected.positions, set(owner)), market_prices=market_prices, gaps=gaps,
                        counterparties=account_flows(discoveries, known, prices, frozenset(hard_assets)))
    return universe, notes


def known_addresses(chain: str, registry: Registry, specs: Mapping[str, Spec],
                    venue_contracts: Mapping[str, str] | None = None) -> Known:
    """Every address of `chain` the audit understands, by class: the accounts, tokens and escrows of every
    known spec; the registry's venues, pools and hard assets; the contracts venue modules named."""
    issuer: dict[str, str] = {}
    for spec in specs.values():
        for holder in spec.accounts:
            if holder.chain == chain:
                issuer[holder.address.lower()] = f"{spec.id}: {holder.label or 'account'}"
        for deployment in spec.token.deployments:
            if deployment.chain == chain:
                issuer[deployment.address.lower()] = f"{spec.id}: {spec.token.symbol} token"
        for escrow in spec.token.escrow:
            if escrow.chain == chain:
                issuer[escrow.address.lower()] = f"{spec.id}: {escrow.label or 'escrow'}"
    venue = {v.address.lower(): name for name, per_chain in registry.venues.items()
             for c, v in per_chain.items() if c == chain}
    venue.update({address: label for address, label in (venue_contracts or {}).items() if address not in venue})
    market = {p.address.lower(): f"pool {p.name}" for p in registry.pools.get(chain, {}).values()}
    token = {a.address.lower(): f"{symbol} token contract" for symbol, a in registry.assets.get(chain, {}).items()}
    return Known(issuer, venue, market, token)


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
