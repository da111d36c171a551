"""Exposure map: every Morpho Blue market and Aave v3 reserve that lends against a token, and who is at risk."""

from __future__ import annotations

import decimal
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor.adapters import Scope, token_metadata
from auditor.adapters.aave_v3 import reserve_states, reserve_totals
from auditor.adapters.morpho_blue import (
    WAD,
    CreatedMarket,
    MarketReading,
    created_markets,
    market_key,
    market_models,
    oracle_in_loan_tokens,
    participants,
    raise_unreadable,
    read_markets,
    to_assets_down,
    to_assets_up,
)
from auditor.addresses import check_address, to_checksum
from auditor.chain.plan import Plan, gather, run_plan
from auditor.chain.plan import reads as plan_reads
from auditor.chain.reader import ChainClient, Read, ReadResult
from auditor.chain.rpc import ChainError, ConfigError
from auditor.ledger import chain_prices
from auditor.model import HardAsset, Market, token_key
from auditor.numbers import context, exact, percent, usd
from auditor.spec import Registry, Venue

MORPHO = "morpho_blue"
AAVE = "aave_v3"
LOOK_THROUGH_DEPTH = 3  # wrapper of a wrapper of a wrapper: deeper nesting is not seen in practice
MAX_TEXT = 64  # on-chain names and symbols are attacker-chosen: cap them before they reach a terminal
BPS = Decimal(10_000)

# ReserveConfiguration.sol bit layout (aave-v3-core 1.19): what decides whether the token backs loans.


def _context() -> decimal.Context:
    return decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Collateral:
    """A token whose loss of value hits the audited token's lenders: the token itself or a token holding it."""

    address: str
    relation: str  # "direct" | "look-through"
    path: tuple[str, ...]  # audited token first, this collateral last
    via: str  # how the last hop was found: "token" | "asset()" | "holders_of"

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "relation": self.relation, "path": list(self.path), "via": self.via}


@dataclass(frozen=True)
class _Prices:
    """USD per whole token by token_key, and where each price came from."""

    usd: dict[str, Decimal]
    source: dict[str, str]

    def of(self, chain: str, address: str) -> Decimal | None:
        return self.usd.get(token_key(chain, address))


# ------------------------------------------------------------------ entry points


def run_exposure(
    token: str,
    chain: str,
    registry: Registry,
    client: ChainClient,
    *,
    look_through: Mapping[str, Decimal] | None = None,
    holders_of: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Who lends against `token` on `chain`, at the client's pinned block, as plain JSON-safe data.

    `look_through` maps token_key -> USD value of one whole token (e.g. backing ratio x par from the backing
    solver); it values posted collateral and the bad debt lenders would take at that value. `holders_of`
    maps token_key -> addresses of other tokens that hold it, so markets taking those as collateral count too.
    """
    token, venue = _check_input(token, chain, registry, client)
    found = run_plan(client, exposure_reads(token, Scope(chain, client, registry, [], {}, venue=venue),
                                            holders_of or {}))
    return found.document(look_through or {})


@dataclass(frozen=True)
class ExposureReads:
    """What the exposure plan read: the markets lending against the token, as every stage models them, and the
    map itself, valued once the token's look-through value (token_key -> USD per token) is known."""

    markets: dict[str, Market]
    document: Callable[[Mapping[str, Decimal]], dict[str, Any]]


def exposure_reads(token: str, scope: Scope, holders_of: Mapping[str, Sequence[str]]) -> Plan[ExposureReads]:
    """Every read the exposure map needs, as a plan; its result values them once the look-through is known.

    `scope.venue` is the chain's Morpho Blue (checked by `_check_input`). The audit runs this plan in the same
    rounds as the balance sheets, solves the backing, then calls the result with the look-through values.
    """
    venue, registry, chain, client = scope.venue, scope.registry, scope.chain, scope.client
    assert venue is not None
    pool = registry.venues.get(AAVE, {}).get(chain)
    notes: list[str] = []

    created, (fee_recipient, aave_assets) = yield from gather(created_markets(scope),
                                                              _venue_reads(scope, venue, pool))
    candidates = {c.params[1] for c in created.values()} | set(aave_assets)
    collaterals = yield from _look_through(scope, token, candidates, holders_of)

    chosen = sorted((c for c in created.values() if c.params[1].lower() in collaterals), key=lambda c: c.block)
    ids = [c.id for c in chosen]
    readings, (suppliers, borrowers) = yield from gather(read_markets(scope, ids), participants(scope, ids))
    if int(fee_recipient, 16) != 0:
        # Morpho pays its fee in supply shares without a Supply event: the fee recipient can hold a
        # position that no log shows, so it is asked in every market.
        suppliers |= {(i, fee_recipient) for i in ids}
    tokens = sorted({token, *(c.address for c in collaterals.values())}
                    | {r.loan_token for r in readings.values()} | {r.collateral_token for r in readings.values()})
    listed = [a for a in aave_assets if a.lower() in collaterals] if pool else []
    (positions, profiles), raw_metadata, (hard, price_notes, _gaps), aave_reads = yield from gather(
        _positions_and_profiles(scope, venue, sorted(suppliers | borrowers), sorted({a for _i, a in suppliers})),
        token_metadata(tokens), chain_prices(chain, registry, client.pinned.timestamp, scope.block),
        reserve_totals(scope, pool.address if pool else "", listed))
    metadata = {a: (m[0], _text(m[1])) for a, m in raw_metadata.items()}
    notes += price_notes

    def document(look_through: Mapping[str, Decimal]) -> dict[str, Any]:
        return _document(scope, token, venue, pool, created, fee_recipient, collaterals, ids, readings, positions,
                         profiles, metadata, _prices(hard, look_through), listed, aave_reads, list(notes))

    return ExposureReads(market_models(chain, readings, positions, raw_metadata), document)


def _document(
    scope: Scope, token: str, venue: Venue, pool: Venue | None, created: Mapping[bytes, CreatedMarket],
    fee_recipient: str, collaterals: Mapping[str, Collateral], ids: Sequence[bytes],
    readings: Mapping[bytes, MarketReading], positions: Mapping[tuple[bytes, str], ReadResult],
    profiles: Mapping[str, Mapping[str, ReadResult]], metadata: Mapping[str, tuple[int | None, str]],
    prices: _Prices, listed: Sequence[str], aave_reads: tuple[list[ReadResult], list[ReadResult]], notes: list[str],
) -> dict[str, Any]:
    """The exposure map as plain data, from its reads and the prices (pure)."""
    chain, client = scope.chain, scope.client

    by_market: dict[bytes, list[tuple[str, ReadResult]]] = {}
    for (market_id, account), result in sorted(positions.items()):
        by_market.setdefault(market_id, []).append((account, result))
    markets = [
        _market_dict(scope, created[i], readings[i], collaterals[readings[i].collateral_token.lower()],
                     by_market.get(i, []), metadata, prices, notes)
        for i in ids
    ]
    aave = _aave_section(scope, pool, listed, aave_reads, collaterals, metadata, prices) if pool else {
        "pool": None, "reserves": []}
    supplier_list = _supplier_dicts(scope, markets, profiles)
    decimals, symbol = metadata[token]
    return {
        "token": {"chain": chain, "address": token, "key": token_key(chain, token), "symbol": symbol,
                  "decimals": decimals},
        "pin": client.pinned.as_dict(),
        "morpho_blue": {"address": venue.address, "from_block": venue.from_block,
                        "markets_scanned": len(created), "fee_recipient": fee_recipient},
        "collaterals": [c.as_dict() for c in sorted(collaterals.values(), key=lambda c: (len(c.path), c.address))],
        "markets": markets,
        "suppliers": supplier_list,
        "aave_v3": aave,
        "totals": _totals(markets, supplier_list),
        "prices": {k: {"usd": format(v, "f"), "source": prices.source[k]} for k, v in sorted(prices.usd.items())},
        "notes": notes,
    }


def summary_lines(exposure: Mapping[str, Any]) -> list[str]:
    """The terminal summary: markets, then suppliers by amount at risk, then Aave reserves and notes."""
    token, pin, totals = exposure["token"], exposure["pin"], exposure["totals"]
    lines = [f"Exposure to {_text(token['symbol']) or '?'} ({token['address']}) on {token['chain']} at block "
             f"{pin['number']} ({pin['time']})"]
    through = [c for c in exposure["collaterals"] if c["relation"] == "look-through"]
    if through:
        lines.append("  held inside: " + ", ".join(c["address"] for c in through))
    lines.append(f"  Morpho Blue: {totals['markets']} markets of {exposure['morpho_blue']['markets_scanned']} "
                 f"created; supplied {usd(totals['supplied_usd'])}, borrowed {usd(totals['borrowed_usd'])}, "
                 f"{totals['suppliers']} suppliers")
    for market in exposure["markets"]:
        loan, collateral = _text(market["loan_symbol"]), _text(market["collateral_symbol"])
        relation = "" if market["relation"] == "direct" else " [look-through]"
        lines.append(
            f"    {market['id'][:10]}… {loan} against {collateral}{relation}, LLTV {percent(market['lltv'])}: "
            f"supplied {market['total_supplied'] or market['total_supplied_raw']} {loan}, borrowed "
            f"{market['total_borrowed'] or market['total_borrowed_raw']} {loan}, collateral "
            f"{market['collateral_posted'] or market['collateral_posted_raw']} {collateral}"
            + (f", bad debt at look-through {usd(market['bad_debt_usd'])}"
               if market["bad_debt_usd"] and Decimal(market["bad_debt_usd"]) > 0 else "")
        )
    if exposure["suppliers"]:
        lines.append("  suppliers, by amount at risk:")
    for supplier in exposure["suppliers"]:
        who = supplier["address"]
        if supplier["name"]:
            who += f" {_text(supplier['name'])!r}"
        roles = [f"{role} {supplier[role]}" for role in ("curator", "owner") if supplier[role]]
        if roles:
            who += f" ({', '.join(roles)})"
        amounts = (f"at risk {usd(supplier['at_risk_usd'])} of {usd(supplier['supplied_usd'])} supplied"
                   if supplier["supplied_usd"] is not None else
                   "; ".join(f"at risk {t['at_risk'] or t['at_risk_raw']} of {t['supplied'] or t['supplied_raw']} "
                             f"{_text(t['symbol'])}" for t in supplier["by_loan_token"]))
        lines.append(f"    {who}: {amounts} in {len(supplier['markets'])} market(s)")
    aave = exposure["aave_v3"]
    for reserve in aave["reserves"]:
        lines.append(
            f"  Aave v3 {aave['pool']}: {_text(reserve['symbol'])} listed, LTV {reserve['ltv_bps'] / 100:g}%, "
            f"supplied {reserve['supplied'] or reserve['supplied_raw']}, borrowed "
            f"{reserve['borrowed'] or reserve['borrowed_raw']}"
            + ("" if reserve["active"] and not reserve["frozen"] else " (inactive or frozen)")
        )
    lines += [f"  note: {note}" for note in exposure["notes"]]
    return lines


# ------------------------------------------------------------------ input and discovery


def _check_input(token: str, chain: str, registry: Registry, client: ChainClient) -> tuple[str, Venue]:
    try:
        address = check_address(token)
    except ValueError as exc:
        raise ConfigError(f"exposure: token {token!r} is not an address: {exc}") from None
    morpho = registry.venues.get(MORPHO, {})
    if chain not in morpho:
        known = ", ".join(sorted(morpho)) or "none"
        raise ConfigError(f"exposure: the registry {registry.path} has no morpho_blue venue on chain {chain!r} "
                          f"(chains with one: {known})")
    if client.chain != chain:
        raise ConfigError(f"exposure: asked about chain {chain!r} with a client for {client.chain!r}")
    return address, morpho[chain]


def _venue_reads(scope: Scope, venue: Venue, pool: Venue | None) -> Plan[tuple[str, list[str]]]:
    """Morpho's fee recipient and, where the chain has Aave v3, the pool's listed assets: one batch."""
    reads = [Read(venue.address, "feeRecipient()", returns=("address",))]
    if pool is not None:
        reads.append(Read(pool.address, "getReservesList()", returns=("address[]",)))
    results = yield from plan_reads(reads)
    for result in results:
        if not result.ok:
            raise ChainError(scope.chain, result.read.describe(), str(scope.block), result.error)
    return results[0].one, list(results[1].one) if pool is not None else []


def _look_through(
    scope: Scope, token: str, candidates: set[str], holders_of: Mapping[str, Sequence[str]]
) -> Plan[dict[str, Collateral]]:
    """The token and every candidate collateral that holds it, through ERC-4626 asset() or `holders_of`."""
    # Ask asset() of the candidates, then of what they wrap, so a wrapper of a wrapper that is not itself
    # a collateral anywhere still links the outer one to the token. A revert just means "not a wrapper".
    asset_of: dict[str, str] = {}
    pending = {c for c in candidates if c.lower() != token.lower()}
    for _ in range(LOOK_THROUGH_DEPTH):
        ask = sorted(a for a in pending if a.lower() not in asset_of)
        if not ask:
            break
        results = yield from plan_reads([Read(a, "asset()", returns=("address",)) for a in ask])
        pending = set()
        for address, result in zip(ask, results, strict=True):
            if result.ok and int(result.one, 16) != 0:
                asset_of[address.lower()] = result.one
                if result.one.lower() != token.lower():
                    pending.add(result.one)
    inside: dict[str, list[tuple[str, str]]] = {}  # underlying (lower) -> [(holder, via)]
    for holder, underlying in asset_of.items():
        inside.setdefault(underlying.lower(), []).append((to_checksum(holder), "asset()"))
    for key, holders in holders_of.items():
        underlying = key.rpartition(":")[2].lower()
        for holder in holders:
            try:
                checked = check_address(holder)
            except ValueError as exc:
                raise ConfigError(f"exposure: holders_of[{key!r}] lists {holder!r}, not an address: {exc}") from None
            inside.setdefault(underlying, []).append((checked, "holders_of"))

    found = {token.lower(): Collateral(token, "direct", (token,), "token")}
    frontier = [found[token.lower()]]
    for _ in range(LOOK_THROUGH_DEPTH):
        next_frontier = []
        for outer in frontier:
            for holder, via in sorted(inside.get(outer.address.lower(), [])):
                if holder.lower() not in found:
                    found[holder.lower()] = Collateral(holder, "look-through", (*outer.path, holder), via)
                    next_frontier.append(found[holder.lower()])
        frontier = next_frontier
    return found


PROFILE_GETTERS = (
    ("asset", "asset()", "address"),
    ("total_assets", "totalAssets()", "uint256"),
    ("name", "name()", "string"),
    ("symbol", "symbol()", "string"),
    ("curator", "curator()", "address"),
    ("owner", "owner()", "address"),
)


def _positions_and_profiles(
    scope: Scope, venue: Venue, pairs: Sequence[tuple[bytes, str]], suppliers: Sequence[str]
) -> Plan[tuple[dict[tuple[bytes, str], ReadResult], dict[str, dict[str, ReadResult]]]]:
    """Every (market, account) position, and each supplier's vault getters (reverts allowed): one batch."""
    reads = [Read(venue.address, "position(bytes32,address)", (market_id, account),
                  returns=("uint256", "uint128", "uint128")) for market_id, account in pairs]
    for supplier in suppliers:
        reads += [Read(supplier, signature, returns=(kind,)) for _field, signature, kind in PROFILE_GETTERS]
    results = yield from plan_reads(reads)
    positions: dict[tuple[bytes, str], ReadResult] = {}
    for pair, result in zip(pairs, results[: len(pairs)], strict=True):
        if not result.ok:
            raise_unreadable(scope, result, pair[0])
        positions[pair] = result
    profiles: dict[str, dict[str, ReadResult]] = {}
    rest = results[len(pairs):]
    for index, supplier in enumerate(suppliers):
        chunk = rest[index * len(PROFILE_GETTERS) : (index + 1) * len(PROFILE_GETTERS)]
        profiles[supplier] = {name: result for (name, _s, _k), result in zip(PROFILE_GETTERS, chunk, strict=True)}
    return positions, profiles


def _prices(hard: Mapping[str, HardAsset], look_through: Mapping[str, Decimal]) -> _Prices:
    """Hard assets at their registry price (par or feed at the pin); other tokens at the given look-through value."""
    usd: dict[str, Decimal] = {}
    source: dict[str, str] = {}
    for key, value in look_through.items():
        usd[key.lower()] = Decimal(value)
        source[key.lower()] = "look-through"
    for key, asset in hard.items():
        if asset.price_usd > 0:  # an unusable or stale feed prices at 0: no USD figure beats a wrong one
            usd[key], source[key] = asset.price_usd, asset.price_source
        else:
            usd.pop(key, None)
            source.pop(key, None)
    return _Prices(usd, source)


# ------------------------------------------------------------------ one market


def _market_dict(
    scope: Scope,
    created: CreatedMarket,
    reading: MarketReading,
    collateral: Collateral,
    positions: Sequence[tuple[str, ReadResult]],
    metadata: Mapping[str, tuple[int | None, str]],
    prices: _Prices,
    notes: list[str],
) -> dict[str, Any]:
    chain = scope.chain
    state = reading.state
    loan_decimals, loan_symbol = metadata[reading.loan_token]
    collateral_decimals, collateral_symbol = metadata[reading.collateral_token]
    loan_price = prices.of(chain, reading.loan_token)
    collateral_price = prices.of(chain, reading.collateral_token)
    key = market_key(chain, reading.id)
    if loan_price is None:
        notes.append(f"{key}: loan token {reading.loan_token} is not a priced hard asset; no USD figures")

    suppliers: list[dict[str, Any]] = []
    borrowers: list[dict[str, Any]] = []
    collateral_posted = 0
    bad_debt: Decimal | None = Decimal(0) if loan_price is not None and collateral_price is not None else None
    for account, result in positions:
        supply_shares, borrow_shares, collateral_amount = result.value
        evidence = scope.evidence(result).as_dict()
        if supply_shares:
            supplied = to_assets_down(supply_shares, state.total_supply_assets, state.total_supply_shares)
            # Every lender shares every borrower's default pro rata: its share of the borrowed assets is at risk.
            at_risk = (supplied * state.total_borrow_assets // state.total_supply_assets
                       if state.total_supply_assets else 0)
            suppliers.append({
                "address": account, "supply_shares": str(supply_shares),
                **_amounts("supplied", supplied, loan_decimals, loan_price),
                **_amounts("at_risk", at_risk, loan_decimals, loan_price),
                "share_of_market": exact(_ratio(supplied, state.total_supply_assets)),
                "evidence": evidence,
            })
        if borrow_shares or collateral_amount:
            debt = to_assets_up(borrow_shares, state.total_borrow_assets, state.total_borrow_shares)
            collateral_posted += collateral_amount
            shortfall = _shortfall(debt, loan_decimals, loan_price, collateral_amount, collateral_decimals,
                                   collateral_price)
            if bad_debt is not None:
                bad_debt = None if shortfall is None else bad_debt + shortfall
            borrowers.append({
                "address": account,
                **_amounts("debt", debt, loan_decimals, loan_price),
                **_amounts("collateral", collateral_amount, collateral_decimals, collateral_price),
                "evidence": evidence,
            })
    for supplier in suppliers:
        supplied_raw = int(supplier["supplied_raw"])
        supplier["look_through_loss_usd"] = (
            None if bad_debt is None or not state.total_supply_assets
            else exact(_pro_rata(bad_debt, supplied_raw, state.total_supply_assets))
        )
    suppliers.sort(key=lambda s: (-int(s["supplied_raw"]), s["address"]))
    borrowers.sort(key=lambda b: (-int(b["debt_raw"]), b["address"]))
    oracle_price = None
    if reading.oracle_price is not None and loan_decimals is not None and collateral_decimals is not None:
        oracle_price = oracle_in_loan_tokens(reading.oracle_price, loan_decimals, collateral_decimals)
    return {
        "key": key,
        "id": "0x" + reading.id.hex(),
        "relation": collateral.relation,
        "collateral_path": list(collateral.path),
        "created_block": created.block,
        "loan_token": reading.loan_token,
        "loan_symbol": loan_symbol,
        "loan_decimals": loan_decimals,
        "loan_price_usd": None if loan_price is None else format(loan_price, "f"),
        "collateral_token": reading.collateral_token,
        "collateral_symbol": collateral_symbol,
        "collateral_decimals": collateral_decimals,
        "collateral_price_usd": None if collateral_price is None else format(collateral_price, "f"),
        "collateral_price_source": prices.source.get(token_key(chain, reading.collateral_token)),
        "oracle": reading.oracle,
        "oracle_price_raw": None if reading.oracle_price is None else str(reading.oracle_price),
        "oracle_price": None if oracle_price is None else exact(oracle_price),
        "irm": reading.irm,
        "lltv_raw": str(reading.lltv),
        "lltv": exact(Decimal(reading.lltv) / Decimal(WAD)),
        "fee": str(state.fee),
        "last_update": reading.stored.last_update,
        "accrued_to": state.last_update,
        **_amounts("total_supplied", state.total_supply_assets, loan_decimals, loan_price),
        **_amounts("total_borrowed", state.total_borrow_assets, loan_decimals, loan_price),
        **_amounts("collateral_posted", collateral_posted, collateral_decimals, collateral_price,
                   usd_name="collateral_value_usd"),
        "utilization": exact(_ratio(state.total_borrow_assets, state.total_supply_assets)),
        "bad_debt_usd": None if bad_debt is None else exact(bad_debt),
        "suppliers": suppliers,
        "borrowers": borrowers,
        "evidence": [e.as_dict() for e in reading.evidence],
    }


def _shortfall(
    debt: int, loan_decimals: int | None, loan_price: Decimal | None,
    collateral: int, collateral_decimals: int | None, collateral_price: Decimal | None,
) -> Decimal | None:
    """What one borrower's debt exceeds its collateral by, both in USD; None when either cannot be valued."""
    debt_usd = _usd_value(debt, loan_decimals, loan_price)
    collateral_usd = _usd_value(collateral, collateral_decimals, collateral_price)
    if debt_usd is None or collateral_usd is None:
        return None
    return max(Decimal(0), debt_usd - collateral_usd)


# ------------------------------------------------------------------ suppliers across markets


def _supplier_dicts(
    scope: Scope, markets: Sequence[Mapping[str, Any]], profiles: Mapping[str, Mapping[str, ReadResult]]
) -> list[dict[str, Any]]:
    """One entry per supplier with a live position: each market, totals per loan token and in USD."""
    by_address: dict[str, dict[str, Any]] = {}
    for market in markets:
        for position in market["suppliers"]:
            entry = by_address.setdefault(position["address"], {"markets": []})
            entry["markets"].append({
                "market": market["key"], "id": market["id"], "relation": market["relation"],
                "loan_token": market["loan_token"], "loan_symbol": market["loan_symbol"],
                "loan_decimals": market["loan_decimals"],
                "collateral_token": market["collateral_token"], "collateral_symbol": market["collateral_symbol"],
                **{k: position[k] for k in ("supplied_raw", "supplied", "supplied_usd", "at_risk_raw", "at_risk",
                                            "at_risk_usd", "look_through_loss_usd")},
            })
    out = []
    for address, entry in by_address.items():
        per_token: dict[str, dict[str, Any]] = {}
        for item in entry["markets"]:
            totals = per_token.setdefault(item["loan_token"], {
                "token": item["loan_token"], "symbol": item["loan_symbol"], "decimals": item["loan_decimals"],
                "supplied": 0, "at_risk": 0})
            totals["supplied"] += int(item["supplied_raw"])
            totals["at_risk"] += int(item["at_risk_raw"])
        by_token = [
            {"token": t["token"], "symbol": t["symbol"],
             **_amounts("supplied", t["supplied"], t["decimals"], None, usd_name=None),
             **_amounts("at_risk", t["at_risk"], t["decimals"], None, usd_name=None)}
            for t in sorted(per_token.values(), key=lambda t: t["token"])
        ]
        profile = _profile(scope, profiles.get(address, {}))
        out.append({
            "address": address,
            **profile,
            "markets": entry["markets"],
            "by_loan_token": by_token,
            # A USD total is given only when every part of it is priced: a partial sum would read as complete.
            "supplied_usd": _usd_sum(m["supplied_usd"] for m in entry["markets"]),
            "at_risk_usd": _usd_sum(m["at_risk_usd"] for m in entry["markets"]),
            "look_through_loss_usd": _usd_sum(m["look_through_loss_usd"] for m in entry["markets"]),
        })
    out.sort(key=lambda s: (s["at_risk_usd"] is None, -Decimal(s["at_risk_usd"] or 0), s["address"]))
    return out


def _profile(scope: Scope, results: Mapping[str, ReadResult]) -> dict[str, Any]:
    """Vault identity from its getters; any that reverts (or an EOA, which answers nothing) is null."""
    def value(name: str) -> Any:
        result = results.get(name)
        return result.one if result is not None and result.ok else None

    asset, total_assets = value("asset"), value("total_assets")
    texts = {name: None if value(name) is None else _text(value(name)) for name in ("name", "symbol")}
    is_vault = isinstance(asset, str) and int(asset, 16) != 0
    answers = any(value(n) is not None for n in ("name", "symbol", "curator", "owner"))
    return {
        "kind": "vault" if is_vault else ("contract" if answers else "account"),
        "erc4626": is_vault and total_assets is not None,
        "name": texts["name"],
        "symbol": texts["symbol"],
        "curator": value("curator"),
        "owner": value("owner"),
        "asset": asset if is_vault else None,
        "evidence": [scope.evidence(r).as_dict() for r in results.values()],
    }


def _totals(markets: Sequence[Mapping[str, Any]], suppliers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "markets": len(markets),
        "markets_look_through": sum(1 for m in markets if m["relation"] == "look-through"),
        "suppliers": len(suppliers),
        "vaults": sum(1 for s in suppliers if s["kind"] == "vault"),
        "supplied_usd": _usd_sum(m["total_supplied_usd"] for m in markets),
        "borrowed_usd": _usd_sum(m["total_borrowed_usd"] for m in markets),
        "collateral_value_usd": _usd_sum(m["collateral_value_usd"] for m in markets),
        "bad_debt_usd": _usd_sum(m["bad_debt_usd"] for m in markets),
        "unpriced_markets": [m["key"] for m in markets if m["total_supplied_usd"] is None],
    }


# ------------------------------------------------------------------ Aave v3


def _aave_section(
    scope: Scope, pool: Venue, assets: Sequence[str], reads: tuple[list[ReadResult], list[ReadResult]],
    collaterals: Mapping[str, Collateral], metadata: Mapping[str, tuple[int | None, str]], prices: _Prices,
) -> dict[str, Any]:
    """Reserves of the pool that list the token (or a token holding it): configuration and pool-wide totals."""
    if not assets:
        return {"pool": pool.address, "reserves": []}
    reserves = []
    for asset, totals in zip(assets, reserve_states(scope, assets, *reads), strict=True):
        price = prices.of(scope.chain, asset)
        collateral = collaterals[asset.lower()]
        reserves.append({
            "asset": asset,
            "symbol": metadata.get(asset, (None, ""))[1],
            "relation": collateral.relation,
            "collateral_path": list(collateral.path),
            **totals.configuration,
            **_amounts("supplied", totals.supplied, totals.decimals, price, usd_name="supplied_value_usd"),
            **_amounts("borrowed", totals.borrowed, totals.decimals, price, usd_name="borrowed_value_usd"),
            "evidence": [e.as_dict() for e in totals.evidence],
        })
    return {"pool": pool.address, "reserves": reserves}


# ------------------------------------------------------------------ numbers and text


def _amounts(name: str, raw: int, decimals: int | None, price: Decimal | None,
             usd_name: str | None = "") -> dict[str, Any]:
    """`name_raw` (integer string), `name` (decimals applied, or null) and a USD value (null when unpriced)."""
    out: dict[str, Any] = {f"{name}_raw": str(raw), name: None if decimals is None else exact(
        _usd_value(raw, decimals, Decimal(1)) or Decimal(0))}
    if usd_name is not None:
        value = _usd_value(raw, decimals, price)
        out[usd_name or f"{name}_usd"] = None if value is None else exact(value)
    return out


def _usd_value(raw: int, decimals: int | None, price: Decimal | None) -> Decimal | None:
    """Whole tokens times a USD price, at 60 digits so 30-digit raw amounts are not rounded."""
    if decimals is None or price is None:
        return None
    with decimal.localcontext(_context()):
        return Decimal(raw) / Decimal(10) ** decimals * price


def _pro_rata(amount: Decimal, part: int, whole: int) -> Decimal:
    with decimal.localcontext(_context()):
        return amount * Decimal(part) / Decimal(whole)


def _ratio(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    with decimal.localcontext(_context()):
        return Decimal(part) / Decimal(whole)


def _usd_sum(values: Any) -> str | None:
    total = Decimal(0)
    with decimal.localcontext(context()):  # full precision: the default context keeps only 28 digits
        for value in values:
            if value is None:
                return None
            total += Decimal(value)
    return exact(total)


def _text(value: Any) -> str:
    """An on-chain string made safe to print: control and format characters (escapes, bidi overrides) dropped."""
    if not isinstance(value, str):
        return ""
    cleaned = "".join(ch for ch in value if not unicodedata.category(ch).startswith("C"))
    return cleaned if len(cleaned) <= MAX_TEXT else cleaned[: MAX_TEXT - 1] + "…"


