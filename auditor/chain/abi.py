"""Encode calls and decode returns with eth-abi directly (no web3 contract objects: ~15x cheaper per call)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from eth_abi.abi import decode, encode
from eth_hash.auto import keccak


def split_types(text: str) -> list[str]:
    """Split 'address,(address,uint256),bytes32[]' at top-level commas."""
    out: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        out.append(current.strip())
    return out


@lru_cache(maxsize=1024)
def parse_signature(signature: str) -> tuple[bytes, tuple[str, ...]]:
    """'balanceOf(address)' -> (4-byte selector, argument types)."""
    name, _, rest = signature.partition("(")
    if not name or not rest.endswith(")"):
        raise ValueError(f"not a function signature: {signature!r}")
    types = tuple(split_types(rest[:-1]))
    canonical = f"{name}({','.join(types)})"
    return bytes(keccak(canonical.encode()))[:4], types


def encode_call(signature: str, *args: Any) -> bytes:
    selector, types = parse_signature(signature)
    return selector + (encode(list(types), list(args)) if types else b"")


def decode_values(types: tuple[str, ...], data: bytes) -> tuple[Any, ...]:
    """Decode return data; addresses come back EIP-55 checksummed, like everywhere else in the program."""
    return tuple(_checksummed(kind, value) for kind, value in zip(types, decode(list(types), data), strict=True))


def _checksummed(kind: str, value: Any) -> Any:
    if kind == "address":
        return checksum_address(bytes.fromhex(value[2:]))
    if kind.endswith("]"):
        inner = kind[: kind.rindex("[")]
        return tuple(_checksummed(inner, v) for v in value)
    if kind.startswith("("):
        return tuple(_checksummed(k, v) for k, v in zip(split_types(kind[1:-1]), value, strict=True))
    return value


def event_topic(signature: str) -> str:
    """topic0 of an event, e.g. 'Transfer(address,address,uint256)'."""
    return "0x" + bytes(keccak(signature.encode())).hex()


def address_topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


class EventDecoder:
    """Decode logs of one event, given as 'Transfer(address indexed from,address indexed to,uint256 value)'."""

    def __init__(self, declaration: str) -> None:
        name, _, rest = declaration.partition("(")
        params = [p.split() for p in split_types(rest.rstrip(")"))]
        self.name = name
        self.fields = [(words[-1], words[0], "indexed" in words[1:-1]) for words in params]
        self.signature = f"{name}({','.join(kind for _n, kind, _i in self.fields)})"
        self.topic = event_topic(self.signature)
        self._data_types = [kind for _n, kind, indexed in self.fields if not indexed]
        # Most events (Transfer, Morpho's, Aave's) have only static fields: slice 32-byte words
        # directly, ~10x faster than eth-abi's general decoder on a 100k-log scan.
        self._static = [_word_decoder(kind) for _n, kind, _i in self.fields]
        self._all_static = all(d is not None for d in self._static)

    def decode(self, topics: tuple[str, ...], data: bytes) -> dict[str, Any]:
        """Field name -> value; raises ValueError when the log is not this event or is malformed."""
        if not topics or topics[0] != self.topic:
            raise ValueError(f"not a {self.name} log")
        if self._all_static:
            return self._decode_static(topics, data)
        try:
            unindexed = iter(decode(self._data_types, data)) if self._data_types else iter(())
            indexed = iter(topics[1:])
            out: dict[str, Any] = {}
            for field_name, kind, is_indexed in self.fields:
                value = decode([kind], bytes.fromhex(next(indexed)[2:]))[0] if is_indexed else next(unindexed)
                out[field_name] = checksum_address(bytes.fromhex(value[2:])) if kind == "address" else value
        except Exception as exc:
            raise ValueError(f"malformed {self.name} log: {type(exc).__name__}") from None
        return out

    def _decode_static(self, topics: tuple[str, ...], data: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        topic_index, offset = 1, 0
        try:
            for (field_name, _kind, is_indexed), word_decoder in zip(self.fields, self._static, strict=True):
                assert word_decoder is not None
                if is_indexed:
                    word = bytes.fromhex(topics[topic_index][2:])
                    topic_index += 1
                else:
                    word = data[offset : offset + 32]
                    offset += 32
                if len(word) != 32:
                    raise ValueError("short word")
                out[field_name] = word_decoder(word)
        except (IndexError, ValueError) as exc:
            raise ValueError(f"malformed {self.name} log: {exc}") from None
        return out


@lru_cache(maxsize=65536)
def checksum_address(word_tail: bytes) -> str:
    from auditor.addresses import to_checksum

    return to_checksum("0x" + word_tail.hex())


def _word_decoder(kind: str) -> Callable[[bytes], Any] | None:
    if kind == "address":
        return lambda word: checksum_address(word[12:])
    if kind == "bool":
        return lambda word: word[31] == 1
    if kind.startswith("uint"):
        return lambda word: int.from_bytes(word, "big")
    if kind.startswith("int"):
        return lambda word: int.from_bytes(word, "big", signed=True)
    if kind.startswith("bytes") and kind[5:].isdigit():
        size = int(kind[5:])
        return lambda word: word[:size]
    return None
