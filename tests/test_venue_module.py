"""A venue is one module: Uniswap v3 pools price an audit through auditor/adapters/uniswap_v3.py alone.

Nothing else in the package names the kind: the registry accepts `kind: uniswap_v3` because the module registers
a price source (read from its source by auditor/catalogue.py), the audit's market prices and the oracle checks'
samples at past blocks reach it through the venue registry, and the flags see its prices like any other pool's.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest

from auditor import catalogue
from auditor.adapters.uniswap_v3 import price_of_sqrt
from auditor.audit import AuditRequest, run_audit
from auditor.chain.reader import ConnectOptions
from auditor.lab.deploy import Contract
from auditor.lab.morpho import oracle_price
from auditor.lab.node import rpc
from auditor.lab.uniswap import deploy_uniswap
from auditor.spec import load_registry, load_spec
from tests.conftest import Lab

UNIT = 10**6
PACKAGE = Path(__file__).resolve().parents[1] / "auditor"


def head(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


def test_only_the_venue_module_names_the_kind() -> None:
    """The kind is known from the module alone: no other source file of the package spells it."""
    assert "uniswap_v3" in catalogue.pool_kinds()
    naming = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                    if '"uniswap_v3"' in p.read_text(encoding="utf-8"))
    assert naming == ["adapters/uniswap_v3.py"]


def test_a_uniswap_v3_pool_prices_the_audit(chain: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A curator lends USDC against xUSD in a Morpho market whose oracle is hard-coded at 1.26, while xUSD trades
    in a real Uniswap v3 pool that falls from 1 to about 0.6 and then 0.23 during the oracle window. The audit's
    market price of xUSD is the pool's exact price at the pin, and the frozen oracle is flagged against the pool's
    sampled prices: both read through the venue module, at the pin and at earlier blocks."""
    window = 50  # the audit's oracle window, shortened so that the lab needs only ~60 blocks
    monkeypatch.setattr("auditor.audit.ORACLE_WINDOW_BLOCKS", window)
    lab, morpho = chain, chain.morpho
    treasury, provider = lab.accounts[3], lab.accounts[4]
    uniswap = deploy_uniswap(lab.url)
    xusd = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Stream xUSD", "xUSD", 6)
    vault_token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Curated USDC", "cUSDC", 6)
    for token in (xusd, lab.usdc):
        token.transact("mint", provider, 10**12 * UNIT)
    uniswap.approve_helper([xusd, lab.usdc], provider)
    base_is_token0 = xusd.address.lower() < lab.usdc.address.lower()
    token0, token1 = (xusd, lab.usdc) if base_is_token0 else (lab.usdc, xusd)
    pool = uniswap.create_pool(token0.address, token1.address, 3000, 2**96)  # 1 USDC per xUSD, both 6 decimals
    uniswap.mint(pool, -30000, 30000, 10**15, provider)  # ticks are multiples of the 3000 tier's spacing, 60

    def tick_of(price: str) -> int:
        """The tick at which xUSD is worth `price` USDC (the pool's price is token1 per token0)."""
        tick = round(math.log(float(price)) / math.log(1.0001))
        return tick if base_is_token0 else -tick

    frozen = morpho.deploy_oracle(oracle_price("1.26", 6, 6))
    params = morpho.market_params(lab.usdc.address, xusd.address, lab.lltv, frozen.address)
    morpho.create_market(params)
    lab.usdc.transact("mint", treasury, 100 * UNIT)
    morpho.supply(params, 100 * UNIT, treasury)
    rpc(lab.url, "anvil_mine", [hex(window)])  # the window opens with the pool at 1
    for price in ("0.6", "0.23"):
        uniswap.move_to_tick(pool, tick_of(price), provider)
        rpc(lab.url, "anvil_mine", [hex(window // 3)])
    pin = head(lab.url)
    at_pin = price_of_sqrt(uniswap.slot0(pool, pin).sqrt_price_x96, base_is_token0, 6, 6)
    assert Decimal("0.229") < at_pin < Decimal("0.231")

    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{morpho.morpho.address}\", from_block: 0}}\n"
        f"pools:\n  ethereum:\n    xusd_v3: {{address: \"{pool.address}\", kind: uniswap_v3, "
        f"base: \"{xusd.address}\", quote: \"{lab.usdc.address}\"}}\n")
    (tmp_path / "curator.yaml").write_text(
        "id: curator\nname: Curator\ntoken:\n  symbol: cUSDC\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{vault_token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: vault}}\n")
    (tmp_path / "xusd.yaml").write_text(
        "id: xusd\nname: xUSD\ntoken:\n  symbol: xUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{xusd.address}\"}}\n")
    registry = load_registry(tmp_path / "registry.yaml")
    specs = {name: load_spec(tmp_path / f"{name}.yaml", registry) for name in ("curator", "xusd")}
    options = ConnectOptions(rpc={"ethereum": lab.url}, blocks={"ethereum": pin}, use_cache=False)
    result = run_audit(AuditRequest(specs["curator"], registry, options, specs=specs))

    assert result.complete and result.skipped == []
    finding = next(f for f in result.flags if f.id == "oracle-frozen")
    source = f"uniswap_v3 pool xusd_v3 ({pool.address})"
    assert finding.evidence["market_price_source"] == source
    assert finding.evidence["market_price"]["last"] == at_pin  # the pool's own price at the pin, exactly
    assert finding.evidence["market_price"]["first"] == 1  # the pool before the fall: 2**96 is exactly 1
    assert finding.evidence["oracle_move"] == 0
    samples = finding.evidence["samples"]["market_price"]
    for block, value in samples:  # every sample is the pool's price at its block
        expected = price_of_sqrt(uniswap.slot0(pool, block).sqrt_price_x96, base_is_token0, 6, 6)
        assert Decimal(value) == expected
    assert len({value for _block, value in samples}) == 3  # 1, ~0.6 and ~0.23 were all sampled
    # The audit's requests: the pin's rounds plus one round of samples at the six past blocks.
    assert result.requests["ethereum"]["http_requests"] <= result.requests["ethereum"]["rounds"] + 2
