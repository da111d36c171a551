"""Pendle v2 on anvil, against the real @pendle/core-v2 6.11.0 bytecode (factories, PT, YT, PendleMarketV7): a PT is
valued by look-through, its asset's look-through value times what it redeems at maturity, discounted at the market's
implied rate, and at par after expiry; a failed read is a gap; a Morpho market taking the PT as collateral is in the
exposure map of the token under it. Expected figures are computed here from the market's own state, read directly."""

from __future__ import annotations

import decimal
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from auditor.adapters import pendle as module
from auditor.audit import AuditRequest, run_audit
from auditor.chain.reader import ConnectOptions
from auditor.exposure import run_exposure
from auditor.findings import AuditResult
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract, accounts, deploy_lab_token, install_multicall3
from auditor.lab.morpho import MorphoLab, deploy_morpho, oracle_price
from auditor.lab.node import Anvil, rpc, start_anvil
from auditor.lab.pendle import DAY, PendleLab, PendleMarket, deploy_pendle, pendle_artifact
from auditor.lab.uniswap import block_timestamp
from auditor.model import token_key
from auditor.numbers import context
from auditor.spec import load_registry, load_spec
from tests.support import rolled_back, same_block
from tests.test_exposure import pinned_client

UNIT = 10**6  # xUSD and USDC have 6 decimals; so do the vault, the SY, the PT and the YT over them
LLTV = 860_000_000_000_000_000


@dataclass
class World:
    node: Anvil
    url: str
    owner: str
    treasury: str  # beta's account: holds PT-xUSD
    alpha_treasury: str
    pendle: PendleLab
    morpho: MorphoLab
    usdc: Contract
    xusd: Contract
    vault: Contract
    oracle: Contract  # Pendle's own PendlePYLpOracle (implementation; its PT price is a view of the market)
    folder: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    node = start_anvil(1)
    try:
        url = node.url
        install_multicall3(url)
        owner, treasury, alpha_treasury = (accounts(url)[i] for i in (0, 3, 4))
        built = compile_lab_contracts()
        morpho = deploy_morpho(url, owner)
        morpho.enable_irm()
        morpho.enable_lltv(LLTV)
        pendle = deploy_pendle(url, owner, lab=built)
        usdc = deploy_lab_token(url, "USD Coin", "USDC", 6, compiled=built)
        xusd = deploy_lab_token(url, "Alpha xUSD", "xUSD", 6, compiled=built)
        vault = Contract.deploy(url, built["LabVault"], xusd.address, "staked xUSD", "sxUSD", sender=owner)
        oracle = Contract.deploy(url, pendle_artifact("PendlePYLpOracle"), sender=owner)
        # alpha: 1,000 xUSD out, 600 USDC held: xUSD is worth 0.6 by look-through
        xusd.transact("mint", owner, 1_000 * UNIT)
        usdc.transact("mint", alpha_treasury, 600 * UNIT)
        folder = tmp_path_factory.mktemp("pendle")
        (folder / "registry.yaml").write_text(
            "chains:\n  ethereum: {chain_id: 1}\n"
            f"assets:\n  ethereum:\n    USDC: {{address: \"{usdc.address}\", decimals: 6, price: par}}\n"
            "venues:\n"
            f"  morpho_blue:\n    ethereum: {{address: \"{morpho.morpho.address}\", from_block: 0}}\n"
            f"  pendle:\n    ethereum: {{address: \"{pendle.market_factory.address}\", from_block: 0}}\n")
        (folder / "alpha.yaml").write_text(
            "id: alpha\nname: Alpha\ntoken:\n  symbol: xUSD\n  deployments:\n"
            f"    - {{chain: ethereum, address: \"{xusd.address}\"}}\n"
            f"accounts:\n  - {{chain: ethereum, address: \"{alpha_treasury}\", label: alpha treasury}}\n")
        beta_token = deploy_lab_token(url, "Beta USD", "bUSD", 6, compiled=built)
        beta_token.transact("mint", owner, 1_000 * UNIT)
        (folder / "beta.yaml").write_text(
            "id: beta\nname: Beta\ntoken:\n  symbol: bUSD\n  deployments:\n"
            f"    - {{chain: ethereum, address: \"{beta_token.address}\"}}\n"
            f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: beta treasury}}\n")
        yield World(node, url, owner, treasury, alpha_treasury, pendle, morpho, usdc, xusd, vault, oracle, folder)
    finally:
        node.stop()


@pytest.fixture
def lab(world: World) -> Iterator[World]:
    with rolled_back(world.url):
        yield world


def _market(world: World, days: int) -> PendleMarket:
    """A market for a PT over an SY over the xUSD vault, `days` whole days ahead; liquidity 100k SY + 100k PT."""
    expiry = (block_timestamp(world.url) // DAY + days) * DAY
    market = world.pendle.create_market(world.vault, world.xusd, expiry)
    world.usdc.transact("mint", world.alpha_treasury, 180_000 * UNIT)  # 0.6 USDC at alpha for each xUSD minted below
    sy = world.pendle.mint_sy(market, 300_000 * UNIT, world.owner)
    world.pendle.mint_py(market, sy // 2, world.owner)
    world.pendle.add_liquidity(market, 100_000 * UNIT, 100_000 * UNIT, world.owner)
    return market


def _audit(world: World, block: int) -> AuditResult:
    registry = load_registry(world.folder / "registry.yaml")
    spec = load_spec(world.folder / "beta.yaml", registry)
    options = ConnectOptions(rpc={"ethereum": world.url}, blocks={"ethereum": block}, use_cache=False)
    return run_audit(AuditRequest(spec, registry, options))


def _head(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


def expected_factor(world: World, market: PendleMarket, block: int) -> Decimal:
    """min(1, exchangeRate/pyIndexStored) * exp(-ln(1 + implied rate) * years to expiry), from direct calls."""
    _pt, _sy, ln_rate, *_ = market.market.call("_storage", block=block)
    rate, index = market.sy.call("exchangeRate", block=block), market.yt.call("pyIndexStored", block=block)
    seconds = max(0, market.expiry - block_timestamp(world.url, block))
    with decimal.localcontext(context()):
        discount = (-(Decimal(ln_rate) / 10**18) * seconds / (365 * 86400)).exp() if seconds else Decimal(1)
        return min(Decimal(1), Decimal(rate) / Decimal(index)) * discount


def pendle_price(world: World, market: PendleMarket, block: int) -> Decimal:
    """Pendle's own PT-to-asset rate (PendlePYOracleLib over the market's lastLnImpliedRate: duration 0)."""
    return Decimal(world.oracle.call("getPtToAssetRate", market.market.address, 0, block=block)) / 10**18


def beta_backing(result: AuditResult) -> Decimal:
    return result.backing.issuers["beta"].verifiable_backing_usd


# ------------------------------------------------------------------ pure maths


def test_pt_maths_at_the_edges() -> None:
    assert module.pt_discount(5 * 10**17, 0) == 1 and module.pt_discount(5 * 10**17, -10) == 1
    assert module.pt_discount(0, 10**7) == 1
    with decimal.localcontext(context()):
        # ln(1.1) a year: one year before expiry a PT costs 1/1.1 of the asset
        one_year = module.pt_discount(int(Decimal("1.1").ln() * 10**18), 365 * 86400)
    assert abs(one_year - 1 / Decimal("1.1")) < Decimal("1e-17")
    assert module.redeemable_per_pt(2 * 10**18, 10**18) == 1
    assert module.redeemable_per_pt(9 * 10**17, 10**18) == Decimal("0.9")
    assert module.pt_factor(0, 0, 10**18, 10**18, 18, 6) == 10**12


# ------------------------------------------------------------------ on the real contracts


def test_a_pt_is_its_assets_look_through_value_discounted_at_the_implied_rate(lab: World) -> None:
    market = _market(lab, 180)
    lab.pendle.sell_pt(market, 20_000 * UNIT, lab.owner)  # a trade sets the implied rate
    market.pt.transact("transfer", lab.treasury, 500 * UNIT, sender=lab.owner)
    block = _head(lab.url)
    result = _audit(lab, block)
    assert result.complete, result.gaps
    factor = expected_factor(lab, market, block)
    assert Decimal("0.8") < factor < 1
    # Pendle's own PT price (LogExpMath fixed point, 18 decimals) agrees to its precision
    assert abs(pendle_price(lab, market, block) - factor) < Decimal("1e-15")
    # alpha holds 600 USDC against 1,000 xUSD: xUSD is worth 0.6 a token to beta, its PT 0.6 x factor
    assert result.backing.issuers["alpha"].backing_ratio == Decimal("0.6")
    with decimal.localcontext(context()):
        expected = Decimal(500) * (Decimal("0.6") * (Decimal(1) * factor))
    assert beta_backing(result) == expected
    [position] = [p for p in result.document["issuers"]["beta"]["positions"] if p["venue"] == "pendle"]
    assert (position["token"].lower(), position["amount_raw"]) == (market.pt.address.lower(), str(500 * UNIT))
    assert position["details"]["asset"] == lab.xusd.address.lower()
    assert Decimal(position["details"]["asset_per_pt"]) == factor
    assert "alpha" in result.backing.issuers["beta"].depends_on


def test_yt_and_lp_are_listed_not_counted(lab: World) -> None:
    market = _market(lab, 90)
    market.yt.transact("transfer", lab.treasury, 300 * UNIT, sender=lab.owner)
    market.market.transact("transfer", lab.treasury, 10**9, sender=lab.owner)  # raw LP units
    result = _audit(lab, _head(lab.url))
    assert result.complete, result.gaps
    assert beta_backing(result) == 0
    listed = {h.token_key: h for h in result.backing.issuers["beta"].unverifiable}
    assert listed[token_key("ethereum", market.yt.address)].amount == 300 * UNIT
    assert token_key("ethereum", market.market.address) in listed


def test_after_expiry_a_pt_is_at_par(lab: World) -> None:
    market = _market(lab, 30)
    lab.pendle.sell_pt(market, 5_000 * UNIT, lab.owner)
    market.pt.transact("transfer", lab.treasury, 250 * UNIT, sender=lab.owner)
    rpc(lab.url, "evm_setNextBlockTimestamp", [market.expiry + 1])
    rpc(lab.url, "evm_mine")
    block = _head(lab.url)
    assert pendle_price(lab, market, block) == 1
    result = _audit(lab, block)
    assert result.complete, result.gaps
    assert beta_backing(result) == Decimal(250) * Decimal("0.6")


def test_a_pt_whose_market_cannot_be_read_is_a_gap_never_a_zero(lab: World) -> None:
    market = _market(lab, 60)
    market.pt.transact("transfer", lab.treasury, 100 * UNIT, sender=lab.owner)
    rpc(lab.url, "anvil_setCode", [market.market.address, "0x60006000fd"])  # every call to the market reverts
    result = _audit(lab, _head(lab.url))
    assert not result.reads_complete
    assert any(market.pt.address.lower() in gap.what.lower() for gap in result.gaps), result.gaps


@pytest.mark.parametrize("seed", range(4))
def test_seeded_expiries_and_trades(lab: World, seed: int) -> None:
    rng = random.Random(seed)
    market = _market(lab, rng.randint(7, 720))
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            lab.pendle.sell_pt(market, rng.randint(1, 10_000) * UNIT, lab.owner)
        else:
            bought = rng.randint(1, 10_000) * UNIT
            lab.pendle.buy_pt(market, bought, bought, lab.owner)  # a PT costs less than one SY here
        rpc(lab.url, "evm_increaseTime", [rng.randint(0, 5 * DAY)])
        rpc(lab.url, "evm_mine")
    held = rng.randint(1, 15_000) * UNIT + rng.randint(0, UNIT - 1)  # the owner keeps >= 20,000 PT
    market.pt.transact("transfer", lab.treasury, held, sender=lab.owner)
    block = _head(lab.url)
    result = _audit(lab, block)
    assert result.complete, result.gaps
    factor = expected_factor(lab, market, block)
    assert abs(pendle_price(lab, market, block) - factor) < Decimal("1e-15")
    with decimal.localcontext(context()):
        expected = Decimal(held) / UNIT * (Decimal("0.6") * (Decimal(1) * factor))
    assert beta_backing(result) == expected


def test_a_morpho_market_taking_the_pt_is_in_the_exposure_map_of_the_token_under_it(lab: World) -> None:
    market = _market(lab, 120)
    borrower, lender = accounts(lab.url)[5], accounts(lab.url)[6]
    market.pt.transact("transfer", borrower, 1_000 * UNIT, sender=lab.owner)
    lab.usdc.transact("mint", lender, 5_000 * UNIT)
    oracle = lab.morpho.deploy_oracle(oracle_price("0.9", 6, 6))
    params = lab.morpho.market_params(lab.usdc.address, market.pt.address, LLTV, oracle.address)
    lab.morpho.create_market(params)
    lab.morpho.supply(params, 5_000 * UNIT, lender)
    lab.morpho.supply_collateral(params, 1_000 * UNIT, borrower)
    lab.morpho.borrow(params, 400 * UNIT, borrower)
    registry = load_registry(lab.folder / "registry.yaml")
    exposure: dict[str, Any] = run_exposure(lab.xusd.address, "ethereum", registry,
                                            pinned_client(lab.url, _head(lab.url)))
    [found] = [m for m in exposure["markets"] if m["collateral_token"].lower() == market.pt.address.lower()]
    assert found["relation"] == "look-through"
    assert [a.lower() for a in found["collateral_path"]] == [
        a.lower() for a in (lab.xusd.address, lab.vault.address, market.sy.address, market.pt.address)]
    assert int(found["total_borrowed_raw"]) >= 400 * UNIT


def test_a_loan_against_pt_collateral_is_worth_what_the_pt_is_by_look_through(lab: World) -> None:
    """beta lends 100 USDC in a Morpho market taking the PT; the borrower posts 100 PT (an oracle at 1 USDC lets it
    borrow 80): the loan is worth the 20 idle plus min(80, 100 PT x factor x 0.6), never the oracle's price."""
    market = _market(lab, 200)
    lab.pendle.sell_pt(market, 8_000 * UNIT, lab.owner)
    borrower = accounts(lab.url)[5]
    market.pt.transact("transfer", borrower, 100 * UNIT, sender=lab.owner)
    lab.usdc.transact("mint", lab.treasury, 100 * UNIT)
    oracle = lab.morpho.deploy_oracle(oracle_price(1, 6, 6))
    params = lab.morpho.market_params(lab.usdc.address, market.pt.address, LLTV, oracle.address)
    lab.morpho.create_market(params)
    blue = lab.morpho.morpho
    lab.usdc.transact("approve", blue.address, 100 * UNIT, sender=lab.treasury)
    market.pt.transact("approve", blue.address, 100 * UNIT, sender=borrower)
    block = same_block(lab.url, [  # one block: no interest accrues before the pin
        (blue, "supply", (params.as_tuple(), 100 * UNIT, 0, lab.treasury, b""), lab.treasury),
        (blue, "supplyCollateral", (params.as_tuple(), 100 * UNIT, borrower, b""), borrower),
        (blue, "borrow", (params.as_tuple(), 80 * UNIT, 0, borrower, borrower), borrower),
    ])
    result = _audit(lab, block)
    assert result.complete, result.gaps
    factor = expected_factor(lab, market, block)
    with decimal.localcontext(context()):
        collateral = Decimal(100) * (Decimal("0.6") * (Decimal(1) * factor))
        assert collateral < 80
        expected = Decimal(1) * (Decimal(20) * 1 + collateral)
    assert beta_backing(result) == expected
