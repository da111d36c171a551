"""A Morpho Blue market on anvil whose oracle answers 0 (then reverts) while debt is outstanding: a finding with
the debt at risk valued at look-through, never a silent zero (the sdeUSD/USDC market of November 2025)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from tests.conftest import Lab
from tests.support import audit_alpha, morpho_loan, write_alpha

USDC = 10**6


def test_a_market_whose_oracle_answers_zero_with_debt_outstanding_is_flagged(chain: Lab, tmp_path: Path) -> None:
    lab, morpho = chain, chain.morpho
    treasury, outsider = lab.accounts[3], lab.accounts[5]
    token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    token.transact("mint", outsider, 1_000 * USDC)
    token.transact("mint", treasury, 400 * USDC)
    lab.usdc.transact("mint", treasury, 350 * USDC)
    lab.usdc.transact("mint", lab.lender, 1_000 * USDC)
    _market, oracle, block = morpho_loan(lab, token, 1, treasury, posted=400, borrowed=200, supplied=1_000)
    # The oracle gives up in a block with the loan's timestamp: no interest accrues between them, however long the
    # machine takes between the two transactions (the figures below are exact).
    loan_time = rpc(lab.url, "eth_getBlockByNumber", [hex(block), False])["timestamp"]
    rpc(lab.url, "evm_setNextBlockTimestamp", [int(loan_time, 16)])
    morpho.set_price(0, oracle.address)  # the oracle gives up: every loan looks fine to a dashboard
    write_alpha(tmp_path, lab, token, treasury)
    result = audit_alpha(tmp_path, lab.url, int(rpc(lab.url, "eth_blockNumber"), 16))
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
