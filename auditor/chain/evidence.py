"""Evidence bundles: every request and answer of an audit, content-addressed, replayable with no node."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.chain.rpc import (
    UNUSABLE_CODE,
    Call,
    ConfigError,
    Layer,
    Response,
    canonical_json,
    is_error,
    malformed,
)

FORMAT = "reserve-auditor-evidence/1"


class EvidenceMissing(ConfigError):
    """Replay asked for something the bundle does not hold: the audit differs from the recorded one."""


@dataclass
class Bundle:
    """Answers per chain, keyed by the canonical request; the digest covers exactly this content."""

    entries: dict[str, dict[str, Response]] = field(default_factory=dict)
    pins: dict[str, dict[str, Any]] = field(default_factory=dict)  # chain -> the audit's pin on it

    def add(self, chain: str, call: Call, answer: Response) -> None:
        self.entries.setdefault(chain, {})[call.key] = answer

    def add_pin(self, chain: str, pin: dict[str, Any]) -> None:
        # The first pin per chain is the audit's own; later ones (oracle samples) name their blocks in calls.
        self.pins.setdefault(chain, dict(pin))

    def content(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "format": FORMAT,
            "chains": {
                chain: [
                    {"request": json.loads(key), "answer": answer} for key, answer in sorted(answers.items())
                ]
                for chain, answers in sorted(self.entries.items())
            },
        }
        if self.pins:  # absent from bundles recorded before pins were: their digest stays valid
            content["pins"] = {chain: self.pins[chain] for chain in sorted(self.pins)}
        return content

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self.content()).encode()).hexdigest()

    def write(self, path: Path) -> str:
        """Write atomically (a half-written bundle never exists) and return the digest."""
        content = self.content()
        digest = "sha256:" + hashlib.sha256(canonical_json(content).encode()).hexdigest()
        data = gzip.compress(canonical_json({**content, "digest": digest}).encode(), mtime=0)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return digest

    @classmethod
    def read(cls, path: Path) -> tuple[Bundle, str]:
        try:
            document = json.loads(gzip.decompress(path.read_bytes()))
        except (OSError, ValueError, EOFError) as exc:
            raise ConfigError(f"{path}: not a readable evidence bundle ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ConfigError(f"{path}: not an evidence bundle of format {FORMAT}")
        bundle = cls()
        try:
            for chain, items in document["chains"].items():
                for item in items:
                    method, params = item["request"]
                    bundle.add(chain, Call(method, tuple(params)), item["answer"])
            for chain, pin in document.get("pins", {}).items():
                if not isinstance(pin.get("number"), int) or not isinstance(pin.get("hash"), str):
                    raise ValueError(f"pin of {chain} has no number or hash")
                bundle.add_pin(chain, pin)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: malformed evidence bundle ({exc})") from None
        digest = bundle.digest()
        if digest != document.get("digest"):
            raise ConfigError(f"{path}: digest mismatch (content {digest}, recorded {document.get('digest')})")
        return bundle, digest


class RecordingLayer:
    """Pass calls through and keep every answer, so the audit can be replayed and verified."""

    def __init__(self, inner: Layer, bundle: Bundle, chain: str) -> None:
        self.inner, self.bundle, self.chain = inner, bundle, chain

    def send(self, calls: Sequence[Call]) -> list[Response]:
        answers = self.inner.send(calls)
        for call, answer in zip(calls, answers, strict=True):
            self.bundle.add(self.chain, call, answer)
        return answers


class ReplayLayer:
    """Answer from a bundle with no node at all; a request it does not hold is a clear error."""

    def __init__(self, bundle: Bundle, chain: str) -> None:
        self.answers = bundle.entries.get(chain, {})
        self.chain = chain

    def send(self, calls: Sequence[Call]) -> list[Response]:
        out = []
        for call in calls:
            answer = self.answers.get(call.key)
            if answer is None:
                raise EvidenceMissing(
                    f"{self.chain}: the evidence bundle has no answer for {call.method} at block {call.block} "
                    f"(params {canonical_json(list(call.params))[:200]}): the replayed audit asks for something "
                    "the recorded one did not"
                )
            problem = None if is_error(answer) else malformed(call, answer.get("result"))
            # A bundle is checked by its digest, not by who wrote it: what no node could have answered is unusable.
            out.append({"error": {"code": UNUSABLE_CODE, "message": problem}} if problem else answer)
        return out
