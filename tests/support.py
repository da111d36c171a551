"""Helpers shared by the anvil tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from auditor.lab.deploy import Contract
from auditor.lab.node import rpc


@contextmanager
def rolled_back(url: str) -> Iterator[None]:
    """Whatever the block changes on the node is undone after it (evm_snapshot / evm_revert)."""
    snapshot = rpc(url, "evm_snapshot")
    try:
        yield
    finally:
        # anvil drops a snapshot once reverted to, so every use takes a fresh one.
        if not rpc(url, "evm_revert", [snapshot]):
            pytest.fail(f"evm_revert({snapshot}) on {url} returned false: later tests would see this test's state")


def same_block(url: str, calls: Sequence[tuple[Contract, str, tuple[Any, ...], str]]) -> int:
    """Send the calls with mining paused, then mine them in one block (so no interest accrues between them)."""
    rpc(url, "evm_setAutomine", [False])
    try:
        for contract, fn, args, sender in calls:
            rpc(url, "eth_sendTransaction", [{"from": sender, "to": contract.address,
                                              "data": "0x" + contract.encode(fn, *args).hex(), "gas": hex(3_000_000)}])
        rpc(url, "evm_mine", [])
    finally:
        rpc(url, "evm_setAutomine", [True])
    block = rpc(url, "eth_getBlockByNumber", ["latest", True])
    for tx in block["transactions"]:
        receipt = rpc(url, "eth_getTransactionReceipt", [tx["hash"]])
        assert receipt["status"] == "0x1", f"transaction reverted in the shared block: {tx['input'][:10]}"
    assert len(block["transactions"]) == len(calls)
    return int(block["number"], 16)


def morpho_loan(lab: Any, collateral: Contract, oracle_usd: int | str, borrower: str, posted: int, borrowed: int,
                supplied: int) -> tuple[Any, Contract, int]:
    """A Morpho Blue market lending lab USDC against `collateral` (6 decimals) at an oracle price: the lab's lender
    supplies, `borrower` posts and borrows, all in one block. Amounts in whole tokens; returns market, oracle, block."""
    from auditor.lab.morpho import oracle_price

    morpho, unit = lab.morpho, 10**6
    oracle = morpho.deploy_oracle(oracle_price(oracle_usd, 6, 6))
    market = morpho.market_params(lab.usdc.address, collateral.address, lab.lltv, oracle.address)
    morpho.create_market(market)
    blue = morpho.morpho
    lab.usdc.transact("approve", blue.address, supplied * unit, sender=lab.lender)
    collateral.transact("approve", blue.address, posted * unit, sender=borrower)
    block = same_block(lab.url, [
        (blue, "supply", (market.as_tuple(), supplied * unit, 0, lab.lender, b""), lab.lender),
        (blue, "supplyCollateral", (market.as_tuple(), posted * unit, borrower, b""), borrower),
        (blue, "borrow", (market.as_tuple(), borrowed * unit, 0, borrower, borrower), borrower),
    ])
    return market, oracle, block


def write_alpha(folder: Any, lab: Any, token: Contract, treasury: str, registry_extra: str = "") -> None:
    """registry.yaml (lab USDC at par, the lab's Morpho Blue, `registry_extra`) and alpha.yaml (issuer `alpha`,
    token `token`, one treasury account) in `folder`."""
    (folder / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{lab.morpho.morpho.address}\", from_block: 0}}\n"
        + registry_extra)
    (folder / "alpha.yaml").write_text(
        "id: alpha\nname: Alpha\ntoken:\n  symbol: aUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")


def audit_alpha(folder: Any, url: str, block: int) -> Any:
    """Audit `folder`/alpha.yaml against `folder`/registry.yaml on one lab chain pinned at `block`, no cache."""
    from auditor.audit import AuditRequest, run_audit
    from auditor.chain.reader import ConnectOptions
    from auditor.spec import load_registry, load_spec

    registry = load_registry(folder / "registry.yaml")
    spec = load_spec(folder / "alpha.yaml", registry)
    options = ConnectOptions(rpc={"ethereum": url}, blocks={"ethereum": block}, use_cache=False)
    return run_audit(AuditRequest(spec, registry, options))
