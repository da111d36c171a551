"""A Morpho Blue market on anvil whose oracle answers 0 (then reverts) while debt is outstanding: a finding with
the debt at risk valued at look-through, never a silent zero (the sdeUSD/USDC market of November 2025)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from auditor.audit import AuditRequest, run_audit
from auditor.chain.reader import ConnectOptions
from auditor.lab.deploy import Contract
from auditor.lab.morpho import oracle_price
from auditor.lab.node import rpc
from auditor.spec import load_registry, load_spec
from tests.conftest import Lab
from tests.support import same_block

USDC = 10**6


def test_a_market_whose_oracle_answers_zero_with_debt_outstanding_is_flagged(chain: Lab, tmp_path: Path) -> None:
    lab, morpho = chain, chain.morpho
    treasury, outsider = lab.accounts[3], lab.accounts[5]
    token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    token.transact("mint", outsider, 1_000 * USDC)
    token.transact("mint", treasury, 400 * USDC)
    lab.usdc.transact("mint", treasury, 350 * USDC)
    lab.usdc.transact("mint", lab.lender, 1_000 * USDC)
    oracle = morpho.deploy_oracle(oracle_price(1, 6, 6))
    market = morpho.market_params(lab.usdc.address, token.address, lab.lltv, oracle.address)
    morpho.create_market(market)
    blue = morpho.morpho
    lab.usdc.transact("approve", blue.address, 1_000 * USDC, sender=lab.lender)
    token.transact("approve", blue.address, 400 * USDC, sender=treasury)
    same_block(lab.url, [
        (blue, "supply", (market.as_tuple(), 1_000 * USDC, 0, lab.lender, b""), lab.lender),
        (blue, "supplyCollateral", (market.as_tuple(), 400 * USDC, treasury, b""), treasury),
        (blue, "borrow", (market.as_tuple(), 200 * USDC, 0, treasury, treasury), treasury),
    ])
    morpho.set_price(0, oracle.address)  # the oracle gives up: every loan looks fine to a dashboard
    zero = int(rpc(lab.url, "eth_blockNumber"), 16)
    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{blue.address}\", from_block: 0}}\n")
    (tmp_path / "alpha.yaml").write_text(
        "id: alpha\nname: Alpha\ntoken:\n  symbol: aUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    registry = load_registry(tmp_path / "registry.yaml")
    spec = load_spec(tmp_path / "alpha.yaml", registry)
    result = run_audit(AuditRequest(spec, registry, ConnectOptions(rpc={"ethereum": lab.url},
                                                                   blocks={"ethereum": zero}, use_cache=False)))
    figures = result.backing.issuers["alpha"]
    # 550 USDC held - 200 USDC owed = 350 of backing for 1,400 aUSD (the 400 posted are its own: worth 0)
    assert figures.backing_ratio is not None and abs(figures.backing_ratio - Decimal("0.25")) < Decimal("1e-12")
    [flag] = [f for f in result.flags if f.id == "oracle-blind"]
    assert flag.severity == "high" and "answers 0" in flag.message
    assert flag.evidence["debt_usd"] == Decimal(200) and flag.evidence["oracle_price_raw"] == 0
    assert flag.evidence["collateral_tokens"] == Decimal(400)
    # 200 owed against 400 aUSD worth 0.25 each at look-through: 100 of the debt is not covered
    assert abs(flag.evidence["at_risk_look_through_usd"] - Decimal(100)) < Decimal("1e-9")
    assert flag.evidence["at_risk_market_usd"] is None  # no pool prices aUSD: said, not guessed
    assert result.complete  # a blind oracle is a finding about the market, not a failed read of the figures
