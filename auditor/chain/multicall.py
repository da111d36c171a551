"""Pure encode/decode of Multicall3 aggregate3 calldata and results with eth-abi (no web3, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi.abi import encode

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


def encode_aggregate3(calls: Sequence[tuple[str, bool, bytes]]) -> bytes:
    """Calldata for aggregate3(calls), each call being (target address, allowFailure, callData)."""
    payload = [(target, bool(allow_failure), bytes(data)) for target, allow_failure, data in calls]
    return AGGREGATE3_SELECTOR + encode([_CALLS_TYPE], [payload])


def decode_aggregate3(data: bytes) -> list[tuple[bool, bytes]]:
    """Decode aggregate3's return data into (success, returnData) pairs, in call order.

    Walks the ABI layout by hand: eth-abi takes ~35 ms for 1000 results, more than the node needs to
    answer them. Anything out of bounds or not a bool raises ValueError (tests compare with eth-abi).
    """
    data = bytes(data)

    def word(at: int) -> int:
        if at < 0 or at + 32 > len(data):
            raise ValueError(f"aggregate3 result: read past the end ({at + 32} > {len(data)} bytes)")
        return int.from_bytes(data[at : at + 32], "big")

    # Solidity's layout only: the array right after its offset word, each tuple's bytes right after its
    # two head words, zero padding. Anything else is refused, which is stricter than eth-abi, never looser.
    if word(0) != 32:
        raise ValueError("aggregate3 result: the array does not follow its offset")
    count = word(32)
    heads = 64
    if count > (len(data) - heads) // 32:
        raise ValueError(f"aggregate3 result: {count} results cannot fit in {len(data)} bytes")
    out: list[tuple[bool, bytes]] = []
    for index in range(count):
        offset = word(heads + 32 * index)
        if offset < 32 * count:
            raise ValueError(f"aggregate3 result {index}: offset {offset} points into the heads")
        item = heads + offset
        success = word(item)
        if success > 1 or word(item + 32) != 64:
            raise ValueError(f"aggregate3 result {index}: not a (bool, bytes) tuple")
        size = word(item + 64)
        end = item + 96 + size
        padded = end + (-size) % 32
        if padded > len(data) or any(data[end:padded]):
            raise ValueError(f"aggregate3 result {index}: {size} bytes run past the end or are badly padded")
        out.append((bool(success), data[item + 96 : end]))
    return out
