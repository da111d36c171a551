"""Deploy a working Aave v3 market on a lab node from the compiled @aave/core-v3 npm artifacts, and use it."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from auditor.lab import LabError, node_modules_dir
from auditor.lab.compile import Artifact
from auditor.lab.deploy import Contract, accounts, eth_call, send_transaction

__all__ = [
    "AAVE_ARTIFACTS",
    "PRICE_UNIT",
    "RAY",
    "VARIABLE_RATE_MODE",
    "AaveLab",
    "AaveReserve",
    "RateStrategy",
    "aave_artifact",
    "deploy_aave",
    "price_answer",
]

AAVE_ARTIFACTS = Path("@aave/core-v3/artifacts/contracts")  # hardhat artifacts shipped in the npm package
RAY = 10**27
# AaveOracle's base currency: USD with 8 decimals, as on Aave's mainnet markets (BASE_CURRENCY = 0x0,
# BASE_CURRENCY_UNIT = 1e8), matching Chainlink USD feeds and MockAggregator.decimals() == 8.
PRICE_UNIT = 10**8
VARIABLE_RATE_MODE = 2  # DataTypes.InterestRateMode.VARIABLE
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
POOL_TX_GAS = 3_000_000  # a borrow with two reserves uses ~270k; liquidations and many reserves use more

# Libraries with external functions that Pool calls by DELEGATECALL; their addresses are linked into
# Pool's bytecode (aave-v3-deploy deploy/00_core/01_logic_libraries.ts deploys the same set).
POOL_LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "FlashLoanLogic",  # itself links BorrowLogic, so it is deployed after it
    "PoolLogic",
)
CONFIGURATOR_LIBRARIES = ("ConfiguratorLogic",)

_APPROVE = keccak(text="approve(address,uint256)")[:4]
_DECIMALS = keccak(text="decimals()")[:4]
_SYMBOL = keccak(text="symbol()")[:4]
_BALANCE_OF = keccak(text="balanceOf(address)")[:4]


class HasAddress(Protocol):
    """Anything with a deployed address, such as a lab Contract."""

    address: str


TokenLike = HasAddress | str
Price = int | str | Decimal | Fraction


# --- artifacts and library linking ---------------------------------------------------------


@lru_cache(maxsize=64)
def _artifact_json(name: str) -> dict[str, Any]:
    root = node_modules_dir() / AAVE_ARTIFACTS
    found = [p for p in root.rglob(f"{name}.json") if not p.name.endswith(".dbg.json")]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise LabError(f"loading the Aave artifact {name}: {what} {name}.json under {root}; run `npm ci`")
    data: dict[str, Any] = json.loads(found[0].read_text())
    return data


def _link(bytecode: str, references: Mapping[str, Mapping[str, Sequence[Mapping[str, int]]]],
          libraries: Mapping[str, str], name: str) -> str:
    """Write library addresses into `bytecode` (0x-hex) at the byte offsets hardhat's linkReferences give."""
    code = bytecode.removeprefix("0x")
    for source, libs in references.items():
        for library, spots in libs.items():
            address = libraries.get(library)
            if address is None:
                raise LabError(f"linking {name}: it needs library {source}:{library}, which was not deployed")
            for spot in spots:
                start, length = 2 * spot["start"], 2 * spot["length"]
                if code[start:start + 3] != "__$":  # the placeholder is __$<34 hex>$__
                    raise LabError(f"linking {name}: no placeholder for {library} at byte {spot['start']}")
                code = code[:start] + address.lower().removeprefix("0x") + code[start + length:]
    return code


def aave_artifact(name: str, libraries: Mapping[str, str] | None = None) -> Artifact:
    """The Aave contract `name` from the npm artifacts, with `libraries` (name -> address) linked in."""
    data = _artifact_json(name)
    libs = libraries or {}
    return Artifact(
        name=str(data["contractName"]),
        unit=str(data["sourceName"]),
        abi=list(data["abi"]),
        bytecode_hex=_link(str(data["bytecode"]), data.get("linkReferences", {}), libs, name),
        runtime_hex=_link(str(data["deployedBytecode"]), data.get("deployedLinkReferences", {}), libs, name),
    )


# --- small ERC-20 helpers (tokens may be given by address only) ------------------------------


def _address(token: TokenLike) -> str:
    return to_checksum_address(token if isinstance(token, str) else token.address)


def _approve(url: str, token: str, spender: str, amount: int, sender: str) -> None:
    data = _APPROVE + encode(["address", "uint256"], [spender, amount])
    send_transaction(url, to=token, data=data, sender=sender, what=f"approve {token} for {spender}")


def price_answer(price: Price) -> int:
    """An 8-decimal USD aggregator answer for `price` dollars per whole token (rounded down)."""
    answer = int(Fraction(price) * PRICE_UNIT)
    if answer <= 0:
        raise LabError(f"setting an Aave price: {price} is not a positive USD price")
    return answer


# --- the deployed market -------------------------------------------------------------------


@dataclass(frozen=True)
class RateStrategy:
    """DefaultReserveInterestRateStrategy parameters, in ray (1e27 = 100% a year)."""

    optimal_usage_ratio: int = 9 * RAY // 10
    base_variable_borrow_rate: int = 0
    variable_rate_slope1: int = 4 * RAY // 100
    variable_rate_slope2: int = 60 * RAY // 100
    stable_rate_slope1: int = RAY // 200
    stable_rate_slope2: int = 60 * RAY // 100
    base_stable_rate_offset: int = RAY // 100
    stable_rate_excess_offset: int = 8 * RAY // 100
    optimal_stable_to_total_debt_ratio: int = 2 * RAY // 10

    def args(self) -> tuple[int, ...]:
        return (
            self.optimal_usage_ratio,
            self.base_variable_borrow_rate,
            self.variable_rate_slope1,
            self.variable_rate_slope2,
            self.stable_rate_slope1,
            self.stable_rate_slope2,
            self.base_stable_rate_offset,
            self.stable_rate_excess_offset,
            self.optimal_stable_to_total_debt_ratio,
        )


@dataclass(frozen=True)
class AaveReserve:
    """One listed asset and the tokens Aave created for it."""

    asset: str
    symbol: str
    decimals: int
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    aggregator: str


@dataclass
class AaveLab:
    """An Aave v3 market on a lab node: proxies for Pool and PoolConfigurator, AaveOracle with mock feeds."""

    url: str
    owner: str  # ACL admin and pool admin
    provider: Contract  # PoolAddressesProvider
    acl: Contract  # ACLManager
    pool: Contract  # Pool ABI at the Pool proxy
    configurator: Contract  # PoolConfigurator ABI at its proxy
    oracle: Contract  # AaveOracle
    data_provider: Contract  # AaveProtocolDataProvider
    rate_strategy: Contract
    reserves: dict[str, AaveReserve] = field(default_factory=dict)  # by checksummed asset
    deploy_seconds: float = 0.0

    def _pool_tx(self, fn: str, *args: Any, sender: str) -> dict[str, Any]:
        # anvil estimates gas in a block env whose timestamp can be a second behind the block that
        # mines the transaction; Aave then takes the costlier interest-accrual path and the estimate
        # runs out of gas (seen as a revert with no reason). A fixed, generous limit avoids that.
        return send_transaction(self.url, to=self.pool.address, data=self.pool.encode(fn, *args), sender=sender,
                                gas=POOL_TX_GAS, abi=self.pool.abi, what=f"Pool.{fn}")

    def reserve(self, token: TokenLike) -> AaveReserve:
        asset = _address(token)
        if asset not in self.reserves:
            raise LabError(f"Aave lab: {asset} is not listed; listed: {sorted(self.reserves)}")
        return self.reserves[asset]

    def supply(self, token: TokenLike, amount: int, sender: str, on_behalf: str | None = None) -> dict[str, Any]:
        """Approve the Pool and supply `amount` of `token` for `on_behalf` (default sender)."""
        asset = self.reserve(token).asset
        _approve(self.url, asset, self.pool.address, amount, sender)
        return self._pool_tx("supply", asset, amount, on_behalf or sender, 0, sender=sender)

    def borrow(self, token: TokenLike, amount: int, sender: str, on_behalf: str | None = None) -> dict[str, Any]:
        """Borrow `amount` of `token` at the variable rate against on_behalf's collateral; paid to sender."""
        asset = self.reserve(token).asset
        return self._pool_tx("borrow", asset, amount, VARIABLE_RATE_MODE, 0, on_behalf or sender, sender=sender)

    def repay(self, token: TokenLike, amount: int, sender: str, on_behalf: str | None = None) -> dict[str, Any]:
        """Approve the Pool and repay up to `amount` of variable debt (2**256-1 repays it all)."""
        asset = self.reserve(token).asset
        _approve(self.url, asset, self.pool.address, amount, sender)
        return self._pool_tx("repay", asset, amount, VARIABLE_RATE_MODE, on_behalf or sender, sender=sender)

    def withdraw(self, token: TokenLike, amount: int, sender: str, to: str | None = None) -> dict[str, Any]:
        asset = self.reserve(token).asset
        return self._pool_tx("withdraw", asset, amount, to or sender, sender=sender)

    def set_collateral(self, token: TokenLike, enabled: bool, sender: str) -> dict[str, Any]:
        """Pool.setUserUseReserveAsCollateral for the sender's supply of `token`."""
        return self._pool_tx("setUserUseReserveAsCollateral", self.reserve(token).asset, enabled, sender=sender)

    def set_price(self, token: TokenLike, price: Price) -> str:
        """Point the oracle at a new MockAggregator answering `price` USD (MockAggregator has no setter)."""
        reserve = self.reserve(token)
        aggregator = Contract.deploy(self.url, aave_artifact("MockAggregator"), price_answer(price), sender=self.owner)
        self.oracle.transact("setAssetSources", [reserve.asset], [aggregator.address], sender=self.owner)
        self.reserves[reserve.asset] = AaveReserve(
            reserve.asset, reserve.symbol, reserve.decimals, reserve.a_token, reserve.stable_debt_token,
            reserve.variable_debt_token, aggregator.address,
        )
        return aggregator.address

    def balance(self, token: str, user: str, block: str | int = "latest") -> int:
        """balanceOf(user) on any ERC-20 (aTokens and debt tokens included)."""
        data = eth_call(self.url, token, _BALANCE_OF + encode(["address"], [user]), block=block)
        (value,) = decode(["uint256"], data)
        return int(value)


def _read_token(url: str, asset: str) -> tuple[int, str]:
    try:
        (decimals,) = decode(["uint8"], eth_call(url, asset, _DECIMALS))
    except (LabError, DecodingError) as exc:
        raise LabError(f"listing {asset} on Aave: decimals() failed ({exc}); is it an ERC-20?") from exc
    try:
        (symbol,) = decode(["string"], eth_call(url, asset, _SYMBOL))
    except (LabError, DecodingError):  # symbol is cosmetic: token names are built from it
        symbol = asset[:8]
    return int(decimals), str(symbol)


def _init_input(abi: Sequence[Mapping[str, Any]], values: Mapping[str, Any]) -> tuple[Any, ...]:
    """One ConfiguratorInputTypes.InitReserveInput, ordered as the installed ABI declares it."""
    entry = next(e for e in abi if e.get("type") == "function" and e.get("name") == "initReserves")
    components = entry["inputs"][0]["components"]
    missing = [c["name"] for c in components if c["name"] not in values]
    if missing:
        raise LabError(f"initReserves: this @aave/core-v3 expects fields {missing} the lab does not set")
    return tuple(values[c["name"]] for c in components)


def deploy_aave(
    url: str,
    deployer: str | None = None,
    tokens: Sequence[TokenLike] = (),
    prices: Sequence[Price] = (),
    *,
    ltv: int = 8000,
    liquidation_threshold: int = 8250,
    liquidation_bonus: int = 10500,
    reserve_factor: int = 1000,
    strategy: RateStrategy | None = None,
) -> AaveLab:
    """Deploy Aave v3 and list `tokens` (priced at `prices` USD per whole token) as borrowable collateral.

    LTV, liquidation threshold and bonus and the reserve factor are in basis points (10000 = 100%) and
    apply to every token. Follows aave-v3-deploy's market scripts (deploy/02_market/00-09): addresses
    provider, ACL (admin first), Pool and PoolConfigurator implementations behind the provider's proxies,
    oracle, data provider, token implementations, rate strategy, initReserves, then configuration.
    """
    if len(tokens) != len(prices):
        raise LabError(f"deploying Aave: {len(tokens)} tokens but {len(prices)} prices")
    started = time.monotonic()
    owner = to_checksum_address(deployer) if deployer else accounts(url)[0]

    def new(name: str, *args: Any, libraries: Mapping[str, str] | None = None) -> Contract:
        return Contract.deploy(url, aave_artifact(name, libraries), *args, sender=owner)

    libraries: dict[str, str] = {}
    for name in (*POOL_LIBRARIES, *CONFIGURATOR_LIBRARIES):
        libraries[name] = new(name, libraries=libraries).address

    # The market id is only a label; the provider's owner may set every address in it.
    provider = new("PoolAddressesProvider", "reserve-auditor lab", owner)
    # ACLManager's constructor reads the ACL admin from the provider, so it must be set first.
    provider.transact("setACLAdmin", owner, sender=owner)
    acl = new("ACLManager", provider.address)
    provider.transact("setACLManager", acl.address, sender=owner)
    acl.transact("addPoolAdmin", owner, sender=owner)

    # setPoolImpl / setPoolConfiguratorImpl deploy the proxies and call initialize(provider) through them.
    pool_impl = new("Pool", provider.address, libraries=libraries)
    provider.transact("setPoolImpl", pool_impl.address, sender=owner)
    pool = Contract(url, provider.call("getPool"), pool_impl.abi, "Pool")
    configurator_impl = new("PoolConfigurator", libraries=libraries)
    provider.transact("setPoolConfiguratorImpl", configurator_impl.address, sender=owner)
    configurator = Contract(url, provider.call("getPoolConfigurator"), configurator_impl.abi, "PoolConfigurator")

    assets = [_address(t) for t in tokens]
    if len(set(assets)) != len(assets):
        raise LabError(f"deploying Aave: a token is listed twice in {assets}")
    metadata = [_read_token(url, a) for a in assets]
    aggregators = [new("MockAggregator", price_answer(p)).address for p in prices]
    oracle = new("AaveOracle", provider.address, assets, aggregators, ZERO_ADDRESS, ZERO_ADDRESS, PRICE_UNIT)
    provider.transact("setPriceOracle", oracle.address, sender=owner)
    data_provider = new("AaveProtocolDataProvider", provider.address)
    provider.transact("setPoolDataProvider", data_provider.address, sender=owner)

    a_token_impl = new("AToken", pool.address)
    stable_impl = new("StableDebtToken", pool.address)
    variable_impl = new("VariableDebtToken", pool.address)
    rates = new("DefaultReserveInterestRateStrategy", provider.address, *(strategy or RateStrategy()).args())

    inputs = [
        _init_input(configurator.abi, {
            "aTokenImpl": a_token_impl.address,
            "stableDebtTokenImpl": stable_impl.address,
            "variableDebtTokenImpl": variable_impl.address,
            "underlyingAssetDecimals": decimals,
            "interestRateStrategyAddress": rates.address,
            "underlyingAsset": asset,
            "treasury": owner,  # reserve-factor income accrues to this address as aTokens
            "incentivesController": ZERO_ADDRESS,  # tokens skip the incentives hook when it is zero
            "aTokenName": f"Aave Lab {symbol}",
            "aTokenSymbol": f"aLab{symbol}",
            "variableDebtTokenName": f"Aave Lab Variable Debt {symbol}",
            "variableDebtTokenSymbol": f"variableDebtLab{symbol}",
            "stableDebtTokenName": f"Aave Lab Stable Debt {symbol}",
            "stableDebtTokenSymbol": f"stableDebtLab{symbol}",
            "params": b"",
        })
        for asset, (decimals, symbol) in zip(assets, metadata, strict=True)
    ]
    if inputs:
        configurator.transact("initReserves", inputs, sender=owner)
    for asset in assets:
        # Collateral before any supply: a first supply turns collateral use on only when LTV > 0.
        configurator.transact(
            "configureReserveAsCollateral", asset, ltv, liquidation_threshold, liquidation_bonus, sender=owner
        )
        configurator.transact("setReserveBorrowing", asset, True, sender=owner)
        if reserve_factor:
            configurator.transact("setReserveFactor", asset, reserve_factor, sender=owner)

    reserves: dict[str, AaveReserve] = {}
    for asset, (decimals, symbol), aggregator in zip(assets, metadata, aggregators, strict=True):
        data = pool.call("getReserveData", asset)
        reserves[asset] = AaveReserve(
            asset=asset,
            symbol=symbol,
            decimals=decimals,
            a_token=to_checksum_address(data[8]),
            stable_debt_token=to_checksum_address(data[9]),
            variable_debt_token=to_checksum_address(data[10]),
            aggregator=aggregator,
        )
    return AaveLab(
        url=url,
        owner=owner,
        provider=provider,
        acl=acl,
        pool=pool,
        configurator=configurator,
        oracle=oracle,
        data_provider=data_provider,
        rate_strategy=rates,
        reserves=reserves,
        deploy_seconds=time.monotonic() - started,
    )
