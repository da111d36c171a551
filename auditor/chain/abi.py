"""Encode calls and decode returns with eth-abi directly (no web3 contract objects: ~15x cheaper per call)."""

from __future__ import annotations

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
    return tuple(decode(list(types), data))


def event_topic(signature: str) -> str:
    """topic0 of an event, e.g. 'Transfer(address,address,uint256)'."""
    return "0x" + bytes(keccak(signature.encode())).hex()


def address_topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")
