"""Morpho Blue: markets where issuer accounts supply, post collateral or borrow, with every borrower of them.

Markets are discovered from Morpho's own events since the venue's deployment block (onBehalf
topics), so private and unlisted markets are found too. Share amounts are converted to assets
exactly as Morpho rounds (supply down, borrow up) after accruing interest to the pin's timestamp
with the market's IRM, as `Morpho._accrueInterest` would if called in that block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor import flows
from auditor.adapters import Collected, Rate, Scope, adapter, exposure_source, flow_source, rate, token_metadata
from auditor.addresses import to_checksum
from auditor.chain.abi import EventDecoder, address_topic
from auditor.chain.plan import Plan, gather, logs
from auditor.chain.plan import reads as plan_reads
from auditor.chain.reader import Read, ReadResult
from auditor.lending import (
    Ask,
    Collateral,
    Lending,
    LendingFlow,
    Valuing,
    VenueFlows,
    account_events,
    amounts,
    pro_rata,
    ratio,
    shortfall,
)
from auditor.model import COLLATERAL, DEBT, SUPPLY, Borrower, Evidence, Market, Position, token_key
from auditor.numbers import exact
from auditor.rates import market_borrow_apy, market_supply_apy, utilization

WAD = 10**18
VIRTUAL_SHARES = 10**6  # SharesMathLib.VIRTUAL_SHARES
VIRTUAL_ASSETS = 1  # SharesMathLib.VIRTUAL_ASSETS
ORACLE_PRICE_SCALE = 10**36  # ConstantsLib.ORACLE_PRICE_SCALE

# EventsLib declarations (morpho-blue 1.0.0 src/libraries/EventsLib.sol); bytes32 is Morpho's `Id`.
SUPPLY_EVENT = EventDecoder(
    "Supply(bytes32 indexed id,address indexed caller,address indexed onBehalf,uint256 assets,uint256 shares)"
)
WITHDRAW_EVENT = EventDecoder(
    "Withdraw(bytes32 indexed id,address caller,address indexed onBehalf,address indexed receiver,"
    "uint256 assets,uint256 shares)"
)
BORROW_EVENT = EventDecoder(
    "Borrow(bytes32 indexed id,address caller,address indexed onBehalf,address indexed receiver,"
    "uint256 assets,uint256 shares)"
)
REPAY_EVENT = EventDecoder(
    "Repay(bytes32 indexed id,address indexed caller,address indexed onBehalf,uint256 assets,uint256 shares)"
)
SUPPLY_COLLATERAL_EVENT = EventDecoder(
    "SupplyCollateral(bytes32 indexed id,address indexed caller,address indexed onBehalf,uint256 assets)"
)
WITHDRAW_COLLATERAL_EVENT = EventDecoder(
    "WithdrawCollateral(bytes32 indexed id,address caller,address indexed onBehalf,address indexed receiver,"
    "uint256 assets)"
)
LIQUIDATE_EVENT = EventDecoder(
    "Liquidate(bytes32 indexed id,address indexed caller,address indexed borrower,uint256 repaidAssets,"
    "uint256 repaidShares,uint256 seizedAssets,uint256 badDebtAssets,uint256 badDebtShares)"
)
CREATE_MARKET_EVENT = EventDecoder(
    "CreateMarket(bytes32 indexed id,(address,address,address,address,uint256) marketParams)"
)

MARKET_PARAMS = "(address,address,address,address,uint256)"
MARKET_STATE = "(uint128,uint128,uint128,uint128,uint128,uint128)"


# ------------------------------------------------------------------ Morpho's maths, exactly


def mul_div_down(x: int, y: int, d: int) -> int:
    return x * y // d


def mul_div_up(x: int, y: int, d: int) -> int:
    return (x * y + (d - 1)) // d


def w_taylor_compounded(x: int, n: int) -> int:
    """e^(x*n) - 1 to third order, as MathLib.wTaylorCompounded."""
    first = x * n
    second = mul_div_down(first, first, 2 * WAD)
    third = mul_div_down(second, first, 3 * WAD)
    return first + second + third


def to_assets_down(shares: int, total_assets: int, total_shares: int) -> int:
    return mul_div_down(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    return mul_div_up(shares, total_assets + VIRTUAL_ASSETS, total_shares + VIRTUAL_SHARES)


def to_shares_down(assets: int, total_assets: int, total_shares: int) -> int:
    return mul_div_down(assets, total_shares + VIRTUAL_SHARES, total_assets + VIRTUAL_ASSETS)


@dataclass(frozen=True)
class MarketState:
    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee: int

    def accrued(self, borrow_rate: int, timestamp: int) -> MarketState:
        """The state Morpho._accrueInterest would write at `timestamp` (rate per second, WAD)."""
        elapsed = timestamp - self.last_update
        if elapsed <= 0 or borrow_rate == 0:
            return MarketState(self.total_supply_assets, self.total_supply_shares, self.total_borrow_assets,
                               self.total_borrow_shares, max(self.last_update, timestamp), self.fee)
        interest = mul_div_down(self.total_borrow_assets, w_taylor_compounded(borrow_rate, elapsed), WAD)
        supply_assets = self.total_supply_assets + interest
        supply_shares = self.total_supply_shares
        if self.fee:
            fee_amount = mul_div_down(interest, self.fee, WAD)
            supply_shares += to_shares_down(fee_amount, supply_assets - fee_amount, supply_shares)
        return MarketState(supply_assets, supply_shares, self.total_borrow_assets + interest,
                           self.total_borrow_shares, timestamp, self.fee)


# ------------------------------------------------------------------ discovery


def _ids_from_logs(scope: Scope, topics: Sequence[Any], field: str, decoder: EventDecoder
                   ) -> Plan[set[tuple[bytes, str]]]:
    assert scope.venue is not None
    found: set[tuple[bytes, str]] = set()
    for log in (yield from logs([scope.venue.address], topics, scope.venue.from_block)):
        event = decoder.decode(log.topics, log.data)
        found.add((event["id"], event[field]))
    return found


def discover_positions(scope: Scope, accounts: Iterable[str]) -> Plan[set[tuple[bytes, str]]]:
    """(market id, account) pairs where the accounts ever supplied, posted collateral or borrowed."""
    on_behalf = [address_topic(a) for a in accounts]
    if not on_behalf:
        return set()
    # onBehalf is the third indexed topic of Supply and SupplyCollateral, the second of Borrow: three scans,
    # side by side in one round.
    scans = [_ids_from_logs(scope, [decoder.topic, None, None, on_behalf], "onBehalf", decoder)
             for decoder in (SUPPLY_EVENT, SUPPLY_COLLATERAL_EVENT)]
    scans.append(_ids_from_logs(scope, [BORROW_EVENT.topic, None, on_behalf], "onBehalf", BORROW_EVENT))
    found: list[set[tuple[bytes, str]]] = yield from gather(*scans)
    return set().union(*found)


def discover_borrowers(scope: Scope, market_ids: Iterable[bytes]) -> Plan[set[tuple[bytes, str]]]:
    """Every account that ever borrowed or posted collateral in the markets."""
    ids = ["0x" + i.hex() for i in market_ids]
    if not ids:
        return set()
    found: list[set[tuple[bytes, str]]] = yield from gather(
        _ids_from_logs(scope, [BORROW_EVENT.topic, ids], "onBehalf", BORROW_EVENT),
        _ids_from_logs(scope, [SUPPLY_COLLATERAL_EVENT.topic, ids], "onBehalf", SUPPLY_COLLATERAL_EVENT))
    return set().union(*found)


# ------------------------------------------------------------------ reading markets


@dataclass
class MarketReading:
    id: bytes
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int
    stored: MarketState
    state: MarketState  # accrued to the pin
    borrow_rate: int
    oracle_price: int | None
    evidence: list[Evidence]


def read_markets(scope: Scope, market_ids: Sequence[bytes]) -> Plan[dict[bytes, MarketReading]]:
    assert scope.venue is not None
    morpho = scope.venue.address
    reads: list[Read] = []
    for market_id in market_ids:
        reads += [
            Read(morpho, "idToMarketParams(bytes32)", (market_id,),
                 returns=("address", "address", "address", "address", "uint256")),
            Read(morpho, "market(bytes32)", (market_id,), returns=("uint128",) * 6),
        ]
    results = yield from plan_reads(reads)
    params: list[tuple[Any, ...]] = []
    states: list[MarketState] = []
    for index, market_id in enumerate(market_ids):
        for result in results[2 * index : 2 * index + 2]:
            if not result.ok:
                raise_unreadable(scope, result, market_id)
        params.append(results[2 * index].value)
        states.append(MarketState(*results[2 * index + 1].value))
    # Second round: the IRM's rate for the stored state (what accrual would use) and the oracle price.
    second: list[Read] = []
    for (loan, collateral, oracle, irm, lltv), state in zip(params, states, strict=True):
        market_tuple = (state.total_supply_assets, state.total_supply_shares, state.total_borrow_assets,
                        state.total_borrow_shares, state.last_update, state.fee)
        second += [
            Read(irm, f"borrowRateView({MARKET_PARAMS},{MARKET_STATE})", ((loan, collateral, oracle, irm, lltv),
                                                                        market_tuple)),
            Read(oracle, "price()"),
        ]
    rates = yield from plan_reads(second)
    out: dict[bytes, MarketReading] = {}
    timestamp = scope.client.pinned.timestamp
    for index, market_id in enumerate(market_ids):
        loan, collateral, oracle, irm, lltv = params[index]
        rate_result, price_result = rates[2 * index], rates[2 * index + 1]
        no_irm = int(irm, 16) == 0
        if not rate_result.ok and not no_irm:
            raise_unreadable(scope, rate_result, market_id)
        rate = 0 if no_irm else rate_result.one
        out[market_id] = MarketReading(
            id=market_id, loan_token=loan, collateral_token=collateral, oracle=oracle, irm=irm, lltv=lltv,
            stored=states[index], state=states[index].accrued(rate, timestamp), borrow_rate=rate,
            oracle_price=price_result.one if price_result.ok else None,
            evidence=[scope.evidence(r) for r in (results[2 * index], results[2 * index + 1], rate_result,
                                                  price_result)],
        )
    return out


def raise_unreadable(scope: Scope, result: ReadResult, market_id: bytes) -> None:
    from auditor.chain.rpc import ChainError

    raise ChainError(scope.chain, result.read.describe(), str(scope.block),
                     f"Morpho market 0x{market_id.hex()} could not be read: {result.error}")


def read_positions(scope: Scope, pairs: Sequence[tuple[bytes, str]]) -> Plan[dict[tuple[bytes, str], ReadResult]]:
    assert scope.venue is not None
    reads = [Read(scope.venue.address, "position(bytes32,address)", (market_id, account),
                  returns=("uint256", "uint128", "uint128")) for market_id, account in pairs]
    out = {}
    for pair, result in zip(pairs, (yield from plan_reads(reads)), strict=True):
        if not result.ok:
            raise_unreadable(scope, result, pair[0])
        out[pair] = result
    return out


def market_models(
    chain: str, markets: Mapping[bytes, MarketReading], positions: Mapping[tuple[bytes, str], ReadResult],
    metadata: Mapping[str, tuple[int | None, str, Any]],
) -> dict[str, Market]:
    """The model every stage reads (backing, flags, yields) of each market, with its borrowers' debt and
    collateral at the pin; the balance sheets and the exposure map build it the same way."""
    out: dict[str, Market] = {}
    for market_id, reading in markets.items():
        state = reading.state
        borrowers = []
        for (pair_id, account), result in positions.items():
            _supply_shares, borrow_shares, collateral = result.value
            if pair_id != market_id or (borrow_shares == 0 and collateral == 0):
                continue
            debt = to_assets_up(borrow_shares, state.total_borrow_assets, state.total_borrow_shares)
            borrowers.append(Borrower(account, debt, collateral))
        key = market_key(chain, market_id)
        out[key] = Market(
            key=key, chain=chain, venue="morpho_blue",
            loan_token=reading.loan_token, loan_decimals=metadata[reading.loan_token][0] or 0,
            collateral_token=reading.collateral_token,
            collateral_decimals=metadata[reading.collateral_token][0] or 0,
            total_supply_assets=state.total_supply_assets, total_supply_shares=state.total_supply_shares,
            total_borrow_assets=state.total_borrow_assets, borrowers=tuple(sorted(borrowers, key=lambda b: b.address)),
            lltv=reading.lltv, oracle=reading.oracle, oracle_price=reading.oracle_price,
            details={"id": "0x" + market_id.hex(), "irm": reading.irm, "borrow_rate_per_s": reading.borrow_rate,
                     "fee": state.fee, "last_update": reading.stored.last_update, "accrued_to": state.last_update,
                     "loan_symbol": metadata[reading.loan_token][1],
                     "collateral_symbol": metadata[reading.collateral_token][1],
                     "evidence": [e.as_dict() for e in reading.evidence]},
        )
    return out


@rate("morpho_blue")
def position_rate(position: Position, markets: Mapping[str, Market], _vaults: Mapping[str, Decimal]) -> Rate:
    """A loan or a debt earns or costs its market's rate: the IRM's borrowRateView at the pin, shared out by
    utilization and the fee for suppliers."""
    if position.kind not in (SUPPLY, DEBT):
        return Rate(Decimal(0), None, {})  # posted collateral earns nothing by itself
    key = str(position.details.get("market"))
    market = markets.get(key)
    if market is None:
        return Rate(None, key, {}, f"market {key} is not in the universe: rate unknown")
    per_second = market.details.get("borrow_rate_per_s")
    inputs = {"source": f"{market.venue} IRM borrowRateView at the pin", "irm": str(market.details.get("irm", "")),
              "borrow_rate_per_s": "unread" if per_second is None else str(per_second),
              "borrow_apy": exact(market_borrow_apy(market)) or "unread"}
    if position.kind == DEBT:
        apy = market_borrow_apy(market)
    else:
        inputs["utilization"] = exact(utilization(market)) or ""
        inputs["fee"] = str(market.details.get("fee") or 0)
        apy = market_supply_apy(market)
    return Rate(apy, market.key, inputs, "" if apy is not None else "the market's borrow rate was not read")


# ------------------------------------------------------------------ exposure: markets and their participants


@dataclass(frozen=True)
class CreatedMarket:
    """A market as its CreateMarket event announced it."""

    id: bytes
    params: tuple[str, str, str, str, int]  # loan, collateral, oracle, irm, lltv
    block: int


def created_markets(scope: Scope) -> Plan[dict[bytes, CreatedMarket]]:
    """Every market ever created: CreateMarket carries the params, so markets no UI lists are found too."""
    assert scope.venue is not None
    out: dict[bytes, CreatedMarket] = {}
    for log in (yield from logs([scope.venue.address], [CREATE_MARKET_EVENT.topic], scope.venue.from_block)):
        event = CREATE_MARKET_EVENT.decode(log.topics, log.data)
        loan, collateral, oracle, irm, lltv = event["marketParams"]
        params = (to_checksum(loan), to_checksum(collateral), to_checksum(oracle), to_checksum(irm), int(lltv))
        out[event["id"]] = CreatedMarket(event["id"], params, log.block_number)
    return out


def participants(
    scope: Scope, ids: Sequence[bytes]
) -> Plan[tuple[set[tuple[bytes, str]], set[tuple[bytes, str]]]]:
    """(market, supplier) and (market, borrower) pairs from one log scan: all three events index the id first."""
    suppliers: set[tuple[bytes, str]] = set()
    borrowers: set[tuple[bytes, str]] = set()
    if not ids:
        return suppliers, borrowers
    decoders = {d.topic: d for d in (SUPPLY_EVENT, BORROW_EVENT, SUPPLY_COLLATERAL_EVENT)}
    topics: list[Any] = [sorted(decoders), ["0x" + i.hex() for i in ids]]
    assert scope.venue is not None
    for log in (yield from logs([scope.venue.address], topics, scope.venue.from_block)):
        decoder = decoders[log.topics[0]]
        event = decoder.decode(log.topics, log.data)
        (suppliers if decoder is SUPPLY_EVENT else borrowers).add((event["id"], event["onBehalf"]))
    return suppliers, borrowers


def supplied_collaterals(scope: Scope, supplier: str) -> Plan[list[str]]:
    """Collateral tokens of every market `supplier` (a vault) ever supplied to, from its Supply events."""
    assert scope.venue is not None
    found = yield from _ids_from_logs(scope, [SUPPLY_EVENT.topic, None, None, [address_topic(supplier)]],
                                      "onBehalf", SUPPLY_EVENT)
    ids = sorted({market_id for market_id, _ in found})
    if not ids:
        return []
    markets = yield from read_markets(scope, ids)
    return sorted({m.collateral_token for m in markets.values()})


def oracle_in_loan_tokens(raw: int, loan_decimals: int, collateral_decimals: int) -> Decimal:
    """A Morpho oracle's answer (ORACLE_PRICE_SCALE x loan units per collateral unit) as loan tokens per whole
    collateral token: the one place the venue's oracle scale is read (exact: the scales are powers of ten)."""
    return Decimal(raw) * Decimal(10) ** (collateral_decimals - loan_decimals) / Decimal(ORACLE_PRICE_SCALE)


def market_key(chain: str, market_id: bytes) -> str:
    return f"{chain}:morpho_blue:0x{market_id.hex()}"


@adapter("morpho_blue")
def collect(scope: Scope) -> Plan[Collected]:
    out = Collected()
    if scope.venue is None or not scope.accounts:
        return out
    issuer_of = {a.address.lower(): a for a in scope.accounts}
    own_pairs = {(i, a) for i, a in (yield from discover_positions(scope, issuer_of)) if a.lower() in issuer_of}
    if not own_pairs:
        return out
    market_ids = sorted({market_id for market_id, _ in own_pairs})
    markets, borrower_pairs = yield from gather(read_markets(scope, market_ids), discover_borrowers(scope, market_ids))
    all_pairs = sorted(own_pairs | borrower_pairs)
    tokens = sorted({m.loan_token for m in markets.values()} | {m.collateral_token for m in markets.values()})
    positions, metadata = yield from gather(read_positions(scope, all_pairs), token_metadata(tokens))

    out.markets.update(market_models(scope.chain, markets, positions, metadata))

    for market_id, account in sorted(own_pairs):
        reading = markets[market_id]
        state = reading.state
        result = positions[(market_id, account)]
        supply_shares, borrow_shares, collateral = result.value
        holder = issuer_of[account.lower()]
        base = {"issuer": holder.issuer, "label": holder.label, "market": market_key(scope.chain, market_id),
                "lltv": reading.lltv, "oracle": reading.oracle}
        evidence = (scope.evidence(result), *reading.evidence)
        loan_decimals = metadata[reading.loan_token][0] or 0
        loan_symbol = metadata[reading.loan_token][1]
        collateral_decimals = metadata[reading.collateral_token][0] or 0
        collateral_symbol = metadata[reading.collateral_token][1]
        if supply_shares:
            assets = to_assets_down(supply_shares, state.total_supply_assets, state.total_supply_shares)
            out.positions.append(Position(scope.chain, account, "morpho_blue", SUPPLY, reading.loan_token, assets,
                                          loan_decimals, loan_symbol,
                                          {**base, "supply_shares": supply_shares}, evidence))
        if collateral:
            out.positions.append(Position(scope.chain, account, "morpho_blue", COLLATERAL, reading.collateral_token,
                                          collateral, collateral_decimals, collateral_symbol, base, evidence))
        if borrow_shares:
            debt = to_assets_up(borrow_shares, state.total_borrow_assets, state.total_borrow_shares)
            out.positions.append(Position(scope.chain, account, "morpho_blue", DEBT, reading.loan_token, debt,
                                          loan_decimals, loan_symbol,
                                          {**base, "borrow_shares": borrow_shares}, evidence))
    return out


# ------------------------------------------------------------------ exposure: who lends against a token


@exposure_source("morpho_blue")
def lending(scope: Scope, ask: Ask) -> Plan[Lending]:
    """Every market ever created whose collateral is the token or holds it, with all its lenders and borrowers."""
    venue = scope.venue
    assert venue is not None
    created, (fee,) = yield from gather(
        created_markets(scope), plan_reads([Read(venue.address, "feeRecipient()", returns=("address",))]))
    if not fee.ok:
        from auditor.chain.rpc import ChainError

        raise ChainError(scope.chain, fee.read.describe(), str(scope.block), fee.error)
    fee_recipient = fee.one
    collaterals = yield from ask.look_through({c.params[1] for c in created.values()})
    chosen = sorted((c for c in created.values() if c.params[1].lower() in collaterals), key=lambda c: c.block)
    ids = [c.id for c in chosen]
    facts = {"markets_scanned": len(created), "fee_recipient": fee_recipient, "from_block": venue.from_block}
    found = Lending("morpho_blue", venue.address, facts, collaterals)
    if not ids:
        return found
    readings, (suppliers, borrowers) = yield from gather(read_markets(scope, ids), participants(scope, ids))
    if int(fee_recipient, 16) != 0:
        # Morpho pays its fee in supply shares without a Supply event: the fee recipient can hold a
        # position that no log shows, so it is asked in every market.
        suppliers |= {(i, fee_recipient) for i in ids}
    tokens = {r.loan_token for r in readings.values()} | {r.collateral_token for r in readings.values()}
    positions, found.extras = yield from gather(
        read_positions(scope, sorted(suppliers | borrowers)), ask.extras({a for _i, a in suppliers}, tokens))
    found.markets = market_models(scope.chain, readings, positions, found.extras.metadata)
    by_market: dict[bytes, list[tuple[str, ReadResult]]] = {}
    for (market_id, account), result in sorted(positions.items()):
        by_market.setdefault(market_id, []).append((account, result))
    by_id = {c.id: c for c in chosen}

    def value(valuing: Valuing) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        markets = [_market_dict(scope, by_id[i], readings[i], collaterals[readings[i].collateral_token.lower()],
                                by_market.get(i, []), valuing) for i in ids]
        return markets, []

    found.value = value
    return found


def _market_dict(scope: Scope, created: CreatedMarket, reading: MarketReading, collateral: Collateral,
                 positions: Sequence[tuple[str, ReadResult]], valuing: Valuing) -> dict[str, Any]:
    chain, prices = scope.chain, valuing.prices
    state = reading.state
    loan_decimals, loan_symbol = valuing.metadata[reading.loan_token]
    collateral_decimals, collateral_symbol = valuing.metadata[reading.collateral_token]
    loan_price = prices.of(chain, reading.loan_token)
    collateral_price = prices.of(chain, reading.collateral_token)
    key = market_key(chain, reading.id)
    if loan_price is None:
        valuing.notes.append(f"{key}: loan token {reading.loan_token} is not a priced hard asset; no USD figures")
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
                **amounts("supplied", supplied, loan_decimals, loan_price),
                **amounts("at_risk", at_risk, loan_decimals, loan_price),
                "share_of_market": exact(ratio(supplied, state.total_supply_assets)),
                "evidence": evidence,
            })
        if borrow_shares or collateral_amount:
            debt = to_assets_up(borrow_shares, state.total_borrow_assets, state.total_borrow_shares)
            collateral_posted += collateral_amount
            short = shortfall(debt, loan_decimals, loan_price, collateral_amount, collateral_decimals,
                              collateral_price)
            if bad_debt is not None:
                bad_debt = None if short is None else bad_debt + short
            borrowers.append({
                "address": account,
                **amounts("debt", debt, loan_decimals, loan_price),
                **amounts("collateral", collateral_amount, collateral_decimals, collateral_price),
                "evidence": evidence,
            })
    for supplier in suppliers:
        supplied_raw = int(supplier["supplied_raw"])
        supplier["look_through_loss_usd"] = (
            None if bad_debt is None or not state.total_supply_assets
            else exact(pro_rata(bad_debt, supplied_raw, state.total_supply_assets))
        )
    suppliers.sort(key=lambda s: (-int(s["supplied_raw"]), s["address"]))
    borrowers.sort(key=lambda b: (-int(b["debt_raw"]), b["address"]))
    oracle_price = None
    if reading.oracle_price is not None and loan_decimals is not None and collateral_decimals is not None:
        oracle_price = oracle_in_loan_tokens(reading.oracle_price, loan_decimals, collateral_decimals)
    return {
        "key": key,
        "venue": "morpho_blue",
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
        **amounts("total_supplied", state.total_supply_assets, loan_decimals, loan_price),
        **amounts("total_borrowed", state.total_borrow_assets, loan_decimals, loan_price),
        **amounts("collateral_posted", collateral_posted, collateral_decimals, collateral_price,
                  usd_name="collateral_value_usd"),
        "utilization": exact(ratio(state.total_borrow_assets, state.total_supply_assets)),
        "bad_debt_usd": None if bad_debt is None else exact(bad_debt),
        "suppliers": suppliers,
        "borrowers": borrowers,
        "evidence": [e.as_dict() for e in reading.evidence],
    }


# ------------------------------------------------------------------ flows: the lending events the tracer reads

# topic0 -> (flow kind, decoder, field with the amount moved, field naming the position's owner)
FLOW_KINDS: dict[str, tuple[str, EventDecoder, str, str]] = {
    SUPPLY_EVENT.topic: (flows.SUPPLY, SUPPLY_EVENT, "assets", "onBehalf"),
    WITHDRAW_EVENT.topic: (flows.WITHDRAW, WITHDRAW_EVENT, "assets", "onBehalf"),
    BORROW_EVENT.topic: (flows.BORROW, BORROW_EVENT, "assets", "onBehalf"),
    REPAY_EVENT.topic: (flows.REPAY, REPAY_EVENT, "assets", "onBehalf"),
    SUPPLY_COLLATERAL_EVENT.topic: (flows.SUPPLY_COLLATERAL, SUPPLY_COLLATERAL_EVENT, "assets", "onBehalf"),
    WITHDRAW_COLLATERAL_EVENT.topic: (flows.WITHDRAW_COLLATERAL, WITHDRAW_COLLATERAL_EVENT, "assets", "onBehalf"),
    LIQUIDATE_EVENT.topic: (flows.LIQUIDATE, LIQUIDATE_EVENT, "seizedAssets", "borrower"),
}
# Kinds whose tokens leave the venue (to the receiver / liquidator); the others flow from the caller into it.
FROM_VENUE = frozenset({flows.WITHDRAW, flows.BORROW, flows.WITHDRAW_COLLATERAL, flows.LIQUIDATE})
COLLATERAL_KINDS = frozenset({flows.SUPPLY_COLLATERAL, flows.WITHDRAW_COLLATERAL, flows.LIQUIDATE})


@flow_source("morpho_blue")
def flow_events(scope: Scope, accounts: Sequence[str], window: tuple[int, int]) -> Plan[VenueFlows]:
    """Every Morpho event whose caller or position owner is one of `accounts` (address topics) in the window:
    both sides in one round, then each market's tokens (idToMarketParams at the pin)."""
    venue = scope.venue
    assert venue is not None
    out = VenueFlows()
    decoders = {topic: decoder for topic, (_kind, decoder, _amount, _owner) in FLOW_KINDS.items()}
    decoded = []
    for log, fields in (yield from account_events(venue, decoders, accounts, window, out)):
        kind, _decoder, amount_field, owner_field = FLOW_KINDS[log.topics[0]]
        decoded.append((log, kind, fields, fields[amount_field], fields[owner_field]))
    ids = sorted({fields["id"] for _log, _kind, fields, _amount, _owner in decoded})
    results = yield from plan_reads([Read(venue.address, "idToMarketParams(bytes32)", (i,), returns=(
        "address", "address", "address", "address", "uint256")) for i in ids])
    tokens: dict[bytes, tuple[str, str]] = {}
    for market_id, result in zip(ids, results, strict=True):
        if not result.ok:
            out.notes.append(f"{scope.chain}: Morpho market 0x{market_id.hex()} unreadable ({result.error}); its "
                             "events are left out")
            continue
        tokens[market_id] = (result.value[0], result.value[1])
        out.markets[market_key(scope.chain, market_id)] = tokens[market_id]
    for log, kind, fields, amount, owner in decoded:
        pair = tokens.get(fields["id"])
        if pair is None:
            continue
        caller, receiver = fields["caller"], fields.get("receiver", fields["caller"])
        src, dst = (venue.address, receiver) if kind in FROM_VENUE else (caller, venue.address)
        out.flows.append(LendingFlow(log.block_number, log.log_index, log.tx_hash, kind,
                                     market_key(scope.chain, fields["id"]),
                                     pair[1] if kind in COLLATERAL_KINDS else pair[0], amount, src, dst, owner))
    return out
