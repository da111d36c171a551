"""EVM address validation and EIP-55 checksumming, without importing web3."""

from __future__ import annotations

import functools
import re

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")
_UPPER_WHERE = "89abcdef"  # hash nibbles that upper-case the address character at the same position


def _keccak(data: bytes) -> bytes:
    # pycryptodome's keccak directly: ~35 ms to import (eth_utils ~120 ms, web3 ~1 s) and no
    # dispatch layer, which matters when a log scan checksums 100k addresses.
    from Crypto.Hash import keccak

    return keccak.new(data=data, digest_bits=256).digest()


def to_checksum(address: str) -> str:
    """Return the EIP-55 mixed-case form of a 0x-prefixed 40-hex-digit address."""
    return _checksum_of(address[2:].lower())


@functools.lru_cache(maxsize=1 << 16)
def _checksum_of(lower: str) -> str:
    # Cached: a trace sees the same accounts, tokens and venues in most of its logs.
    digest = _keccak(lower.encode("ascii")).hex()
    # a letter is upper-cased where the hash's nibble is >= 8; upper() leaves digits alone
    return "0x" + "".join(char.upper() if nibble in _UPPER_WHERE else char
                          for char, nibble in zip(lower, digest, strict=False))


def check_address(text: str) -> str:
    """Validate an address as written by a person; return its checksummed form or raise ValueError.

    All-lower and all-upper hex carry no checksum and are accepted; mixed case must be a
    correct EIP-55 checksum, because a single mistyped digit would otherwise go unnoticed.
    """
    if not _HEX40.fullmatch(text):
        raise ValueError("expected an address: 0x followed by 40 hex digits")
    checksummed = to_checksum(text)
    body = text[2:]
    if body not in (body.lower(), body.upper()) and text != checksummed:
        raise ValueError(f"bad EIP-55 checksum (expected {checksummed})")
    return checksummed
