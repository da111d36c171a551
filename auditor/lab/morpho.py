"""Deploy Morpho Blue with its mock IRM and oracle on a lab node, and create and use markets on it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from auditor.adapters.morpho_blue import ORACLE_PRICE_SCALE, VIRTUAL_ASSETS, VIRTUAL_SHARES, WAD, MarketState
from auditor.chain.multicall import MULTICALL3_ADDRESS, decode_aggregate3, encode_aggregate3
from auditor.lab import LabError
from auditor.lab.compile import Compiled, compile_morpho
from auditor.lab.deploy import Contract, accounts, eth_call, send_transaction

__all__ = [
    "ORACLE_PRICE_SCALE",
    "VIRTUAL_ASSETS",
    "VIRTUAL_SHARES",
    "WAD",
    "MarketParams",
    "MarketState",
    "MorphoLab",
    "Position",
    "approve",
    "decode_market",
    "decode_position",
    "deploy_morpho",
    "market_id",
    "oracle_price",
]

# Constants of Morpho Blue 1.0.0 (ConstantsLib, SharesMathLib, MathLib).
# One definition of Morpho's constants and market state, shared with the adapter that reads them.

_MARKET_PARAMS_TYPES = ["address", "address", "address", "address", "uint256"]
_APPROVE_SELECTOR = keccak(text="approve(address,uint256)")[:4]


@dataclass(frozen=True)
class MarketParams:
    """Morpho's MarketParams struct; `as_tuple()` is the ABI argument, `id` the market id."""

    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int

    def as_tuple(self) -> tuple[str, str, str, str, int]:
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv)

    @property
    def id(self) -> bytes:
        return market_id(self)


class Position(NamedTuple):
    supply_shares: int
    borrow_shares: int
    collateral: int


def market_id(params: MarketParams) -> bytes:
    """Morpho market id: keccak256 over the five 32-byte struct words, i.e. over abi.encode(params)."""
    # MarketParamsLib.id hashes the struct in memory (5 words), which is byte-identical to abi.encode.
    return keccak(encode(_MARKET_PARAMS_TYPES, list(params.as_tuple())))


def oracle_price(price: int | str | Decimal | Fraction, loan_decimals: int, collateral_decimals: int) -> int:
    """Oracle answer for `price` loan tokens per whole collateral token, at Morpho's scale.

    Morpho reads collateral value as collateral * price / 1e36 in raw units, so the oracle must return
    1e36 * price * 10**loan_decimals / 10**collateral_decimals (IOracle's documentation); rounded down.
    """
    exact = Fraction(price) * ORACLE_PRICE_SCALE * 10**loan_decimals / 10**collateral_decimals
    if exact < 0:
        raise LabError(f"setting an oracle price: {price} is negative")
    return int(exact)


def decode_position(data: bytes) -> Position:
    """Decode the return data of Morpho.position(id, user)."""
    return Position(*decode(["uint256", "uint128", "uint128"], data))


def decode_market(data: bytes) -> MarketState:
    """Decode the return data of Morpho.market(id)."""
    return MarketState(*decode(["uint128"] * 6, data))


def approve(url: str, token: str, spender: str, amount: int, sender: str) -> None:
    """ERC-20 approve from an unlocked account, encoded without an ABI file."""
    data = _APPROVE_SELECTOR + encode(["address", "uint256"], [spender, amount])
    send_transaction(url, to=token, data=data, sender=sender, what=f"approve {token} for {spender}")


@dataclass
class MorphoLab:
    """A Morpho Blue deployment on a lab node with one IrmMock and one OracleMock."""

    url: str
    owner: str
    morpho: Contract
    irm: Contract
    oracle: Contract
    compiled: Compiled

    def deploy_oracle(self, price: int = 0) -> Contract:
        """Another OracleMock (one per market when prices differ), optionally with a raw price set."""
        oracle = Contract.deploy(self.url, self.compiled["OracleMock"], sender=self.owner)
        if price:
            oracle.transact("setPrice", price, sender=self.owner)
        return oracle

    def set_price(self, price: int, oracle: str | None = None) -> None:
        """Set a raw 1e36-scaled price (see oracle_price) on `oracle`, default the lab's OracleMock."""
        target = self.oracle if oracle is None else Contract(self.url, oracle, self.oracle.abi, "OracleMock")
        target.transact("setPrice", price, sender=self.owner)

    def enable_irm(self, irm: str | None = None) -> None:
        self.morpho.transact("enableIrm", irm or self.irm.address, sender=self.owner)

    def enable_lltv(self, lltv: int) -> None:
        self.morpho.transact("enableLltv", lltv, sender=self.owner)

    def market_params(
        self, loan_token: str, collateral_token: str, lltv: int, oracle: str | None = None
    ) -> MarketParams:
        return MarketParams(
            to_checksum_address(loan_token),
            to_checksum_address(collateral_token),
            to_checksum_address(oracle or self.oracle.address),
            self.irm.address,
            lltv,
        )

    def create_market(self, params: MarketParams, sender: str | None = None) -> bytes:
        """createMarket(params); returns the market id. IRM and LLTV must be enabled first."""
        self.morpho.transact("createMarket", params.as_tuple(), sender=sender or self.owner)
        return params.id

    def supply(
        self, params: MarketParams, assets: int, sender: str, on_behalf: str | None = None
    ) -> dict[str, Any]:
        """Approve the loan token and supply `assets` (not shares) for `on_behalf` (default sender)."""
        approve(self.url, params.loan_token, self.morpho.address, assets, sender)
        return self.morpho.transact(
            "supply", params.as_tuple(), assets, 0, on_behalf or sender, b"", sender=sender
        )

    def supply_collateral(
        self, params: MarketParams, assets: int, sender: str, on_behalf: str | None = None
    ) -> dict[str, Any]:
        """Approve the collateral token and supplyCollateral `assets` for `on_behalf` (default sender)."""
        approve(self.url, params.collateral_token, self.morpho.address, assets, sender)
        return self.morpho.transact(
            "supplyCollateral", params.as_tuple(), assets, on_behalf or sender, b"", sender=sender
        )

    def borrow(
        self,
        params: MarketParams,
        assets: int,
        sender: str,
        on_behalf: str | None = None,
        receiver: str | None = None,
    ) -> dict[str, Any]:
        """Borrow `assets` of the loan token against on_behalf's collateral, paid to `receiver`."""
        return self.morpho.transact(
            "borrow", params.as_tuple(), assets, 0, on_behalf or sender, receiver or sender, sender=sender
        )

    def position(self, market: bytes, user: str) -> Position:
        return Position(*self.morpho.call("position", market, user))

    def market(self, market: bytes) -> MarketState:
        return MarketState(*self.morpho.call("market", market))

    def debt_at(self, params: MarketParams, user: str, block: int) -> int:
        """What `user` owes at `block`, as Morpho's own code computes it: accrueInterest, position and market run
        in one eth_call through Multicall3 (the accrual lives only inside the call), then SharesMathLib.toAssetsUp
        as MorphoBalancesLib.expectedBorrowAssets does. An independent check of any off-chain interest model."""
        calls = [(self.morpho.address, False, self.morpho.encode(fn, *args)) for fn, args in
                 (("accrueInterest", (params.as_tuple(),)), ("position", (params.id, user)), ("market", (params.id,)))]
        data = eth_call(self.url, MULTICALL3_ADDRESS, encode_aggregate3(calls), block=block)
        _, (_, position), (_, market) = decode_aggregate3(data)
        shares, state = decode_position(position).borrow_shares, decode_market(market)
        numerator = shares * (state.total_borrow_assets + VIRTUAL_ASSETS)
        return -(-numerator // (state.total_borrow_shares + VIRTUAL_SHARES))  # rounded up, as Morpho does


def deploy_morpho(url: str, owner: str | None = None, *, compiled: Compiled | None = None) -> MorphoLab:
    """Deploy Morpho Blue (owned by its deployer), IrmMock and OracleMock from `owner` (default account 0)."""
    deployer = to_checksum_address(owner) if owner else accounts(url)[0]
    built = compiled if compiled is not None else compile_morpho()
    morpho = Contract.deploy(url, built["Morpho"], deployer, sender=deployer)
    irm = Contract.deploy(url, built["IrmMock"], sender=deployer)
    oracle = Contract.deploy(url, built["OracleMock"], sender=deployer)
    return MorphoLab(url=url, owner=deployer, morpho=morpho, irm=irm, oracle=oracle, compiled=built)
