"""EVM address validation and EIP-55 checksumming, without importing web3."""

from __future__ import annotations

import functools
import re

_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")
# EIP-55 in whole-integer steps, no per-character loop: hash hex digits 8-f flag their position with 0x20; a
# letter (a-f, 0x61-0x66) is the only address character with bit 0x40 set; upper case is 0x20 less.
_FLAG = str.maketrans({**{c: "\x00" for c in "01234567"}, **{c: " " for c in "89abcdef"}})
_LETTER_BITS = int.from_bytes(b"\x40" * 40, "big")


try:  # safe-pysha3's keccak in C: ~1.5 us a hash, which matters when a log scan checksums 100k addresses
    from sha3 import keccak_256 as _keccak_256  # type: ignore[import-untyped]

    def _keccak(data: bytes) -> bytes:
        return bytes(_keccak_256(data).digest())
except ImportError:  # pragma: no cover - pycryptodome (a web3 dependency) is ~7x slower a hash, same digest
    from Crypto.Hash import keccak as _pycryptodome_keccak

    def _keccak(data: bytes) -> bytes:
        return bytes(_pycryptodome_keccak.new(data=data, digest_bits=256).digest())


def to_checksum(address: str) -> str:
    """Return the EIP-55 mixed-case form of a 0x-prefixed 40-hex-digit address."""
    return _checksum_of(address[2:].lower())


@functools.lru_cache(maxsize=1 << 16)
def _checksum_of(lower: str) -> str:
    # Cached: a trace sees the same accounts, tokens and venues in most of its logs.
    raw = lower.encode("ascii")
    flags = int.from_bytes(_keccak(raw).hex()[:40].translate(_FLAG).encode("ascii"), "big")
    value = int.from_bytes(raw, "big")
    return "0x" + (value - (flags & ((value & _LETTER_BITS) >> 1))).to_bytes(40, "big").decode("ascii")


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
