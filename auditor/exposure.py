"""Exposure map: every market and reserve, in every venue that lends against a token, and who is at risk.

Venue-neutral: each venue module answers for itself (`@exposure_source`, auditor/lending.py); this module finds
which candidate collaterals are the token or hold it (ERC-4626 look-through), reads the lenders' vault
profiles, token metadata and hard-asset prices in the venues' last round, and merges their answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor.adapters import Scope, decode_metadata, load_venues, metadata_reads
from auditor.addresses import check_address, to_checksum
from auditor.chain.plan import Plan, gather, run_plan
from auditor.chain.plan import reads as plan_reads
from auditor.chain.reader import ChainClient, Read, ReadResult
from auditor.chain.rpc import ConfigError
from auditor.ledger import chain_prices
from auditor.lending import Ask, Collateral, Extras, Lending, Prices, Valuing, amounts, printable, usd_sum
from auditor.model import HardAsset, Market, token_key
from auditor.numbers import percent, usd
from auditor.spec import Registry

# What a wrapper wraps, first answer wins: an ERC-4626 vault's asset(); a Pendle PT's SY() (PendlePrincipalToken)
# and an SY's yieldToken() (IStandardizedYield), so a market taking a PT over an SY over a vault of the token counts.
WRAPS = ("asset()", "SY()", "yieldToken()")
LOOK_THROUGH_DEPTH = 3  # wrapper of a wrapper of a wrapper: deeper nesting is not seen in practice


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
    address = _check_input(token, chain, registry, client)
    found = run_plan(client, exposure_reads(address, Scope(chain, client, registry, [], {}), holders_of or {}))
    return found.document(look_through or {})


def lending_venues(registry: Registry, chain: str) -> list[str]:
    """The registry's venues on `chain` whose module answers who lends against a token."""
    modules = load_venues()
    return sorted(name for name, chains in registry.venues.items()
                  if chain in chains and name in modules and modules[name].exposure is not None)


@dataclass(frozen=True)
class ExposureReads:
    """What the exposure plan read: the markets lending against the token, as every stage models them, and the
    map itself, valued once the token's look-through value (token_key -> USD per token) is known."""

    markets: dict[str, Market]
    document: Callable[[Mapping[str, Decimal]], dict[str, Any]]


def exposure_reads(token: str, scope: Scope, holders_of: Mapping[str, Sequence[str]]) -> Plan[ExposureReads]:
    """Every read the exposure map needs, as a plan; its result values them once the look-through is known.

    Every lending venue of the chain runs side by side; each sends the map's extras in its last round. The
    audit runs this plan in the same rounds as the balance sheets, solves the backing, then values the map.
    """
    registry, chain = scope.registry, scope.chain
    modules = load_venues()

    def look_through(candidates: set[str]) -> Plan[dict[str, Collateral]]:
        return (yield from _look_through(token, candidates, holders_of))

    def extras(lenders: set[str], tokens: set[str]) -> Plan[Extras]:
        return (yield from _extras(scope, sorted(lenders), sorted(tokens | {token})))

    ask = Ask(token, look_through, extras)
    names = lending_venues(registry, chain)
    plans = []
    for name in names:
        source = modules[name].exposure
        assert source is not None  # lending_venues keeps only these
        plans.append(source(Scope(chain, scope.client, registry, [], {}, venue=registry.venues[name][chain]), ask))
    found: list[Lending] = yield from gather(*plans)
    answered = [f.extras for f in found if f.extras is not None]
    if not answered or token not in answered[0].metadata:
        answered.append((yield from extras(set(), set())))  # no venue lends against it: name and price the token
    merged = Extras({}, {}, {}, [])
    for part in answered:
        merged.profiles.update(part.profiles)
        merged.metadata.update(part.metadata)
        merged.hard.update(part.hard)
        merged.notes += [n for n in part.notes if n not in merged.notes]
    markets: dict[str, Market] = {}
    for lending in found:
        markets.update(lending.markets)

    def document(look_through_usd: Mapping[str, Decimal]) -> dict[str, Any]:
        return _document(scope, token, found, merged, _prices(merged.hard, look_through_usd))

    return ExposureReads(markets, document)


def _document(scope: Scope, token: str, found: Sequence[Lending], extras: Extras, prices: Prices) -> dict[str, Any]:
    """The exposure map as plain data, from every venue's answer and the prices (pure)."""
    chain, client = scope.chain, scope.client
    notes = list(extras.notes)
    valuing = Valuing({a: (m[0], printable(m[1])) for a, m in extras.metadata.items()}, prices, notes)
    markets: list[dict[str, Any]] = []
    venues: dict[str, Any] = {}
    collaterals: dict[str, Collateral] = {}
    for lending in found:
        venue_markets, listings = lending.value(valuing)
        markets += venue_markets
        collaterals.update(lending.collaterals)
        venues[lending.venue] = {"address": lending.address, **lending.facts, "markets": len(venue_markets),
                                 "listings": listings}
    if not collaterals:
        collaterals[token.lower()] = Collateral(token, "direct", (token,), "token")
    supplier_list = _supplier_dicts(scope, markets, extras.profiles)
    decimals, symbol = valuing.metadata[token]
    return {
        "token": {"chain": chain, "address": token, "key": token_key(chain, token), "symbol": symbol,
                  "decimals": decimals},
        "pin": client.pinned.as_dict(),
        "venues": venues,
        "collaterals": [c.as_dict() for c in sorted(collaterals.values(), key=lambda c: (len(c.path), c.address))],
        "markets": markets,
        "suppliers": supplier_list,
        "totals": _totals(markets, supplier_list),
        "prices": {k: {"usd": format(v, "f"), "source": prices.source[k]} for k, v in sorted(prices.usd.items())},
        "notes": notes,
    }


def summary_lines(exposure: Mapping[str, Any]) -> list[str]:
    """The terminal summary: venues, markets, then suppliers by amount at risk, then listings and notes."""
    token, pin, totals = exposure["token"], exposure["pin"], exposure["totals"]
    lines = [f"Exposure to {printable(token['symbol']) or '?'} ({token['address']}) on {token['chain']} at block "
             f"{pin['number']} ({pin['time']})"]
    through = [c for c in exposure["collaterals"] if c["relation"] == "look-through"]
    if through:
        lines.append("  held inside: " + ", ".join(c["address"] for c in through))
    for name, venue in sorted(exposure["venues"].items()):
        facts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in venue.items()
                          if k not in ("address", "markets", "listings"))
        lines.append(f"  {name} {venue['address']}: {venue['markets']} market(s), {len(venue['listings'])} "
                     f"listing(s)" + (f" ({facts})" if facts else ""))
    lines.append(f"  lending markets: {totals['markets']}; supplied {usd(totals['supplied_usd'])}, borrowed "
                 f"{usd(totals['borrowed_usd'])}, {totals['suppliers']} suppliers")
    for market in exposure["markets"]:
        loan, collateral = printable(market["loan_symbol"]), printable(market["collateral_symbol"])
        relation = "" if market["relation"] == "direct" else " [look-through]"
        lines.append(
            f"    {market['venue']} {market['id'][:10]}… {loan} against {collateral}{relation}, LLTV "
            f"{percent(market['lltv'])}: supplied {market['total_supplied'] or market['total_supplied_raw']} {loan}, "
            f"borrowed {market['total_borrowed'] or market['total_borrowed_raw']} {loan}, collateral "
            f"{market['collateral_posted'] or market['collateral_posted_raw']} {collateral}"
            + (f", bad debt at look-through {usd(market['bad_debt_usd'])}"
               if market["bad_debt_usd"] and Decimal(market["bad_debt_usd"]) > 0 else "")
        )
    if exposure["suppliers"]:
        lines.append("  suppliers, by amount at risk:")
    for supplier in exposure["suppliers"]:
        who = supplier["address"]
        if supplier["name"]:
            who += f" {printable(supplier['name'])!r}"
        roles = [f"{role} {supplier[role]}" for role in ("curator", "owner") if supplier[role]]
        if roles:
            who += f" ({', '.join(roles)})"
        amounts_text = (f"at risk {usd(supplier['at_risk_usd'])} of {usd(supplier['supplied_usd'])} supplied"
                        if supplier["supplied_usd"] is not None else
                        "; ".join(f"at risk {t['at_risk'] or t['at_risk_raw']} of {t['supplied'] or t['supplied_raw']} "
                                  f"{printable(t['symbol'])}" for t in supplier["by_loan_token"]))
        lines.append(f"    {who}: {amounts_text} in {len(supplier['markets'])} market(s)")
    for name, venue in sorted(exposure["venues"].items()):
        for listing in venue["listings"]:
            terms = ", ".join(f"{k} {v}" for k, v in listing["terms"].items())
            lines.append(
                f"  {name} {venue['address']}: {printable(listing['symbol'])} listed, {terms}, supplied "
                f"{listing['supplied'] or listing['supplied_raw']}, borrowed "
                f"{listing['borrowed'] or listing['borrowed_raw']}" + ("" if listing["usable"] else " (not usable)"))
    lines += [f"  note: {note}" for note in exposure["notes"]]
    return lines


# ------------------------------------------------------------------ input and discovery


def _check_input(token: str, chain: str, registry: Registry, client: ChainClient) -> str:
    try:
        address = check_address(token)
    except ValueError as exc:
        raise ConfigError(f"exposure: token {token!r} is not an address: {exc}") from None
    if not lending_venues(registry, chain):
        with_one = sorted({c for name, chains in registry.venues.items() for c in chains})
        raise ConfigError(f"exposure: the registry {registry.path} has no lending venue on chain {chain!r} "
                          f"(chains with one: {', '.join(with_one) or 'none'})")
    if client.chain != chain:
        raise ConfigError(f"exposure: asked about chain {chain!r} with a client for {client.chain!r}")
    return address


def _look_through(token: str, candidates: set[str], holders_of: Mapping[str, Sequence[str]]
                  ) -> Plan[dict[str, Collateral]]:
    """The token and every candidate collateral that holds it, through ERC-4626 asset() or `holders_of`."""
    # Ask asset() of the candidates, then of what they wrap, so a wrapper of a wrapper that is not itself
    # a collateral anywhere still links the outer one to the token. A revert just means "not a wrapper".
    asset_of: dict[str, tuple[str, str]] = {}  # wrapper (lower) -> (what it wraps, the getter that said so)
    pending = {c for c in candidates if c.lower() != token.lower()}
    for _ in range(LOOK_THROUGH_DEPTH):
        ask = sorted(a for a in pending if a.lower() not in asset_of)
        if not ask:
            break
        results = yield from plan_reads([Read(a, getter, returns=("address",)) for a in ask for getter in WRAPS])
        pending = set()
        for index, address in enumerate(ask):
            for getter, result in zip(WRAPS, results[index * len(WRAPS): (index + 1) * len(WRAPS)], strict=True):
                if result.ok and int(result.one, 16) != 0:
                    asset_of[address.lower()] = (result.one, getter)
                    if result.one.lower() != token.lower():
                        pending.add(result.one)
                    break
    inside: dict[str, list[tuple[str, str]]] = {}  # underlying (lower) -> [(holder, via)]
    for holder, (underlying, getter) in asset_of.items():
        inside.setdefault(underlying.lower(), []).append((to_checksum(holder), getter))
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


def _extras(scope: Scope, lenders: Sequence[str], tokens: Sequence[str]) -> Plan[Extras]:
    """Lenders' vault getters (reverts allowed), token metadata and the chain's hard-asset prices: one round."""
    reads = [Read(lender, signature, returns=(kind,)) for lender in lenders for _f, signature, kind in PROFILE_GETTERS]
    results, (hard, notes, _gaps) = yield from gather(
        plan_reads(reads + metadata_reads(tokens)),
        chain_prices(scope.chain, scope.registry, scope.client.pinned.timestamp, scope.block))
    profiles: dict[str, dict[str, ReadResult]] = {}
    for index, lender in enumerate(lenders):
        chunk = results[index * len(PROFILE_GETTERS) : (index + 1) * len(PROFILE_GETTERS)]
        profiles[lender] = {name: result for (name, _s, _k), result in zip(PROFILE_GETTERS, chunk, strict=True)}
    metadata = decode_metadata(tokens, results[len(reads):])
    return Extras(profiles, metadata, hard, list(notes))


def _prices(hard: Mapping[str, HardAsset], look_through: Mapping[str, Decimal]) -> Prices:
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
    return Prices(usd, source)


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
                "market": market["key"], "venue": market["venue"], "id": market["id"], "relation": market["relation"],
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
             **amounts("supplied", t["supplied"], t["decimals"], None, usd_name=None),
             **amounts("at_risk", t["at_risk"], t["decimals"], None, usd_name=None)}
            for t in sorted(per_token.values(), key=lambda t: t["token"])
        ]
        profile = _profile(scope, profiles.get(address, {}))
        out.append({
            "address": address,
            **profile,
            "markets": entry["markets"],
            "by_loan_token": by_token,
            # A USD total is given only when every part of it is priced: a partial sum would read as complete.
            "supplied_usd": usd_sum(m["supplied_usd"] for m in entry["markets"]),
            "at_risk_usd": usd_sum(m["at_risk_usd"] for m in entry["markets"]),
            "look_through_loss_usd": usd_sum(m["look_through_loss_usd"] for m in entry["markets"]),
        })
    out.sort(key=lambda s: (s["at_risk_usd"] is None, -Decimal(s["at_risk_usd"] or 0), s["address"]))
    return out


def _profile(scope: Scope, results: Mapping[str, ReadResult]) -> dict[str, Any]:
    """Vault identity from its getters; any that reverts (or an EOA, which answers nothing) is null."""
    def value(name: str) -> Any:
        result = results.get(name)
        return result.one if result is not None and result.ok else None

    asset, total_assets = value("asset"), value("total_assets")
    texts = {name: None if value(name) is None else printable(value(name)) for name in ("name", "symbol")}
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
        "supplied_usd": usd_sum(m["total_supplied_usd"] for m in markets),
        "borrowed_usd": usd_sum(m["total_borrowed_usd"] for m in markets),
        "collateral_value_usd": usd_sum(m["collateral_value_usd"] for m in markets),
        "bad_debt_usd": usd_sum(m["bad_debt_usd"] for m in markets),
        "unpriced_markets": [m["key"] for m in markets if m["total_supplied_usd"] is None],
    }
