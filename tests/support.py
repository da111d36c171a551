"""Helpers shared by the anvil tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from auditor.lab.deploy import Contract
from auditor.lab.node import rpc


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
