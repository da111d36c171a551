"""Deploy Pendle v2 (the real @pendle/core-v2 6.11.0 bytecode from npm) on a lab node: SY over an ERC-4626, PT/YT, a
market, liquidity and trades that set its implied rate.

The npm package ships Hardhat artifacts built by Pendle (the bytecode of its deployments) for the factories, the PT,
the YT and PendleMarketV7, so the lab deploys those bytes as Pendle's own deploy scripts do:
- PendleYieldContractFactoryUpg and PendleMarketFactoryV7Upg call `_disableInitializers()` in their constructors:
  each sits behind an OpenZeppelin ERC1967Proxy that calls `initialize`;
- both keep the creation code of what they deploy (YT, market) in two contracts, as Balancer's BaseSplitCodeFactory
  does: each half is deployed as runtime code behind CodeDeployer's 32-byte constructor (`_DEPLOYER_CREATION_CODE`
  in the package's BaseSplitCodeFactory.sol);
- the market's bytecode links OracleLib (deployed first, its address written over the link placeholders);
- a market's gauge reads `gaugeController.pendle()` in its constructor: the lab's LabPendleGauge answers it.
The package ships no SY with bytecode for an ERC-4626, so the lab's LabPendleSY (auditor/lab/contracts) implements
Pendle's IStandardizedYield over an OpenZeppelin vault. PT/YT are minted by sending SY to the YT and calling mintPY;
liquidity and trades go straight to the market (tokens sent first, empty callback data), as the router does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_utils.address import to_checksum_address

from auditor.lab import LabError, node_modules_dir
from auditor.lab.compile import LAB_SETTINGS, LAB_SOLC, Artifact, Compiled, compile_lab_contracts, compile_units
from auditor.lab.deploy import Contract, accounts, send_transaction
from auditor.lab.morpho import approve

__all__ = ["PENDLE_UNITS", "PendleLab", "PendleMarket", "compile_pendle", "deploy_pendle", "pendle_artifact"]

PENDLE_UNITS: tuple[str, ...] = (
    "lab/LabPendleSY.sol",
    "lab/LabPendleGauge.sol",
    "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol",
)
ARTIFACTS = "@pendle/core-v2/build/artifacts/contracts"
PATHS = {
    "PendleYieldContractFactoryUpg": "core/YieldContracts/PendleYieldContractFactoryUpg.sol",
    "PendleMarketFactoryV7Upg": "core/Market/PendleMarketFactoryV7Upg.sol",
    "PendlePrincipalToken": "core/YieldContracts/PendlePrincipalToken.sol",
    "PendleYieldToken": "core/YieldContracts/PendleYieldToken.sol",
    "PendleMarketV7": "core/Market/PendleMarketV7.sol",
    "OracleLib": "core/Market/OracleLib.sol",
    "PendlePYLpOracle": "oracles/PtYtLpOracle/PendlePYLpOracle.sol",  # Pendle's own PT price, to check against
}
# CodeDeployer's constructor (BaseSplitCodeFactory.sol): copy everything after these 32 bytes and return it as code.
DEPLOYER_CREATION_CODE = bytes.fromhex("602038038060206000396000f3fefefefefefefefefefefefefefefefefefefe")
DAY = 86_400
ONE = 10**18


@cache
def pendle_artifact(name: str) -> Artifact:
    """One of Pendle's shipped Hardhat artifacts (bytecode as built by Pendle; link placeholders left in)."""
    path = node_modules_dir() / ARTIFACTS / PATHS[name] / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"loading {name}: cannot read {path}; run `npm ci` (package.json pins @pendle/core-v2)") from exc
    return Artifact(name=name, unit=f"@pendle/core-v2/contracts/{PATHS[name]}", abi=list(data["abi"]),
                    bytecode_hex=str(data["bytecode"]).removeprefix("0x"),
                    runtime_hex=str(data["deployedBytecode"]).removeprefix("0x"))


def _linked_market_code(oracle_lib: str) -> bytes:
    """PendleMarketV7's creation code with OracleLib's address over every placeholder the artifact lists."""
    path = node_modules_dir() / ARTIFACTS / PATHS["PendleMarketV7"] / "PendleMarketV7.json"
    data = json.loads(path.read_text())
    text = str(data["bytecode"]).removeprefix("0x")
    address = oracle_lib.lower().removeprefix("0x")
    for per_file in data["linkReferences"].values():
        for references in per_file.values():
            for reference in references:
                start, length = 2 * reference["start"], 2 * reference["length"]
                text = text[:start] + address + text[start + length:]
    if "__" in text:
        raise LabError("linking PendleMarketV7: a library placeholder is left after linking OracleLib")
    return bytes.fromhex(text)


def compile_pendle(*, use_cache: bool = True) -> Compiled:
    """Compile LabPendleSY, LabPendleGauge and OpenZeppelin's ERC1967Proxy with solc 0.8.24 (cached by source hash)."""
    return compile_units(PENDLE_UNITS, LAB_SOLC, LAB_SETTINGS, use_cache=use_cache)


def _deploy_code(url: str, data: bytes, sender: str, what: str) -> str:
    receipt = send_transaction(url, to=None, data=data, sender=sender, what=what)
    return to_checksum_address(receipt["contractAddress"])


def _split_code(url: str, code: bytes, sender: str, what: str) -> tuple[str, int, str, int]:
    """BaseSplitCodeFactory.setCreationCode done from outside: two contracts holding the halves as their code."""
    size_a = len(code) // 2
    a = _deploy_code(url, DEPLOYER_CREATION_CODE + code[:size_a], sender, f"{what} (first half)")
    b = _deploy_code(url, DEPLOYER_CREATION_CODE + code[size_a:], sender, f"{what} (second half)")
    return a, size_a, b, len(code) - size_a


def _behind_proxy(url: str, proxy: Artifact, implementation: Artifact, init_args: tuple[Any, ...],
                  ctor_args: tuple[Any, ...], sender: str) -> Contract:
    logic = Contract.deploy(url, implementation, *ctor_args, sender=sender)
    init = logic.encode("initialize", *init_args)
    address = Contract.deploy(url, proxy, logic.address, init, sender=sender).address
    return Contract(url, address, implementation.abi, implementation.name)


@dataclass
class PendleMarket:
    """One market with its SY, PT and YT (Contracts with Pendle's ABIs) and its expiry."""

    market: Contract
    sy: Contract
    pt: Contract
    yt: Contract
    vault: Contract
    asset: Contract
    expiry: int


@dataclass
class PendleLab:
    """Pendle's two factories (behind proxies) and the lab's gauge on a node."""

    url: str
    owner: str
    yield_factory: Contract
    market_factory: Contract
    gauge: Contract
    built: Compiled

    def create_market(self, vault: Contract, asset: Contract, expiry: int, *, scalar_root: int = 50 * ONE,
                      initial_anchor: int = ONE * 105 // 100, ln_fee_rate_root: int = ONE // 2000) -> PendleMarket:
        """An SY over `vault`, its PT/YT for `expiry` (a whole day) from the yield factory, and a market for the PT
        from the market factory (Pendle's parameters: scalarRoot, initialAnchor, lnFeeRateRoot; 1e18-scaled)."""
        sy = Contract.deploy(self.url, self.built["LabPendleSY"], "SY lab vault", "SY-LAB", vault.address,
                             sender=self.owner)
        self.yield_factory.transact("createYieldContract", sy.address, expiry, False, sender=self.owner)
        pt_address = self.yield_factory.call("getPT", sy.address, expiry)
        yt_address = self.yield_factory.call("getYT", sy.address, expiry)
        receipt = self.market_factory.transact("createNewMarket", pt_address, scalar_root, initial_anchor,
                                               ln_fee_rate_root, sender=self.owner)
        market_address = _created_market(receipt, self.market_factory.address)
        return PendleMarket(
            Contract(self.url, market_address, pendle_artifact("PendleMarketV7").abi, "PendleMarketV7"), sy,
            Contract(self.url, pt_address, pendle_artifact("PendlePrincipalToken").abi, "PendlePrincipalToken"),
            Contract(self.url, yt_address, pendle_artifact("PendleYieldToken").abi, "PendleYieldToken"),
            vault, asset, expiry)

    def mint_sy(self, market: PendleMarket, assets: int, holder: str) -> int:
        """Deposit `assets` of the vault's asset into the SY for `holder` (minted to it first); returns SY out."""
        market.asset.transact("mint", holder, assets, sender=holder)
        approve(self.url, market.asset.address, market.sy.address, assets, holder)
        before = market.sy.call("balanceOf", holder)
        market.sy.transact("deposit", holder, market.asset.address, assets, 0, sender=holder)
        return int(market.sy.call("balanceOf", holder)) - int(before)

    def mint_py(self, market: PendleMarket, sy_amount: int, holder: str, receiver_pt: str | None = None,
                receiver_yt: str | None = None) -> int:
        """Tokenize `sy_amount` of `holder`'s SY into PT + YT (sent to the YT, then mintPY); returns PT minted."""
        market.sy.transact("transfer", market.yt.address, sy_amount, sender=holder)
        pt_to = receiver_pt or holder
        before = market.pt.call("balanceOf", pt_to)
        market.yt.transact("mintPY", pt_to, receiver_yt or holder, sender=holder)
        return int(market.pt.call("balanceOf", pt_to)) - int(before)

    def add_liquidity(self, market: PendleMarket, sy_amount: int, pt_amount: int, holder: str) -> None:
        """Send SY and PT to the market and mint LP to `holder` (the market takes what fits its ratio)."""
        market.sy.transact("transfer", market.market.address, sy_amount, sender=holder)
        market.pt.transact("transfer", market.market.address, pt_amount, sender=holder)
        market.market.transact("mint", holder, sy_amount, pt_amount, sender=holder)

    def sell_pt(self, market: PendleMarket, pt_amount: int, holder: str) -> None:
        """Swap exactly `pt_amount` PT for SY: the PT price falls, the implied rate rises."""
        market.pt.transact("transfer", market.market.address, pt_amount, sender=holder)
        market.market.transact("swapExactPtForSy", holder, pt_amount, b"", sender=holder)

    def buy_pt(self, market: PendleMarket, pt_amount: int, sy_budget: int, holder: str) -> None:
        """Swap SY for exactly `pt_amount` PT, sending `sy_budget` first (the market keeps what it needs and the rest
        stays as its surplus): the PT price rises, the implied rate falls."""
        market.sy.transact("transfer", market.market.address, sy_budget, sender=holder)
        market.market.transact("swapSyForExactPt", holder, pt_amount, b"", sender=holder)

    def storage(self, market: PendleMarket, block: str | int = "latest") -> tuple[int, ...]:
        """The market's _storage(): totalPt, totalSy, lastLnImpliedRate, observation index/cardinality/next."""
        return tuple(int(v) for v in market.market.call("_storage", block=block))


def _created_market(receipt: dict[str, Any], factory: str) -> str:
    from eth_utils.crypto import keccak

    topic = "0x" + keccak(text="CreateNewMarket(address,address,int256,int256,uint256)").hex()
    for log in receipt["logs"]:
        if log["address"].lower() == factory.lower() and log["topics"][0] == topic:
            return to_checksum_address("0x" + log["topics"][1][-40:])
    raise LabError("createNewMarket: the factory emitted no CreateNewMarket event")


def deploy_pendle(url: str, owner: str | None = None, *, built: Compiled | None = None,
                  lab: Compiled | None = None) -> PendleLab:
    """Deploy Pendle's yield contract factory and market factory (behind ERC1967 proxies, split creation code, OracleLib
    linked) with a lab gauge whose PENDLE is a LabToken; fees: 3% on interest, 0 on rewards, no reserve fee."""
    deployer = to_checksum_address(owner) if owner else accounts(url)[0]
    built = built if built is not None else compile_pendle()
    lab = lab if lab is not None else compile_lab_contracts()
    proxy = built["ERC1967Proxy"]
    pendle_token = Contract.deploy(url, lab["LabToken"], "Pendle", "PENDLE", 18, sender=deployer)
    gauge = Contract.deploy(url, built["LabPendleGauge"], pendle_token.address, sender=deployer)
    yt_code = _split_code(url, pendle_artifact("PendleYieldToken").bytecode, deployer, "YT creation code")
    # initialize(expiryDivisor, interestFeeRate, rewardFeeRate, treasury, owner)
    yield_factory = _behind_proxy(url, proxy, pendle_artifact("PendleYieldContractFactoryUpg"),
                                  (DAY, 3 * ONE // 100, 0, deployer, deployer), yt_code, deployer)
    oracle_lib = _deploy_code(url, pendle_artifact("OracleLib").bytecode, deployer, "deploying OracleLib")
    market_code = _split_code(url, _linked_market_code(oracle_lib), deployer, "market creation code")
    # initialize(owner, treasury, reserveFeePercent)
    market_factory = _behind_proxy(url, proxy, pendle_artifact("PendleMarketFactoryV7Upg"),
                                   (deployer, deployer, 0),
                                   (yield_factory.address, *market_code, gauge.address), deployer)
    return PendleLab(url, deployer, yield_factory, market_factory, gauge, built)
