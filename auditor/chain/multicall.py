"""Pure encode/decode of Multicall3 aggregate3 calldata and results, laid out by hand (no eth-abi, no web3, no I/O)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

from auditor.chain.abi import address_word

__all__ = [
    "AGGREGATE3_SELECTOR",
    "MULTICALL3_ADDRESS",
    "decode_aggregate3",
    "decode_aggregate3_columns",
    "encode_aggregate3",
]

# Same address on mainnet and most EVM chains (deployed with a presigned transaction); see multicall3.com.
MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11"

# keccak256("aggregate3((address,bool,bytes)[])")[:4]; tests recompute it.
AGGREGATE3_SELECTOR = bytes.fromhex("82ad56cb")

_WORD_32 = (32).to_bytes(32, "big")
_WORD_64 = (64).to_bytes(32, "big")
_WORD_96 = (96).to_bytes(32, "big")
_TRUE = (1).to_bytes(32, "big")
_FALSE = bytes(32)
_WORD_64_32 = _WORD_64 + _WORD_32  # a tuple's bytes offset (0x40) and a one-word length (0x20)
_HEAD_HEX = (AGGREGATE3_SELECTOR + _WORD_32).hex()  # selector, then the array's offset


def encode_aggregate3(calls: Sequence[tuple[str, bool, bytes]]) -> bytes:
    """Calldata for aggregate3(calls), each call being (target address, allowFailure, callData).

    The ABI encoding of one `(address,bool,bytes)[]` argument, byte for byte what eth-abi writes (~15x faster):
    the offset of the array (0x20), its length, one head per call holding the offset of its tuple from the
    first head, then each tuple (`aggregate3_tuple`). A target eth-abi would refuse raises its EncodingTypeError.
    """
    return bytes.fromhex(aggregate3_calldata_hex([aggregate3_tuple(*call).hex() for call in calls]))


def aggregate3_tuple(target: str, allow_failure: bool, data: bytes) -> bytes:
    """One call's tuple in aggregate3's calldata: target word, allowFailure word, offset of its bytes within the
    tuple (0x60), their length, the bytes right-padded with zeros to a whole word. The same for a call wherever it
    goes, so a read made many times keeps it (as hex: `Read.multicall_hex`)."""
    payload = bytes(data)
    size = len(payload)
    return b"".join((address_word(target), _TRUE if allow_failure else _FALSE, _WORD_96, size.to_bytes(32, "big"),
                     payload.ljust(size + (-size % 32), b"\0")))


def aggregate3_calldata_hex(tuples: Sequence[str]) -> str:
    """Calldata for aggregate3 of calls whose tuples (`aggregate3_tuple`) are given as hex digits, as hex digits (no
    "0x"): selector, array offset, length, a head per call (its tuple's offset from the first head), the tuples. A
    request carries calldata as hex: a read that keeps its tuple's hex (`Read.multicall_hex`) is joined, never
    converted again."""
    count = len(tuples)
    # tuple i starts after the heads and the tuples before it (no heads, no offsets for no calls); in hex digits,
    # halved to bytes
    offsets = itertools.accumulate(map(len, tuples[:-1]), initial=64 * count) if tuples else ()
    heads = b"".join(map(int.to_bytes, map((2).__rfloordiv__, offsets), itertools.repeat(32)))  # words, in C
    return "".join([_HEAD_HEX, count.to_bytes(32, "big").hex(), heads.hex(), *tuples])


def decode_aggregate3(data: bytes) -> list[tuple[bool, bytes]]:
    """Decode aggregate3's return data into (success, returnData) pairs, in call order.

    Walks the ABI layout by hand: eth-abi takes ~35 ms for 1000 results, more than the node needs to
    answer them. Anything out of bounds or not a bool raises ValueError (tests compare with eth-abi).
    """
    flags, returns = decode_aggregate3_columns(data)
    return list(zip(map(bool, flags), returns, strict=True))


def decode_aggregate3_columns(data: bytes) -> tuple[bytes, list[bytes]]:
    """What `decode_aggregate3` decodes, as two columns: the success flags (a byte each, 0 or 1) and the return
    data. A thousand one-word results make no pair each (`_regular_words`)."""
    data = bytes(data)
    length = len(data)

    def word(at: int) -> int:
        if at + 32 > length:
            raise ValueError(f"aggregate3 result: read past the end ({at + 32} > {length} bytes)")
        return int.from_bytes(data[at : at + 32], "big")

    # Solidity's layout only: the array right after its offset word, each tuple's bytes right after its
    # two head words, zero padding. Anything else is refused, which is stricter than eth-abi, never looser.
    if word(0) != 32:
        raise ValueError("aggregate3 result: the array does not follow its offset")
    count = word(32)
    heads = 64
    if count > (length - heads) // 32:
        raise ValueError(f"aggregate3 result: {count} results cannot fit in {length} bytes")
    lowest = 32 * count
    regular = _regular_words(data, count)
    if regular is not None:
        return regular
    flags = bytearray()
    returns: list[bytes] = []
    for index in range(count):
        head = heads + 32 * index  # inside the data: checked against count above
        offset = int.from_bytes(data[head : head + 32], "big")
        if offset < lowest:
            raise ValueError(f"aggregate3 result {index}: offset {offset} points into the heads")
        item = heads + offset
        body = item + 96
        if body > length:
            raise ValueError(f"aggregate3 result: read past the end ({body} > {length} bytes)")
        success = int.from_bytes(data[item : item + 32], "big")
        if success > 1 or data[item + 32 : item + 64] != _WORD_64:
            raise ValueError(f"aggregate3 result {index}: not a (bool, bytes) tuple")
        size = int.from_bytes(data[item + 64 : body], "big")
        end = body + size
        padded = end + (-size) % 32
        if padded > length or (padded > end and data[end:padded] != _FALSE[: padded - end]):
            raise ValueError(f"aggregate3 result {index}: {size} bytes run past the end or are badly padded")
        flags.append(success)
        returns.append(data[body:end])
    return bytes(flags), returns


@functools.lru_cache(maxsize=64)
def _regular_heads(count: int) -> bytes:
    """The heads of `count` results that each return one word: tuple i at 32 * count + 128 * i."""
    return b"".join((32 * count + 128 * index).to_bytes(32, "big") for index in range(count))


def _regular_words(data: bytes, count: int) -> tuple[bytes, list[bytes]] | None:
    """The common layout, decoded in bulk: every result one 32-byte word (balances, prices, totals), tuples packed in
    order. Its heads are one fixed byte string; each 128-byte tuple is [success][0x40][32][word]. The fixed bytes are
    checked a byte position at a time across all tuples (a strided slice each, in C): success words zero but for a
    last byte of 0 or 1, then 0x40 and 32. Anything else (a revert's longer data, an empty return, a gap) returns
    None and the general walk decides, so this never accepts what the walk would refuse."""
    end = 64 + 32 * count + 128 * count
    if len(data) != end or data[64 : 64 + 32 * count] != _regular_heads(count):
        return None
    tuples = data[64 + 32 * count :]
    zeros = bytes(count)
    if any(tuples[at::128] != zeros for at in range(31)):
        return None
    flags = tuples[31::128]
    if flags.translate(None, b"\0\1") or any(
            tuples[32 + at :: 128] != bytes((byte,)) * count for at, byte in enumerate(_WORD_64_32)):
        return None
    return flags, [tuples[at : at + 32] for at in range(96, 128 * count, 128)]
