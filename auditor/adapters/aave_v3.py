"""Aave v3: what issuer accounts supply (aTokens) and owe (variable and stable debt tokens) in one Pool."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from auditor import flows
from auditor.adapters import Collected, Rate, Scope, adapter, exposure_source, flow_source, rate
from auditor.chain.abi import EventDecoder
from auditor.chain.plan import Plan, gather
from auditor.chain.plan import reads as plan_reads
from auditor.chain.reader import Read, ReadResult
from auditor.chain.rpc import ChainError
from auditor.lending import Ask, Lending, LendingFlow, Valuing, VenueFlows, account_events, amounts
from auditor.model import DEBT, SUPPLY, Evidence, Market, Position
from auditor.rates import ray_apy

VENUE = "aave_v3"
ZERO_ADDRESS = "0x" + "0" * 40

# IPool.getReserveData return value, DataTypes.ReserveData in aave-v3-core 1.19.3 (checked against the
# npm artifact's ABI). Later versions (aave-v3-origin 3.1+) return ReserveDataLegacy with the same
# layout. Every field is static, so the struct encodes as these 15 words in a row.
RESERVE_DATA = (
    "uint256",  # configuration (ReserveConfigurationMap.data)
    "uint128",  # liquidityIndex
    "uint128",  # currentLiquidityRate
    "uint128",  # variableBorrowIndex
    "uint128",  # currentVariableBorrowRate
    "uint128",  # currentStableBorrowRate
    "uint40",  # lastUpdateTimestamp
    "uint16",  # id
    "address",  # aTokenAddress
    "address",  # stableDebtTokenAddress
    "address",  # variableDebtTokenAddress
    "address",  # interestRateStrategyAddress
    "uint128",  # accruedToTreasury
    "uint128",  # unbacked
    "uint128",  # isolationModeTotalDebt
)
ACCOUNT_DATA = ("uint256",) * 6  # totalCollateralBase, totalDebtBase, availableBorrowsBase, threshold, ltv, HF
# ReserveConfiguration.sol: RESERVE_DECIMALS_START_BIT_POSITION = 48, DECIMALS_MASK clears bits 48-55.
DECIMALS_SHIFT = 48


@dataclass(frozen=True)
class Reserve:
    """One listed asset of the pool, as getReserveData reports it at the pin."""

    asset: str
    id: int
    decimals: int
    symbol: str  # the asset's own symbol(): untrusted text
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    liquidity_rate: int  # ray, per year
    variable_borrow_rate: int  # ray, per year
    evidence: tuple[Evidence, ...]


def _unreadable(scope: Scope, result: ReadResult, what: str) -> ChainError:
    return ChainError(scope.chain, result.read.describe(), str(scope.block),
                      f"Aave v3 pool {what} could not be read: {result.error}")


def read_reserves(scope: Scope, pool: str) -> Plan[list[Reserve]]:
    """Every reserve of `pool`: the list in one read, then reserve data and symbols in one batch."""
    (listed,) = yield from plan_reads([Read(pool, "getReservesList()", returns=("address[]",))])
    if not listed.ok:
        raise _unreadable(scope, listed, "reserve list")
    assets: list[str] = list(listed.one)
    reads: list[Read] = []
    for asset in assets:
        reads += [
            Read(pool, "getReserveData(address)", (asset,), returns=RESERVE_DATA),
            Read(asset, "symbol()", returns=("string",)),
        ]
    results = yield from plan_reads(reads)
    reserves: list[Reserve] = []
    for index, asset in enumerate(assets):
        data, symbol = results[2 * index], results[2 * index + 1]
        if not data.ok:
            raise _unreadable(scope, data, f"reserve {asset}")
        configuration, _li, liquidity_rate, _vi, variable_rate, _sr, _ts, reserve_id, a_token, stable, variable = (
            data.value[:11]
        )
        if int(a_token, 16) == 0:  # not a live reserve (getReservesList skips dropped ones; be safe)
            continue
        reserves.append(Reserve(
            asset=asset,
            id=reserve_id,
            decimals=(configuration >> DECIMALS_SHIFT) & 0xFF,
            symbol=symbol.one if symbol.ok else "",  # bytes32 symbols (MKR-style) do not decode: left blank
            a_token=a_token,
            stable_debt_token=stable,
            variable_debt_token=variable,
            liquidity_rate=liquidity_rate,
            variable_borrow_rate=variable_rate,
            evidence=(scope.evidence(listed), scope.evidence(data), scope.evidence(symbol)),
        ))
    return reserves


@adapter(VENUE)
def collect(scope: Scope) -> Plan[Collected]:
    out = Collected()
    if scope.venue is None or not scope.accounts:
        return out
    pool = scope.venue.address
    reserves = yield from read_reserves(scope, pool)
    if not reserves:
        return out
    for reserve in reserves:
        name = reserve.symbol or reserve.asset
        out.addresses[reserve.a_token.lower()] = f"Aave v3 a{name}"
        out.addresses[reserve.variable_debt_token.lower()] = f"Aave v3 variable debt {name}"
        if int(reserve.stable_debt_token, 16) != 0:
            out.addresses[reserve.stable_debt_token.lower()] = f"Aave v3 stable debt {name}"

    # One batch: every balance of every account in every reserve, plus each account's health and
    # collateral bitmap. `tags` says what each read is, so decoding never depends on index arithmetic.
    reads: list[Read] = []
    tags: list[tuple[str, int, int]] = []  # (what, account index, reserve index)
    for a_index, account in enumerate(scope.accounts):
        for r_index, reserve in enumerate(reserves):
            tokens = [("supply", reserve.a_token), ("variable", reserve.variable_debt_token)]
            # aave-v3-origin 3.2+ removed stable borrowing; a zero address there means no such token.
            if int(reserve.stable_debt_token, 16) != 0:
                tokens.append(("stable", reserve.stable_debt_token))
            for what, token in tokens:
                reads.append(Read(token, "balanceOf(address)", (account.address,)))
                tags.append((what, a_index, r_index))
        reads.append(Read(pool, "getUserAccountData(address)", (account.address,), returns=ACCOUNT_DATA))
        tags.append(("health", a_index, -1))
        reads.append(Read(pool, "getUserConfiguration(address)", (account.address,)))
        tags.append(("config", a_index, -1))
    results = yield from plan_reads(reads)
    health: dict[int, ReadResult] = {}
    config: dict[int, ReadResult] = {}
    balances: list[tuple[str, int, int, ReadResult]] = []
    for (what, a_index, r_index), result in zip(tags, results, strict=True):
        if what == "health":
            health[a_index] = result
        elif what == "config":
            config[a_index] = result
        else:
            balances.append((what, a_index, r_index, result))

    for what, a_index, r_index, result in balances:
        account, reserve = scope.accounts[a_index], reserves[r_index]
        token = reserve.a_token if what == "supply" else (
            reserve.variable_debt_token if what == "variable" else reserve.stable_debt_token)
        if not result.ok:
            out.gaps.append(scope.gap(result, f"Aave v3 {what} balance of {account.label} in "
                                              f"{reserve.symbol or reserve.asset}"))
            continue
        if result.one == 0:
            continue
        account_data = health[a_index]
        details: dict[str, Any] = {
            "issuer": account.issuer,
            "label": account.label,
            "pool": pool,
            "reserve": reserve.asset,
            "aToken": reserve.a_token,
            "liquidity_rate_ray": reserve.liquidity_rate,
            # Aave's borrowers are not enumerated (no market look-through): supply is valued at face value.
            "market": None,
            **_health_details(account_data),
        }
        evidence = [*reserve.evidence, scope.evidence(result), scope.evidence(account_data)]
        if what == "supply":
            user_config = config[a_index]
            # UserConfiguration.isUsingAsCollateral: bit 2*id+1 of the user's bitmap.
            details["used_as_collateral"] = (
                bool((user_config.one >> (2 * reserve.id + 1)) & 1) if user_config.ok else None
            )
            evidence.append(scope.evidence(user_config))
            kind = SUPPLY
        else:
            details["rate_mode"] = what
            details["debt_token"] = token
            details["variable_borrow_rate_ray"] = reserve.variable_borrow_rate
            kind = DEBT
        # aToken and debt-token balanceOf already convert scaled balances with the indexes at the
        # block's timestamp, so the amount is in underlying units with interest to the pin.
        out.positions.append(Position(
            chain=scope.chain,
            account=account.address,
            venue=VENUE,
            kind=kind,
            token=reserve.asset,
            amount=result.one,
            decimals=reserve.decimals,
            symbol=reserve.symbol,
            details=details,
            evidence=tuple(evidence),
        ))

    for a_index, result in sorted(health.items()):
        has_positions = any(p.account == scope.accounts[a_index].address for p in out.positions)
        if has_positions and not result.ok:
            out.notes.append(f"{scope.chain}: Aave v3 account data of {scope.accounts[a_index].label} could not be "
                             f"read ({result.error}); health factor unknown")
    if any(p.kind == SUPPLY for p in out.positions):
        out.notes.append(
            f"{scope.chain}: Aave v3 pool {pool}: supply is counted at face value; the pool's borrowers are not "
            "enumerated, so bad debt in the pool is not looked through"
        )
    return out


def _health_details(result: ReadResult) -> dict[str, Any]:
    """getUserAccountData in base currency units (USD, 8 decimals on Aave's markets); health factor in wad."""
    if not result.ok:
        return {"total_collateral_base": None, "total_debt_base": None, "health_factor": None}
    collateral, debt, _available, _threshold, _ltv, health_factor = result.value
    return {"total_collateral_base": collateral, "total_debt_base": debt, "health_factor": health_factor}


@rate(VENUE)
def position_rate(position: Position, _markets: Mapping[str, Market], _vaults: Mapping[str, Decimal]) -> Rate:
    """Supply earns the reserve's currentLiquidityRate, debt costs its currentVariableBorrowRate (RAY, yearly,
    compounded per second as Aave does)."""
    field = "liquidity_rate_ray" if position.kind == SUPPLY else "variable_borrow_rate_ray"
    raw = position.details.get(field)
    ray = int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else None
    source = "currentLiquidityRate" if position.kind == SUPPLY else "currentVariableBorrowRate"
    note = ("stable-rate debt priced at the reserve's variable rate (the stable rate is not read)"
            if position.details.get("rate_mode") == "stable" else "")
    return Rate(None if ray is None else ray_apy(ray), None,
                {"source": f"{VENUE} reserve {source}", field: str(ray)}, note)


# ------------------------------------------------------------------ exposure: reserves that list a token

_LTV_MASK = 0xFFFF
_LIQUIDATION_THRESHOLD_SHIFT = 16
_ACTIVE_BIT, _FROZEN_BIT, _BORROWING_BIT, _PAUSED_BIT = 56, 57, 58, 60
_SUPPLY_CAP_SHIFT, _SUPPLY_CAP_BITS = 116, 36


def reserve_totals(scope: Scope, pool: str, assets: Sequence[str]) -> Plan[tuple[list[ReadResult], list[ReadResult]]]:
    """Reserve data of the listed assets, then their aToken and debt-token supplies (two rounds)."""
    if not assets:
        return [], []
    data = yield from plan_reads([Read(pool, "getReserveData(address)", (a,), returns=RESERVE_DATA)
                                  for a in assets])
    for result in data:
        if not result.ok:
            raise ChainError(scope.chain, result.read.describe(), str(scope.block),
                             f"Aave v3 reserve could not be read: {result.error}")
    supply_reads: list[Read] = []
    for result in data:
        a_token, stable, variable = result.value[8], result.value[9], result.value[10]
        supply_reads += [Read(a_token, "totalSupply()"), Read(variable, "totalSupply()")]
        # aave-v3-origin 3.2+ has no stable debt: a zero token address would answer nothing.
        supply_reads.append(Read(stable if int(stable, 16) else variable, "totalSupply()"))
    totals = yield from plan_reads(supply_reads)
    return data, totals


@dataclass(frozen=True)
class ReserveState:
    """A reserve's configuration (ReserveConfigurationMap, decoded) and its pool-wide totals at the pin."""

    decimals: int
    configuration: dict[str, Any]
    supplied: int
    borrowed: int
    evidence: tuple[Evidence, ...]


def reserve_states(scope: Scope, assets: Sequence[str], data: Sequence[ReadResult],
                   totals: Sequence[ReadResult]) -> list[ReserveState]:
    """What `reserve_totals` read, decoded per asset; a total that could not be read is the end of it."""
    states = []
    for index, (asset, result) in enumerate(zip(assets, data, strict=True)):
        configuration, a_token, stable, variable = result.value[0], result.value[8], result.value[9], result.value[10]
        supplied, variable_debt, stable_debt = totals[3 * index : 3 * index + 3]
        for part in (supplied, variable_debt, stable_debt):
            if not part.ok:
                raise ChainError(scope.chain, part.read.describe(), str(scope.block),
                                 f"Aave v3 reserve totals of {asset} could not be read: {part.error}")
        decimals = (configuration >> DECIMALS_SHIFT) & 0xFF
        states.append(ReserveState(
            decimals=decimals,
            configuration={
                "decimals": decimals,
                "a_token": a_token,
                "variable_debt_token": variable,
                "stable_debt_token": stable,
                "ltv_bps": configuration & _LTV_MASK,
                "liquidation_threshold_bps": (configuration >> _LIQUIDATION_THRESHOLD_SHIFT) & _LTV_MASK,
                "collateral_enabled": (configuration & _LTV_MASK) > 0,
                "active": bool((configuration >> _ACTIVE_BIT) & 1),
                "frozen": bool((configuration >> _FROZEN_BIT) & 1),
                "paused": bool((configuration >> _PAUSED_BIT) & 1),
                "borrowing_enabled": bool((configuration >> _BORROWING_BIT) & 1),
                # whole tokens
                "supply_cap": str((configuration >> _SUPPLY_CAP_SHIFT) & ((1 << _SUPPLY_CAP_BITS) - 1)),
            },
            supplied=supplied.one,
            borrowed=variable_debt.one + (stable_debt.one if int(stable, 16) else 0),
            evidence=tuple(scope.evidence(r) for r in (result, supplied, variable_debt, stable_debt)),
        ))
    return states


@exposure_source(VENUE)
def lending(scope: Scope, ask: Ask) -> Plan[Lending]:
    """Reserves of the pool that accept the token (or a token holding it): configuration and pool-wide totals.
    Aave lends from one pool-wide book, so these are listings, not markets of their own lenders."""
    pool = scope.venue
    assert pool is not None
    (listed_result,) = yield from plan_reads([Read(pool.address, "getReservesList()", returns=("address[]",))])
    if not listed_result.ok:
        raise ChainError(scope.chain, listed_result.read.describe(), str(scope.block), listed_result.error)
    assets = list(listed_result.one)
    collaterals = yield from ask.look_through(set(assets))
    listed = [a for a in assets if a.lower() in collaterals]
    found = Lending(VENUE, pool.address, {}, collaterals)
    if not listed:
        return found
    (data, totals), found.extras = yield from gather(reserve_totals(scope, pool.address, listed),
                                                     ask.extras(set(), set(listed)))
    states = reserve_states(scope, listed, data, totals)

    def value(valuing: Valuing) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        listings = []
        for asset, state in zip(listed, states, strict=True):
            price = valuing.prices.of(scope.chain, asset)
            collateral = collaterals[asset.lower()]
            config = state.configuration
            listings.append({
                "asset": asset,
                "symbol": valuing.metadata.get(asset, (None, ""))[1],
                "relation": collateral.relation,
                "collateral_path": list(collateral.path),
                **config,
                "terms": {"LTV": percent_bps(config["ltv_bps"]),
                          "liquidation threshold": percent_bps(config["liquidation_threshold_bps"])},
                "usable": config["active"] and not config["frozen"] and not config["paused"],
                **amounts("supplied", state.supplied, state.decimals, price, usd_name="supplied_value_usd"),
                **amounts("borrowed", state.borrowed, state.decimals, price, usd_name="borrowed_value_usd"),
                "evidence": [e.as_dict() for e in state.evidence],
            })
        return [], listings

    found.value = value
    return found


def percent_bps(bps: int) -> str:
    """Basis points as a percentage for reading: 7500 -> '75%'."""
    return format((Decimal(bps) / 100).normalize(), "f") + "%"


# ------------------------------------------------------------------ flows: the lending events the tracer reads
# IPool events of aave-v3-core 1.19.3 (contracts/interfaces/IPool.sol). The underlying moves between the caller
# and the reserve's aToken contract, not the pool: the tracer's Transfer logs of those moves are matched on it.

SUPPLY_EVENT = EventDecoder(
    "Supply(address indexed reserve,address user,address indexed onBehalfOf,uint256 amount,uint16 indexed referral)")
WITHDRAW_EVENT = EventDecoder(
    "Withdraw(address indexed reserve,address indexed user,address indexed to,uint256 amount)")
BORROW_EVENT = EventDecoder(
    "Borrow(address indexed reserve,address user,address indexed onBehalfOf,uint256 amount,uint8 interestRateMode,"
    "uint256 borrowRate,uint16 indexed referral)")
REPAY_EVENT = EventDecoder(
    "Repay(address indexed reserve,address indexed user,address indexed repayer,uint256 amount,bool useATokens)")
LIQUIDATION_EVENT = EventDecoder(
    "LiquidationCall(address indexed collateralAsset,address indexed debtAsset,address indexed user,"
    "uint256 debtToCover,uint256 liquidatedCollateralAmount,address liquidator,bool receiveAToken)")
# Every supply is collateral in Aave (the position is account-wide), so supplies and withdrawals are posts.
AAVE_KINDS = {SUPPLY_EVENT.topic: flows.SUPPLY_COLLATERAL, WITHDRAW_EVENT.topic: flows.WITHDRAW_COLLATERAL,
              BORROW_EVENT.topic: flows.BORROW, REPAY_EVENT.topic: flows.REPAY,
              LIQUIDATION_EVENT.topic: flows.LIQUIDATE}
AAVE_DECODERS = {d.topic: d for d in (SUPPLY_EVENT, WITHDRAW_EVENT, BORROW_EVENT, REPAY_EVENT, LIQUIDATION_EVENT)}


def pool_market(chain: str, pool: str) -> str:
    """An Aave position is account-wide: one market key per pool, whatever the reserves."""
    return f"{chain}:{VENUE}:{pool.lower()}"


@flow_source(VENUE)
def flow_events(scope: Scope, accounts: Sequence[str], window: tuple[int, int]) -> Plan[VenueFlows]:
    """Supplies, withdrawals, borrows, repays and liquidations of issuer accounts in the window (as position owner,
    topic 2, or as receiver / repayer, topic 3), then each reserve's aToken (the contract the money moves to)."""
    pool = scope.venue
    assert pool is not None
    out = VenueFlows()
    decoded = yield from account_events(pool, AAVE_DECODERS, accounts, window, out)
    reserves = sorted({f.get("reserve") or f["collateralAsset"] for _log, f in decoded}
                      | {f["debtAsset"] for _log, f in decoded if "debtAsset" in f})
    data = yield from plan_reads([Read(pool.address, "getReserveData(address)", (r,), returns=RESERVE_DATA)
                                  for r in reserves])
    a_tokens: dict[str, str] = {}
    for reserve, result in zip(reserves, data, strict=True):
        if result.ok:
            a_tokens[reserve.lower()] = result.value[8]
        else:
            out.notes.append(f"{scope.chain}: Aave reserve {reserve} unreadable ({result.error}); its events are "
                             "left out")
    market = pool_market(scope.chain, pool.address)
    loans = [f["reserve"] for log, f in decoded if AAVE_KINDS[log.topics[0]] == flows.BORROW]
    posts = [f["reserve"] for log, f in decoded if AAVE_KINDS[log.topics[0]] == flows.SUPPLY_COLLATERAL]
    if decoded:  # the label shows the first asset borrowed and the first posted
        out.markets[market] = ((loans or posts or reserves)[0], (posts or loans or reserves)[0])
    for log, fields in decoded:
        kind = AAVE_KINDS[log.topics[0]]
        if kind == flows.LIQUIDATE:
            token, owner = fields["collateralAsset"], fields["user"]
            amount, src, dst = fields["liquidatedCollateralAmount"], None, fields["liquidator"]
        else:
            token, amount = fields["reserve"], fields["amount"]
            owner = fields.get("onBehalfOf") or fields["user"]  # Withdraw and Repay: `user` owns the position
            src = None if kind in (flows.BORROW, flows.WITHDRAW_COLLATERAL) else (
                fields["repayer"] if kind == flows.REPAY else fields["user"])
            dst = {flows.BORROW: fields["user"], flows.WITHDRAW_COLLATERAL: fields.get("to")}.get(kind)
        a_token = a_tokens.get(token.lower())
        if a_token is None:
            continue
        out.flows.append(LendingFlow(log.block_number, log.log_index, log.tx_hash, kind, market, token, amount,
                                     src or a_token, dst or a_token, owner))
    return out
