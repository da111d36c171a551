"""Completeness on anvil: what the audit could not see is found, measured exactly and reported.

An issuer borrows from a lender no registry lists and keeps the cash; parks money in a vault and a token its spec
does not list; takes a deposit from an outside account; later repays the lender. Every figure below is computed
from the construction, not read back from the tool.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from auditor.audit import AuditRequest, run_audit
from auditor.chain.reader import ConnectOptions
from auditor.cli import main
from auditor.discovery import OUTSIDE, UNKNOWN
from auditor.gate import evaluate, render
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from auditor.policy import Policy
from auditor.spec import load_registry, load_spec
from tests.conftest import Lab
from tests.faultproxy import FaultProxy, ItemFault
from tests.support import audit_alpha, write_alpha

USDC = 10**6


def _world(lab: Lab, folder: Path) -> dict[str, Any]:
    treasury, outsider = lab.accounts[3], lab.accounts[5]
    token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    lender = Contract.deploy(lab.url, lab.lab_contracts["PrivateLender"], lab.usdc.address)
    vault = Contract.deploy(lab.url, lab.lab_contracts["LabVault"], lab.usdc.address, "Quiet Vault", "qV")
    mystery = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "<b>Mystery</b>", "MYS", 18)
    token.transact("mint", outsider, 1_000 * USDC)  # the supply: 1,000 aUSD
    lab.usdc.transact("mint", lender.address, 5_000 * USDC)
    lab.usdc.transact("mint", outsider, 100 * USDC)
    lab.usdc.transact("transfer", treasury, 100 * USDC, sender=outsider)  # a user's deposit: outside, not a loan
    lender.transact("borrow", 300 * USDC, sender=treasury)  # cash from a lender the audit cannot read
    lab.usdc.transact("approve", vault.address, 50 * USDC, sender=treasury)
    vault.transact("deposit", 50 * USDC, treasury, sender=treasury)  # shares of a vault no spec lists
    mystery.transact("mint", treasury, 7 * 10**18)  # a token nobody can price
    spam = Contract.deploy(lab.url, lab.lab_contracts["LogSpammer"])  # Transfer events, no balanceOf at all
    spam.transact("emitTransfers", 1, int(treasury, 16) - 0x100000)  # its one "transfer" goes to the treasury
    borrowed = int(rpc(lab.url, "eth_blockNumber"), 16)
    lab.usdc.transact("approve", lender.address, 300 * USDC, sender=treasury)
    lender.transact("repay", 300 * USDC, sender=treasury)  # paid back: the inflow is cancelled
    repaid = int(rpc(lab.url, "eth_blockNumber"), 16)
    (folder / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n")
    (folder / "alpha.yaml").write_text(
        f"id: alpha\nname: Alpha\ntoken:\n  symbol: aUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    return {"lender": lender.address.lower(), "vault": vault.address.lower(), "mystery": mystery.address.lower(),
            "spam": spam.address.lower(),
            "outsider": outsider.lower(), "borrowed": borrowed, "repaid": repaid}


def test_a_loan_from_an_unlisted_lender_and_unlisted_holdings_are_found_exactly(chain: Lab, tmp_path: Path) -> None:
    world = _world(chain, tmp_path)
    result = audit_alpha(tmp_path, chain.url, world["borrowed"])
    figures = result.backing.issuers["alpha"]
    # USDC held: 100 deposited + 300 borrowed - 50 into the vault; the vault's shares unwrap to 50 USDC
    assert figures.verifiable_backing_usd == Decimal(400)
    assert figures.supply_usd == Decimal(1000)
    unverifiable = {h.token_key: h for h in figures.unverifiable}
    mystery = unverifiable[f"ethereum:{world['mystery']}"]  # listed by address, valued 0, never dropped
    assert mystery.tokens == Decimal(7) and mystery.amount == 7 * 10**18
    flags = [f for f in result.flags if f.id == "unexplained-inflow"]
    assert len(flags) == 1 and flags[0].severity == "high" and flags[0].evidence["material"]
    assert flags[0].evidence["unexplained_usd"] == Decimal(300)
    [peer] = flags[0].evidence["contracts"]
    assert peer["address"] == world["lender"] and peer["class"] == UNKNOWN and peer["in_usd"] == Decimal(300)
    assert peer["first_tx"].startswith("0x")
    peers = {p["address"]: p for p in result.document["counterparties"]["peers"]}
    assert peers[world["outsider"]]["class"] == OUTSIDE  # a user's deposit: understood, not flagged
    assert world["vault"] not in [p["address"] for p in result.document["counterparties"]["unexplained_inflows"]]
    # Coverage: 450 USD moved (100 in from a person, 300 in from the lender, 50 out to the valued vault); the
    # lender's 300 is the part the audit does not understand.
    assert result.coverage["alpha"] == Decimal(150) / Decimal(450)
    assert not result.complete and result.reads_complete and result.bound("alpha") == "at most"
    assert result.document["backing"]["issuers"]["alpha"]["bound"] == "at most"
    assert result.document["complete"] is False
    # an airdropped contract that emits Transfer events but answers no balanceOf: said, not a gap
    assert any(world["spam"] in note and "no readable balance" in note for note in result.document["notes"])
    [check] = evaluate(result, Policy(min_backing_ratio=Decimal("0.1")))
    assert not check.passed and not check.decided and "unexplained inflows" in check.message


def test_a_repayment_cancels_the_inflow_and_the_gate_checks_coverage(chain: Lab, tmp_path: Path) -> None:
    world = _world(chain, tmp_path)
    result = audit_alpha(tmp_path, chain.url, world["repaid"])
    assert not [f for f in result.flags if f.id == "unexplained-inflow"]
    assert result.complete and result.bound("alpha") == "exact"
    assert result.backing.issuers["alpha"].verifiable_backing_usd == Decimal(100)
    # 750 USD moved: 100 from a person, 300 in and 300 back with the lender, 50 into the vault
    assert result.coverage["alpha"] == Decimal(150) / Decimal(750)
    checks = evaluate(result, Policy(min_coverage=Decimal("0.2")))
    assert [(c.id, c.passed) for c in checks] == [("min-coverage", True)]
    checks = evaluate(result, Policy(min_coverage=Decimal("0.5")))
    assert [(c.id, c.passed, c.decided) for c in checks] == [("min-coverage", False, True)]
    shown = {"text": "coverage of alpha: 20.0%", "json": '"alpha": "0.2"', "junit": 'value="0.2"',
             "sarif": '"alpha": "0.2"', "github": "coverage of alpha: 20.0%"}
    for output_format, expected in shown.items():  # every format carries the coverage, not only a failed check
        assert expected in render(checks, output_format, {"alpha": result.coverage["alpha"]}), output_format
    policy = tmp_path / "gate" / "policy.yaml"  # not beside the specs: every YAML there is read as one
    policy.parent.mkdir()
    policy.write_text("min_coverage: 0.5\n")
    out = CliRunner().invoke(main, [
        "check", str(tmp_path / "alpha.yaml"), "--registry", str(tmp_path / "registry.yaml"), "--policy", str(policy),
        "--rpc", f"ethereum={chain.url}", "--block", f"ethereum={world['repaid']}", "--format", "json"])
    assert out.exit_code == 1, out.output
    assert json.loads(out.output)["checks"][0]["id"] == "min-coverage"


def test_a_counterparty_whose_code_the_node_will_not_tell_is_a_gap_never_a_person(chain: Lab, tmp_path: Path) -> None:
    world = _world(chain, tmp_path)
    with FaultProxy(chain.url, item_faults=[ItemFault("error", method="eth_getCode", contains=world["lender"][2:])]
                    ) as proxy:
        registry = load_registry(tmp_path / "registry.yaml")
        spec = load_spec(tmp_path / "alpha.yaml", registry)
        options = ConnectOptions(rpc={"ethereum": proxy.url}, blocks={"ethereum": world["borrowed"]},
                                 use_cache=False)
        os.environ["AUDITOR_RPC_RETRIES"] = "2"
        try:
            result = run_audit(AuditRequest(spec, registry, options))
        finally:
            del os.environ["AUDITOR_RPC_RETRIES"]
    assert not result.reads_complete
    assert any(world["lender"] in gap.what and "eth_getCode" in gap.reason for gap in result.gaps)
    [peer] = [p for p in result.document["counterparties"]["peers"] if p["address"] == world["lender"]]
    assert peer["class"] == "unread"
    [check] = evaluate(result, Policy(min_coverage=Decimal(0)))
    assert not check.decided


def test_attested_reserves_are_a_third_tier_and_a_stale_feed_is_flagged(chain: Lab, tmp_path: Path) -> None:
    world = _world(chain, tmp_path)
    pin = world["repaid"]
    now = int(rpc(chain.url, "eth_getBlockByNumber", [hex(pin), False])["timestamp"], 16)
    fresh = Contract.deploy(chain.url, chain.lab_contracts["LabFeed"], 8)
    stale = Contract.deploy(chain.url, chain.lab_contracts["LabFeed"], 18)
    silent = chain.accounts[6]  # no contract at all: unreadable
    fresh.transact("set", 250_000_000 * 10**8, now - 60)  # 250M USD attested a minute before the pin
    stale.transact("set", 9 * 10**18, now - 2 * 86_400)  # two days old against a one-day heartbeat
    after = int(rpc(chain.url, "eth_blockNumber"), 16)
    spec = tmp_path / "alpha.yaml"
    spec.write_text(spec.read_text() + "attestations:\n"
                    f"  - {{chain: ethereum, feed: \"{fresh.address}\", label: custodian report}}\n"
                    f"  - {{chain: ethereum, feed: \"{stale.address}\", label: old report, heartbeat_s: 86400}}\n"
                    f"  - {{chain: ethereum, feed: \"{silent}\", label: missing report}}\n")
    result = audit_alpha(tmp_path, chain.url, after)
    figures = result.backing.issuers["alpha"]
    assert figures.attested_usd == Decimal(250_000_000)
    assert figures.verifiable_backing_usd == Decimal(100)  # attested reserves are never verifiable backing
    statuses = {a.label: a.status for a in figures.attested}
    assert statuses == {"custodian report": "fresh", "old report": "stale", "missing report": "unreadable"}
    flagged = sorted(f.message.split("'")[1] for f in result.flags if f.id == "stale-attestation")
    assert flagged == ["missing report", "old report"]
    assert result.document["backing"]["issuers"]["alpha"]["attested_usd"] == "250000000"
    assert result.complete  # a missing attestation is a finding, not a failed read of the figures


def test_own_tokens_posted_to_an_unlisted_lender_explain_none_of_its_cash(chain: Lab, tmp_path: Path) -> None:
    """The loop through a lender the registry lacks: the issuer sends 500 of its own token to the lender (as
    collateral) and takes 300 USDC. At par the token outweighs the cash; it still explains none of it."""
    treasury, outsider = chain.accounts[3], chain.accounts[5]
    token = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    lender = Contract.deploy(chain.url, chain.lab_contracts["PrivateLender"], chain.usdc.address)
    chain.usdc.transact("mint", lender.address, 1_000 * USDC)
    token.transact("mint", outsider, 1_000 * USDC)
    token.transact("mint", treasury, 500 * USDC)
    token.transact("transfer", lender.address, 500 * USDC, sender=treasury)  # posted: the issuer's own token
    lender.transact("borrow", 300 * USDC, sender=treasury)
    write_alpha(tmp_path, chain, token, treasury)
    result = audit_alpha(tmp_path, chain.url, int(rpc(chain.url, "eth_blockNumber"), 16))
    [flag] = [f for f in result.flags if f.id == "unexplained-inflow"]
    assert flag.evidence["unexplained_usd"] == Decimal(300) and flag.severity == "high"
    [peer] = flag.evidence["contracts"]
    assert (peer["hard_in_usd"], peer["hard_out_usd"], peer["in_usd"], peer["out_usd"]) == (
        Decimal(300), Decimal(0), Decimal(300), Decimal(500))
    assert result.bound("alpha") == "at most"


def test_a_token_whose_code_burns_all_gas_is_noted_and_never_crashes_the_round(chain: Lab, tmp_path: Path) -> None:
    """A token the treasury received whose code is 0xfe (INVALID: every call burns all its gas) read in the same
    round as the counterparties' code lookups: every lookup still gets its answer, the token is noted."""
    treasury, outsider = chain.accounts[3], chain.accounts[5]
    token = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    token.transact("mint", outsider, 1_000 * USDC)
    chain.usdc.transact("mint", treasury, 1_000 * USDC)
    trap = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], "Gas Trap", "TRAP", 6)
    trap.transact("mint", outsider, 10 * USDC)
    trap.transact("transfer", treasury, 10 * USDC, sender=outsider)
    rpc(chain.url, "anvil_setCode", [trap.address, "0xfe"])
    rpc(chain.url, "evm_mine", [])
    write_alpha(tmp_path, chain, token, treasury)
    result = audit_alpha(tmp_path, chain.url, int(rpc(chain.url, "eth_blockNumber"), 16))
    figures = result.backing.issuers["alpha"]
    assert figures.verifiable_backing_usd == Decimal(1000)  # the USDC; the trap token counts nowhere
    assert result.reads_complete
    assert any(trap.address.lower() in note.lower() for note in result.document["notes"])
