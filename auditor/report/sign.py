"""Canonical findings, their digest, and EIP-191 signatures over it; keys from a keystore or the environment."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from auditor.chain.rpc import ConfigError

KEY_ENV = "AUDITOR_PRIVATE_KEY"
PASSWORD_ENV = "AUDITOR_KEY_PASSWORD"  # noqa: S105 (the name of a variable, not a password)


def normalise(value: Any) -> Any:
    """Plain JSON with one spelling per value: floats become exact decimal strings (no 1e-05, no NaN)."""
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a findings document cannot hold {value}")
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def canonical_json(document: Any) -> str:
    """Sorted keys, no whitespace, ASCII only: the same findings always give the same bytes."""
    return json.dumps(normalise(document), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def digest_of(canonical: str) -> str:
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Signature:
    signer: str
    signature: str
    digest: str
    evidence_digest: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"signer": self.signer, "signature": self.signature, "digest": self.digest,
                "evidence_digest": self.evidence_digest, "scheme": "EIP-191 personal_sign over the digest text"}


def sign_digest(digest: str, private_key: bytes, evidence_digest: str | None = None) -> Signature:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    signed = Account.sign_message(encode_defunct(text=digest), private_key=private_key)
    account = Account.from_key(private_key)
    return Signature(account.address, "0x" + bytes(signed.signature).hex(), digest, evidence_digest)


def recover_signer(digest: str, signature: str) -> str:
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        address: str = Account.recover_message(encode_defunct(text=digest), signature=signature)
    except Exception as exc:  # eth-account raises several types for malformed signatures
        raise ValueError(f"the signature cannot be recovered: {type(exc).__name__}") from None
    return address


def load_key(keystore: str | None, prompt: Callable[[str], str] | None = None) -> bytes | None:
    """The signing key: an encrypted keystore (--key; password from AUDITOR_KEY_PASSWORD or a prompt),
    else AUDITOR_PRIVATE_KEY, else None (the report is written unsigned). Never printed or logged."""
    from eth_account import Account

    if keystore:
        path = Path(keystore)
        try:
            encrypted = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--key {path}: not a readable keystore file ({exc.__class__.__name__})") from None
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            if prompt is None:
                raise ConfigError(f"--key {path}: set {PASSWORD_ENV} (no terminal to ask for the password)")
            password = prompt(f"password for {path.name}")
        try:
            return bytes(Account.decrypt(encrypted, password))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"--key {path}: wrong password or damaged keystore") from None
    raw = os.environ.get(KEY_ENV, "").strip()
    if not raw:
        return None
    try:
        key = bytes.fromhex(raw.removeprefix("0x"))
    except ValueError:
        raise ConfigError(f"{KEY_ENV} is not a hex private key") from None
    if len(key) != 32:
        raise ConfigError(f"{KEY_ENV} must be 32 bytes of hex, got {len(key)} bytes")
    return key


def demo_key(folder: Path) -> bytes:
    """A signing key made once per machine for the demo, kept outside the repository (never a shared key)."""
    from eth_account import Account

    path = folder / "demo-signer.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    folder.mkdir(parents=True, exist_ok=True)
    key = bytes(Account.create().key)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(key.hex())
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
