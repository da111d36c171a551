"""Two issuers on anvil with real ERC-20s and real Morpho Blue markets, audited through the CLI."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from auditor.cli import main
from auditor.lab.deploy import Contract
from auditor.lab.morpho import oracle_price
from tests.conftest import Lab
from tests.support import same_block

USDC = 10**6


def test_xusd_deusd_shaped_pair_audited_through_the_cli(chain: Lab, tmp_path: Path) -> None:
    """A holds B as collateral and borrows USDC; B lends USDC to A against A's own token.

    Closed form (no idle liquidity in B's market, A's collateral worth less than its debt there):
      backing_A = 670 + 400 r_B - 200 - 300        backing_B = 50 + min(300, 200 r_A)
      1000 r_A = 170 + 400 r_B,  500 r_B = 50 + 200 r_A  =>  r_A = 105000 / 420000 = 0.25, r_B = 0.2
    so A has 250 USD of verifiable backing for 1000 of supply (4x), B has 100 for 500 (5x).
    """
    lab, morpho = chain, chain.morpho
    treasury_a, treasury_b, outsider = lab.accounts[3], lab.accounts[4], lab.accounts[5]
    token_a = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    token_b = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Beta USD", "bUSD", 6)
    token_a.transact("mint", treasury_a, 200 * USDC)
    token_a.transact("mint", outsider, 800 * USDC)
    token_b.transact("mint", treasury_a, 400 * USDC)
    token_b.transact("mint", outsider, 100 * USDC)
    lab.usdc.transact("mint", treasury_a, 170 * USDC)
    lab.usdc.transact("mint", treasury_b, 350 * USDC)
    lab.usdc.transact("mint", lab.lender, 1_000 * USDC)
    m1 = morpho.market_params(lab.usdc.address, token_b.address, lab.lltv,
                              morpho.deploy_oracle(oracle_price(1, 6, 6)).address)
    m2 = morpho.market_params(lab.usdc.address, token_a.address, lab.lltv,
                              morpho.deploy_oracle(oracle_price(2, 6, 6)).address)
    morpho.create_market(m1)
    morpho.create_market(m2)
    blue = morpho.morpho
    for token, owner, amount in [(lab.usdc, lab.lender, 1_000), (token_b, treasury_a, 400),
                                 (token_a, treasury_a, 200), (lab.usdc, treasury_b, 300)]:
        token.transact("approve", blue.address, amount * USDC, sender=owner)
    block = same_block(lab.url, [
        (blue, "supply", (m1.as_tuple(), 1_000 * USDC, 0, lab.lender, b""), lab.lender),
        (blue, "supplyCollateral", (m1.as_tuple(), 400 * USDC, treasury_a, b""), treasury_a),
        (blue, "borrow", (m1.as_tuple(), 200 * USDC, 0, treasury_a, treasury_a), treasury_a),
        (blue, "supply", (m2.as_tuple(), 300 * USDC, 0, treasury_b, b""), treasury_b),
        (blue, "supplyCollateral", (m2.as_tuple(), 200 * USDC, treasury_a, b""), treasury_a),
        (blue, "borrow", (m2.as_tuple(), 300 * USDC, 0, treasury_a, treasury_a), treasury_a),
    ])
    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{blue.address}\", from_block: 0}}\n")
    issuers = [("alpha", token_a, treasury_a, "beta"), ("beta", token_b, treasury_b, "alpha")]
    for name, token, treasury, other in issuers:
        (tmp_path / f"{name}.yaml").write_text(
            f"id: {name}\nname: {name}\ntoken:\n  symbol: {name[0]}USD\n  deployments:\n"
            f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
            f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n"
            f"depends_on: [{other}]\n")
    out = tmp_path / "findings.json"
    result = CliRunner().invoke(main, [
        "audit", str(tmp_path / "alpha.yaml"), "--registry", str(tmp_path / "registry.yaml"),
        "--rpc", f"ethereum={lab.url}", "--block", f"ethereum={block}", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())["backing"]["issuers"]
    alpha, beta = figures["alpha"], figures["beta"]
    # Exact by construction, up to the solver's tolerance (1e-12 on each ratio).
    def near(text: str, expected: str) -> bool:
        return abs(Decimal(text) - Decimal(expected)) < Decimal("1e-9")

    assert near(alpha["backing_ratio"], "0.25") and near(beta["backing_ratio"], "0.2")
    assert near(alpha["verifiable_backing_usd"], "250") and near(beta["verifiable_backing_usd"], "100")
    assert near(alpha["expansion_ratio"], "4") and near(beta["expansion_ratio"], "5")
    assert Decimal(alpha["debt_usd"]) == 500 and near(alpha["gross_assets_usd"], "750")
    assert alpha["complete"] is True and json.loads(out.read_text())["complete"] is True
    assert "aUSD: supply $1,000.00, verifiable backing $250.00 (25.0%), expansion 4.0x" in result.output
    # The terminal states the requests the JSON counts: one client per chain sent every one of them.
    stats = json.loads(out.read_text())["requests"]["ethereum"]
    assert 0 < stats["http_requests"] <= stats["rounds"] + 2  # connect, the rounds, the pin check
    assert (f"{stats['reads']} reads in {stats['http_requests']} HTTP requests ({stats['rounds']} rounds, "
            f"{stats['retries']} retries), {stats['cache_hits']} answers from cache") in result.output


def test_oracle_overvalues_with_exact_hidden_bad_debt(chain: Lab, tmp_path: Path) -> None:
    """Look-through 0.23 (230 USDC behind 1000 tokens) against an oracle frozen at 1.26.

    The borrower posted 500 tokens and borrowed 400 USDC: at look-through the collateral is worth
    500 * 0.23 = 115, so the oracle hides 400 - 115 = 285.00 USD of bad debt.
    """
    lab, morpho = chain, chain.morpho
    treasury, borrower = lab.accounts[3], lab.accounts[5]
    token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Frozen USD", "fUSD", 6)
    token.transact("mint", borrower, 1_000 * USDC)
    lab.usdc.transact("mint", treasury, 230 * USDC)
    lab.usdc.transact("mint", lab.lender, 1_000 * USDC)
    params = morpho.market_params(lab.usdc.address, token.address, lab.lltv,
                                  morpho.deploy_oracle(oracle_price("1.26", 6, 6)).address)
    morpho.create_market(params)
    blue = morpho.morpho
    lab.usdc.transact("approve", blue.address, 1_000 * USDC, sender=lab.lender)
    token.transact("approve", blue.address, 500 * USDC, sender=borrower)
    block = same_block(lab.url, [
        (blue, "supply", (params.as_tuple(), 1_000 * USDC, 0, lab.lender, b""), lab.lender),
        (blue, "supplyCollateral", (params.as_tuple(), 500 * USDC, borrower, b""), borrower),
        (blue, "borrow", (params.as_tuple(), 400 * USDC, 0, borrower, borrower), borrower),
    ])
    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{blue.address}\", from_block: 0}}\n")
    (tmp_path / "frozen.yaml").write_text(
        "id: frozen\nname: Frozen\ntoken:\n  symbol: fUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    out = tmp_path / "findings.json"
    result = CliRunner().invoke(main, [
        "audit", str(tmp_path / "frozen.yaml"), "--registry", str(tmp_path / "registry.yaml"),
        "--rpc", f"ethereum={lab.url}", "--block", f"ethereum={block}", "--json", str(out),
    ])
    assert result.exit_code == 0, result.output
    findings = json.loads(out.read_text())
    (flag,) = [f for f in findings["flags"] if f["id"] == "oracle-overvalues"]
    assert Decimal(flag["evidence"]["oracle_price_usd"]) == Decimal("1.26")
    assert Decimal(flag["evidence"]["look_through_usd"]) == Decimal("0.23")
    assert Decimal(flag["evidence"]["hidden_bad_debt_usd"]) == 285
    assert Decimal(flag["evidence"]["debt_usd"]) == 400
    exposure = findings["exposure"]["ethereum"]
    assert Decimal(exposure["totals"]["bad_debt_usd"]) == 285
