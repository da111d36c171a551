"""Canonical findings, their digest, the signature block that vouches for them, and where the signing key comes from."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from auditor.chain.cache import cache_dir
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


# The signature block holds exactly these fields. The signature covers the canonical JSON of all the
# others (see `signed_statement`), so nothing a reader sees in the block is unsigned: the earlier
# scheme signed only the findings digest and let evidence_digest, or any added field, be swapped.
SCHEME = "reserve-auditor/2: EIP-191 personal_sign over the canonical JSON of digest, evidence_digest, scheme, signer"
LEGACY_SCHEME = "EIP-191 personal_sign over the digest text"
SIGNED_FIELDS = ("digest", "evidence_digest", "scheme", "signer")
BLOCK_FIELDS = (*SIGNED_FIELDS, "signature")

# secp256k1's group order: a private key is an integer in [1, n - 1].
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MACHINE_KEY_FILE = "machine-signer.key"
SIGN_AS_YOURSELF = f"sign as yourself with --key KEYSTORE or {KEY_ENV}"


def signed_statement(signer: str, digest: str, evidence_digest: str | None, scheme: str = SCHEME) -> str:
    """The exact text that is signed: every field of the block but the signature itself."""
    return canonical_json({"digest": digest, "evidence_digest": evidence_digest, "scheme": scheme, "signer": signer})


@dataclass(frozen=True)
class Signature:
    signer: str
    signature: str
    digest: str
    evidence_digest: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The signature block embedded in a report: BLOCK_FIELDS, nothing else."""
        return {"signer": self.signer, "signature": self.signature, "digest": self.digest,
                "evidence_digest": self.evidence_digest, "scheme": SCHEME}


def sign_digest(digest: str, private_key: bytes, evidence_digest: str | None = None) -> Signature:
    """Sign the findings digest together with the evidence digest, the scheme and the signer's address."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    key = check_private_key(private_key, "the signing key")
    signer = Account.from_key(key).address
    statement = signed_statement(signer, digest, evidence_digest)
    signed = Account.sign_message(encode_defunct(text=statement), private_key=key)
    return Signature(signer, "0x" + bytes(signed.signature).hex(), digest, evidence_digest)


def recover_signer(statement: str, signature: str) -> str:
    """The address whose key made `signature` over `statement` (EIP-191), or ValueError."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        address: str = Account.recover_message(encode_defunct(text=statement), signature=signature)
    except Exception as exc:  # eth-account raises several types for malformed signatures
        raise ValueError(f"the signature cannot be recovered: {type(exc).__name__}") from None
    return address


def block_problems(block: dict[str, Any]) -> list[str]:
    """What makes a signature block other than exactly BLOCK_FIELDS of the right types under SCHEME; [] if none."""
    problems = [f"unsigned field {key!r} in the signature block: the signature covers only "
                f"{', '.join(SIGNED_FIELDS)}" for key in sorted(set(block) - set(BLOCK_FIELDS))]
    problems += [f"the signature block has no {key!r} field" for key in BLOCK_FIELDS if key not in block]
    for key in ("digest", "scheme", "signature", "signer"):
        if key in block and (not isinstance(block[key], str) or not block[key]):
            problems.append(f"the signature block's {key!r} must be a non-empty string")
    evidence = block.get("evidence_digest")
    if evidence is not None and not isinstance(evidence, str):
        problems.append("the signature block's 'evidence_digest' must be a string or null")
    scheme = block.get("scheme")
    if scheme == LEGACY_SCHEME:
        problems.append("the report uses the old signature scheme, which left evidence_digest unsigned: "
                        "sign it again with this version")
    elif isinstance(scheme, str) and scheme and scheme != SCHEME:
        problems.append(f"unknown signature scheme {scheme[:80]!r} (expected {SCHEME!r})")
    return problems


def check_private_key(key: bytes, source: str) -> bytes:
    """`key` if it is a usable secp256k1 private key, else ConfigError naming `source` (never the key)."""
    if len(key) != 32:
        raise ConfigError(f"{source} must be a 32-byte private key (64 hex digits), got {len(key)} bytes")
    if not 0 < int.from_bytes(key, "big") < SECP256K1_N:
        raise ConfigError(f"{source} is not a valid secp256k1 private key (it must be between 1 and n-1)")
    return key


def _parse_hex_key(text: str, source: str) -> bytes:
    digits = text.strip()
    digits = digits[2:] if digits[:2].lower() == "0x" else digits
    # A strict pattern rather than bytes.fromhex, which also accepts spaces inside the key.
    if not re.fullmatch(r"[0-9a-fA-F]*", digits) or len(digits) % 2:
        raise ConfigError(f"{source} is not a hex private key")
    return check_private_key(bytes.fromhex(digits), source)


def load_key(keystore: str | None, prompt: Callable[[str], str] | None = None) -> bytes | None:
    """The key the user chose: an encrypted keystore (--key; password from AUDITOR_KEY_PASSWORD or a prompt),
    else AUDITOR_PRIVATE_KEY, else None. Never printed or logged."""
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
            key = bytes(Account.decrypt(encrypted, password))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"--key {path}: wrong password or damaged keystore") from None
        return check_private_key(key, f"--key {path}")
    raw = os.environ.get(KEY_ENV, "")
    if not raw.strip():
        return None
    return _parse_hex_key(raw, KEY_ENV)


def machine_key(folder: Path | None = None) -> tuple[bytes, Path, bool]:
    """This machine's own signing key (created on first use, mode 0600), its file, and whether it was just made.

    Kept under the cache folder, outside any repository, so no two machines ever share a key."""
    folder = folder if folder is not None else cache_dir() / "keys"
    path = folder / MACHINE_KEY_FILE
    if path.exists():
        return _read_machine_key(path), path, False
    from eth_account import Account

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = bytes(Account.create().key)
    # mkstemp makes the file 0600 before any byte of the key is in it; link() publishes the finished
    # file and, unlike replace(), never overwrites a key another process made at the same moment.
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".signer-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(key.hex())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_machine_key(path), path, False
    finally:
        os.unlink(tmp)
    return key, path, True


def _read_machine_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
        mode = path.stat().st_mode & 0o777
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read this machine's signing key {path} ({exc.__class__.__name__})") from None
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"this machine's signing key {path} is readable by other users (mode {mode:o}): "
                          f"run chmod 600 {path}")
    try:
        return _parse_hex_key(text, f"this machine's signing key {path}")
    except ConfigError as exc:
        raise ConfigError(f"{exc}; delete the file to make a new key (new reports will name a new signer)") from None


def resolve_signing_key(keystore: str | None, prompt: Callable[[str], str] | None = None) -> tuple[bytes, str]:
    """The key every HTML report is signed with, and where it came from, said for the user.

    --key KEYSTORE, else AUDITOR_PRIVATE_KEY, else this machine's own key: a report is never unsigned."""
    chosen = load_key(keystore, prompt)
    if chosen is not None:
        return chosen, f"the keystore {keystore}" if keystore else KEY_ENV
    key, path, created = machine_key()
    made = "a new key made" if created else "the key made"
    return key, f"{made} for this machine ({path}); {SIGN_AS_YOURSELF}"


def demo_key(folder: Path) -> bytes:
    """Kept until demo.py calls resolve_signing_key: the machine key in `folder`."""
    return machine_key(folder)[0]
