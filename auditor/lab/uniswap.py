"""Deploy Uniswap v3 (the real v3-core 1.0.1 bytecode from npm) on a lab node, and create, fill and trade pools.

The npm package ships the factory and pool as Hardhat artifacts built by Uniswap (solc 0.7.6, optimizer runs 800,
no metadata hash): the bytecode deployed on mainnet, so the lab deploys those bytes instead of recompiling (the
package has no pool sources). The factory's runtime is 24,535 bytes and the pool's 22,142, both under the 24,576-byte
limit, so a default anvil takes them. Pools pull their tokens in callbacks, so mints and swaps go through the lab's
UniV3Helper (auditor/lab/contracts/UniV3Helper.sol, compiled with solc 0.7.6 against v3-core's interfaces).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from eth_abi.abi import decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from auditor.adapters.uniswap_v3 import (
    MAX_SQRT_RATIO,
    MIN_SQRT_RATIO,
    get_sqrt_ratio_at_tick,
)
from auditor.lab import LabError, node_modules_dir
from auditor.lab.compile import Artifact, Compiled, compile_units
from auditor.lab.deploy import Contract, accounts
from auditor.lab.morpho import approve
from auditor.lab.node import rpc

__all__ = [
    "HELPER_SETTINGS",
    "HELPER_SOLC",
    "MAX_UINT",
    "Slot0",
    "Swap",
    "UniswapLab",
    "compile_helper",
    "deploy_uniswap",
    "increase_time",
    "mine",
    "revert",
    "snapshot",
    "v3_artifact",
]

HELPER_SOLC = "0.7.6"  # v3-core's interfaces are `pragma >=0.5.0`, the pool itself `=0.7.6`
# Uniswap's own v3-core build profile (the verified mainnet sources' settings): optimizer runs 800, no metadata hash.
HELPER_SETTINGS: dict[str, Any] = {"optimizer": {"enabled": True, "runs": 800}, "metadata": {"bytecodeHash": "none"}}
HELPER_UNITS = ("lab/UniV3Helper.sol",)
MAX_UINT = 2**256 - 1

# IUniswapV3PoolEvents.Swap(address indexed sender, address indexed recipient, int256 amount0, int256 amount1,
# uint160 sqrtPriceX96, uint128 liquidity, int24 tick)
SWAP_TOPIC = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()


def v3_artifact(name: str) -> Artifact:
    """UniswapV3Factory or UniswapV3Pool from @uniswap/v3-core's shipped Hardhat artifact."""
    path = node_modules_dir() / "@uniswap/v3-core/artifacts/contracts" / f"{name}.sol" / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(
            f"loading {name}: cannot read {path}; run `npm ci` (package.json pins @uniswap/v3-core)"
        ) from exc
    if data.get("linkReferences"):
        raise LabError(f"loading {name}: its bytecode needs linked libraries, which the lab does not do")
    return Artifact(
        name=name,
        unit=f"@uniswap/v3-core/contracts/{name}.sol",
        abi=list(data["abi"]),
        bytecode_hex=str(data["bytecode"]).removeprefix("0x"),
        runtime_hex=str(data["deployedBytecode"]).removeprefix("0x"),
    )


def compile_helper(*, use_cache: bool = True) -> Compiled:
    """Compile UniV3Helper with solc 0.7.6 (cached by source hash, like every lab compile)."""
    return compile_units(HELPER_UNITS, HELPER_SOLC, HELPER_SETTINGS, use_cache=use_cache)


# ------------------------------------------------------------------ node time and snapshots


def snapshot(url: str) -> str:
    return str(rpc(url, "evm_snapshot"))


def revert(url: str, snapshot_id: str) -> None:
    """evm_revert; anvil drops the snapshot once reverted to, so take a new one for the next revert."""
    if not rpc(url, "evm_revert", [snapshot_id]):
        raise LabError(f"evm_revert({snapshot_id}) returned false")


def mine(url: str, timestamp: int | None = None) -> int:
    """Mine one block (at `timestamp` when given); returns its number."""
    rpc(url, "evm_mine", [timestamp] if timestamp is not None else [])
    return int(rpc(url, "eth_blockNumber"), 16)


def increase_time(url: str, seconds: int) -> None:
    """Move the next block's time `seconds` ahead (evm_increaseTime) and mine it."""
    rpc(url, "evm_increaseTime", [seconds])
    rpc(url, "evm_mine")


def set_next_timestamp(url: str, timestamp: int) -> None:
    rpc(url, "evm_setNextBlockTimestamp", [timestamp])


def block_timestamp(url: str, block: str | int = "latest") -> int:
    tag = hex(block) if isinstance(block, int) else block
    return int(rpc(url, "eth_getBlockByNumber", [tag, False])["timestamp"], 16)


# ------------------------------------------------------------------ the deployment


class Slot0(NamedTuple):
    sqrt_price_x96: int
    tick: int
    observation_index: int
    observation_cardinality: int
    observation_cardinality_next: int
    fee_protocol: int
    unlocked: bool


class Swap(NamedTuple):
    """A Swap event: the pool's signed deltas (positive: paid in) and its state after the swap."""

    amount0: int
    amount1: int
    sqrt_price_x96: int
    liquidity: int
    tick: int
    block: int


@dataclass
class UniswapLab:
    """A UniswapV3Factory and a UniV3Helper on a lab node; pools are plain Contracts with the pool ABI."""

    url: str
    owner: str
    factory: Contract
    helper: Contract
    pool_abi: list[dict[str, Any]]

    def pool(self, address: str) -> Contract:
        return Contract(self.url, address, self.pool_abi, "UniswapV3Pool")

    def create_pool(self, token_a: str, token_b: str, fee: int, sqrt_price_x96: int,
                    cardinality: int = 0) -> Contract:
        """factory.createPool then initialize at `sqrt_price_x96` (token1 per token0, Q64.96); `cardinality` > 1
        grows the oracle's ring buffer (increaseObservationCardinalityNext) for TWAPs over several observations."""
        self.factory.transact("createPool", token_a, token_b, fee, sender=self.owner)
        address = self.factory.call("getPool", token_a, token_b, fee)
        pool = self.pool(address)
        pool.transact("initialize", sqrt_price_x96, sender=self.owner)
        if cardinality > 1:
            pool.transact("increaseObservationCardinalityNext", cardinality, sender=self.owner)
        return pool

    def enable_fee(self, fee: int, tick_spacing: int) -> None:
        self.factory.transact("enableFeeAmount", fee, tick_spacing, sender=self.owner)

    def approve_helper(self, tokens: Sequence[Contract | str], holder: str) -> None:
        """Let the helper pull `tokens` from `holder` (once per holder and token)."""
        for token in tokens:
            address = token.address if isinstance(token, Contract) else token
            approve(self.url, address, self.helper.address, MAX_UINT, holder)

    def mint(self, pool: Contract, tick_lower: int, tick_upper: int, liquidity: int, payer: str,
             owner: str | None = None) -> tuple[int, int]:
        """Add `liquidity` in [tick_lower, tick_upper) for `owner` (default payer), paid by `payer` through the
        helper (approve_helper first); returns the token amounts the pool took, from the pool's Mint event."""
        receipt = self.helper.transact(
            "mint", pool.address, owner or payer, tick_lower, tick_upper, liquidity, sender=payer
        )
        mint_topic = "0x" + keccak(text="Mint(address,address,int24,int24,uint128,uint256,uint256)").hex()
        for log in receipt["logs"]:
            if log["address"].lower() == pool.address.lower() and log["topics"][0] == mint_topic:
                _sender, _amount, amount0, amount1 = decode(
                    ["address", "uint128", "uint256", "uint256"], bytes.fromhex(log["data"][2:])
                )
                return int(amount0), int(amount1)
        raise LabError("mint: the pool emitted no Mint event")

    def swap(self, pool: Contract, zero_for_one: bool, amount_specified: int, payer: str,
             sqrt_price_limit_x96: int | None = None, recipient: str | None = None) -> Swap:
        """Swap on `pool` paid by `payer` (exact input when amount_specified > 0, exact output when < 0) up to the
        limit (default: as far as the pool allows); returns the pool's Swap event."""
        limit = sqrt_price_limit_x96
        if limit is None:
            limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        receipt = self.helper.transact(
            "swap", pool.address, recipient or payer, zero_for_one, amount_specified, limit, sender=payer
        )
        for log in receipt["logs"]:
            if log["address"].lower() == pool.address.lower() and log["topics"][0] == SWAP_TOPIC:
                a0, a1, price, liquidity, tick = decode(
                    ["int256", "int256", "uint160", "uint128", "int24"], bytes.fromhex(log["data"][2:])
                )
                return Swap(int(a0), int(a1), int(price), int(liquidity), int(tick), int(receipt["blockNumber"], 16))
        raise LabError("swap: the pool emitted no Swap event")

    def move_to_tick(self, pool: Contract, tick: int, payer: str) -> Swap:
        """Swap until the price is exactly the price of `tick` (a big exact input with that limit)."""
        target = get_sqrt_ratio_at_tick(tick)
        current = self.slot0(pool).sqrt_price_x96
        if target == current:
            raise LabError(f"the pool is already at tick {tick}'s price")
        return self.swap(pool, target < current, 2**200, payer, target)

    def slot0(self, pool: Contract, block: str | int = "latest") -> Slot0:
        return Slot0(*pool.call("slot0", block=block))


def deploy_uniswap(url: str, owner: str | None = None, *, helper: Compiled | None = None) -> UniswapLab:
    """Deploy UniswapV3Factory (owned by `owner`, default account 0; fee tiers 500/3000/10000 enabled, and 100 with
    tick spacing 1 as governance later enabled on mainnet) and a UniV3Helper."""
    deployer = to_checksum_address(owner) if owner else accounts(url)[0]
    factory = Contract.deploy(url, v3_artifact("UniswapV3Factory"), sender=deployer)
    built = helper if helper is not None else compile_helper()
    helper_contract = Contract.deploy(url, built["UniV3Helper"], sender=deployer)
    lab = UniswapLab(url, deployer, factory, helper_contract, v3_artifact("UniswapV3Pool").abi)
    lab.enable_fee(100, 1)
    return lab
