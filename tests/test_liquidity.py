"""Uniswap v3 prices in the audit's findings, on anvil with the real v3-core pool: a registry pool of kind uniswap_v3
prices an issued token, its exit liquidity (the pool's own swap maths, checked against executed swaps in
tests/test_uniswap_v3.py) stands next to the collateral lenders would need to sell, and a thin pool's price is
marked as such and never vouches for an oracle."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from auditor.adapters import uniswap_v3 as v3
from auditor.chain.plan import run_plan
from auditor.chain.reader import ConnectOptions, connect
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from auditor.lab.uniswap import deploy_uniswap, increase_time
from auditor.spec import Pool, load_registry
from tests.conftest import Lab
from tests.support import audit_alpha, morpho_loan, write_alpha

UNIT = 10**6


def test_a_thin_pool_prices_the_collateral_and_cannot_absorb_it(chain: Lab, tmp_path: Path) -> None:
    lab = chain
    treasury, outsider, maker = lab.accounts[3], lab.accounts[5], lab.accounts[6]
    token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    token.transact("mint", outsider, 1_000 * UNIT)
    token.transact("mint", treasury, 400 * UNIT)
    lab.usdc.transact("mint", treasury, 350 * UNIT)
    lab.usdc.transact("mint", lab.lender, 1_000 * UNIT)
    # A v3 pool at 1 USDC per aUSD (both 6 decimals: sqrt price 2**96) with liquidity in +-600 ticks only
    uni = deploy_uniswap(lab.url, lab.deployer)
    for asset in (token, lab.usdc):
        asset.transact("mint", maker, 10**6 * UNIT)
    uni.approve_helper([token, lab.usdc], maker)
    pool = uni.create_pool(token.address, lab.usdc.address, 3000, 2**96)
    uni.mint(pool, -600, 600, 10**10, maker)
    increase_time(lab.url, 3_600)  # an hour at tick 0: the pool's 30-minute TWAP is exactly 1
    # A Morpho market lends USDC against aUSD; the treasury posts 400 aUSD and borrows 200 USDC; the oracle says
    # 1 USD, as the pool does
    _market, _oracle, pin = morpho_loan(lab, token, 1, treasury, posted=400, borrowed=200, supplied=1_000)
    write_alpha(tmp_path, lab, token, treasury, registry_extra=(
        f"pools:\n  ethereum:\n    ausd-usdc: {{address: \"{pool.address}\", kind: uniswap_v3, "
        f"base: \"{token.address}\", quote: \"{lab.usdc.address}\"}}\n"))
    result = audit_alpha(tmp_path, lab.url, pin)
    registry = load_registry(tmp_path / "registry.yaml")
    options = ConnectOptions(rpc={"ethereum": lab.url}, blocks={"ethereum": pin}, use_cache=False)

    # What the pool can absorb, by the module's own exit maths read at the same pin
    client = connect({"ethereum": registry.chains["ethereum"]}, options)["ethereum"]
    depths, why = run_plan(client, v3.exit_liquidity(
        Pool("ethereum", "ausd-usdc", pool.address, v3.KIND, token.address, lab.usdc.address), v3.DEFAULT_DROPS))
    assert depths is not None, why
    assert rpc(lab.url, "eth_blockNumber") == hex(pin)

    [illiquid] = [f for f in result.flags if f.id == "illiquid-collateral"]
    assert illiquid.evidence["posted_tokens"] == Decimal(400)
    exits = illiquid.evidence["exit"]
    assert [p["tokens"] for p in exits] == [d.base_in for d in depths]
    assert [p["usd"] for p in exits] == [d.quote_out for d in depths]  # USDC at par: quote tokens are USD
    assert exits[-1]["tokens"] < 400  # less than what the lenders would have to sell
    # The oracle agrees with the pool (1 USD), but the pool is thin (far under $100,000 before a 2% drop): its price
    # cannot vouch for the oracle, so the oracle is judged against look-through value (350 / 1,400 = 0.25) alone.
    [overvalues] = [f for f in result.flags if f.id == "oracle-overvalues"]
    assert overvalues.evidence["market_price_thin"] is True
    assert "thin pool" in overvalues.message
    assert overvalues.evidence["market_depth_2pct_usd"] == depths[0].quote_out
    assert overvalues.evidence["market_twap_usd"] == Decimal(1)  # 1.0001 ** 0, through USDC at par
    [liquidity] = result.document["liquidity"]
    assert Decimal(liquidity["twap_usd"]) == Decimal(1) and liquidity["twap_why"] == ""

    # The report shows the pool's depth, the posted collateral and the coverage next to the figures
    from auditor.report.render import render_report
    from auditor.report.sign import canonical_json

    canonical = canonical_json(result.document)
    html = render_report(json.loads(canonical), findings_json=canonical, signature=None)
    assert "Can the collateral be sold?" in html and "sells before -2.0%" in html and "posted as collateral" in html
    assert "TWAP (30 min)" in html
    assert "Whom the issuers&#39; accounts moved money with" in html or "Whom the issuers' accounts" in html
    assert "coverage" in html
