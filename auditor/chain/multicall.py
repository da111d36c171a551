"""Pure encode/decode of Multicall3 aggregate3 calldata and results with eth-abi (no web3, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi.abi import decode, encode

__all__ = [
    "AGGREGATE3_SELECTOR",
    "MULTICALL3_ADDRESS",
    "decode_aggregate3",
    "encode_aggregate3",
]

# Same address on mainnet and most EVM chains (deployed with a presigned transaction); see multicall3.com.
MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"

# keccak256("aggregate3((address,bool,bytes)[])")[:4]; tests recompute it.
AGGREGATE3_SELECTOR = bytes.fromhex("82ad56cb")

_CALLS_TYPE = "(address,bool,bytes)[]"
_RESULTS_TYPE = "(bool,bytes)[]"


def encode_aggregate3(calls: Sequence[tuple[str, bool, bytes]]) -> bytes:
    """Calldata for aggregate3(calls), each call being (target address, allowFailure, callData)."""
    payload = [(target, bool(allow_failure), bytes(data)) for target, allow_failure, data in calls]
    return AGGREGATE3_SELECTOR + encode([_CALLS_TYPE], [payload])


def decode_aggregate3(data: bytes) -> list[tuple[bool, bytes]]:
    """Decode aggregate3's return data into (success, returnData) pairs, in call order."""
    (results,) = decode([_RESULTS_TYPE], bytes(data))
    return [(bool(success), bytes(returned)) for success, returned in results]
