"""Uniswap v3 prices in the audit's findings, on anvil with the real v3-core pool: a registry pool of kind uniswap_v3
prices an issued token, its exit liquidity (the pool's own swap maths, checked against executed swaps in
tests/test_uniswap_v3.py) stands next to the collateral lenders would need to sell, and a thin pool's price is
marked as such and never vouches for an oracle."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from auditor.adapters import uniswap_v3 as v3
from auditor.audit import AuditRequest, run_audit
from auditor.chain.plan import run_plan
from auditor.chain.reader import ConnectOptions, connect
from auditor.lab.deploy import Contract
from auditor.lab.morpho import oracle_price
from auditor.lab.node import rpc
from auditor.lab.uniswap import deploy_uniswap
from auditor.spec import Pool, load_registry, load_spec
from tests.conftest import Lab
from tests.support import same_block

UNIT = 10**6


def test_a_thin_pool_prices_the_collateral_and_cannot_absorb_it(chain: Lab, tmp_path: Path) -> None:
    lab, morpho = chain, chain.morpho
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
    # A Morpho market lends USDC against aUSD; the treasury posts 400 aUSD and borrows 200 USDC
    oracle = morpho.deploy_oracle(oracle_price(1, 6, 6))  # the oracle says 1 USD, as the pool does
    market = morpho.market_params(lab.usdc.address, token.address, lab.lltv, oracle.address)
    morpho.create_market(market)
    blue = morpho.morpho
    lab.usdc.transact("approve", blue.address, 1_000 * UNIT, sender=lab.lender)
    token.transact("approve", blue.address, 400 * UNIT, sender=treasury)
    pin = same_block(lab.url, [
        (blue, "supply", (market.as_tuple(), 1_000 * UNIT, 0, lab.lender, b""), lab.lender),
        (blue, "supplyCollateral", (market.as_tuple(), 400 * UNIT, treasury, b""), treasury),
        (blue, "borrow", (market.as_tuple(), 200 * UNIT, 0, treasury, treasury), treasury),
    ])
    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{blue.address}\", from_block: 0}}\n"
        f"pools:\n  ethereum:\n    ausd-usdc: {{address: \"{pool.address}\", kind: uniswap_v3, "
        f"base: \"{token.address}\", quote: \"{lab.usdc.address}\"}}\n")
    (tmp_path / "alpha.yaml").write_text(
        "id: alpha\nname: Alpha\ntoken:\n  symbol: aUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    registry = load_registry(tmp_path / "registry.yaml")
    spec = load_spec(tmp_path / "alpha.yaml", registry)
    options = ConnectOptions(rpc={"ethereum": lab.url}, blocks={"ethereum": pin}, use_cache=False)
    result = run_audit(AuditRequest(spec, registry, options))

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

    # The report shows the pool's depth, the posted collateral and the coverage next to the figures
    from auditor.report.render import render_report
    from auditor.report.sign import canonical_json

    canonical = canonical_json(result.document)
    html = render_report(json.loads(canonical), findings_json=canonical, signature=None)
    assert "Can the collateral be sold?" in html and "sells before -2.0%" in html and "posted as collateral" in html
    assert "Whom the issuers&#39; accounts moved money with" in html or "Whom the issuers' accounts" in html
    assert "coverage" in html
