"""Verify a report: findings digest, signature and signer, the visible HTML against its findings, re-execution."""

from __future__ import annotations

import html as html_lib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.chain.rpc import ConfigError
from auditor.report.sign import canonical_json, digest_of, recover_signer

_BLOCK = r'<script type="application/json" id="{name}">(.*?)</script>'
# Parts of a findings document that legitimately differ between two runs at the same pins.
VOLATILE = {"requests", "generated", "evidence", "tool"}


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    signer: str | None = None
    digest: str = ""
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def extract(text: str, name: str) -> str | None:
    found = re.findall(_BLOCK.format(name=re.escape(name)), text, flags=re.DOTALL)
    if len(found) > 1:
        raise ConfigError(f"the report holds {len(found)} '{name}' blocks; a genuine report holds one")
    return found[0] if found else None


def first_difference(expected: str, actual: str) -> str:
    """Where two renderings part, as 'line N: expected ..., found ...' with the text around it."""
    for number, (want, got) in enumerate(zip(expected.splitlines(), actual.splitlines(), strict=False), start=1):
        if want != got:
            pairs = enumerate(zip(want, got, strict=False))
            start = next((i for i, (a, b) in pairs if a != b), min(len(want), len(got)))
            window = slice(max(0, start - 40), start + 60)
            return (f"line {number}: expected {html_lib.unescape(want[window]).strip()!r}, "
                    f"found {html_lib.unescape(got[window]).strip()!r}")
    return f"the lengths differ ({len(expected.splitlines())} lines expected, {len(actual.splitlines())} found)"


def diff_documents(old: Any, new: Any, path: str = "") -> Iterator[str]:
    """Every figure that differs between two findings documents, by JSON path."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if not path and key in VOLATILE:
                continue
            child = f"{path}.{key}" if path else str(key)
            if key not in old:
                yield f"{child}: absent from the report, {json.dumps(new[key])[:80]} on re-run"
            elif key not in new:
                yield f"{child}: {json.dumps(old[key])[:80]} in the report, absent on re-run"
            else:
                yield from diff_documents(old[key], new[key], child)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from diff_documents(a, b, f"{path}[{index}]")
    elif old != new:
        yield f"{path}: {json.dumps(old)[:80]} in the report, {json.dumps(new)[:80]} on re-run"


def verify_report(
    path: Path,
    *,
    expected_signer: str | None = None,
    rerun: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Verdict:
    """Check everything a reader must trust; each failed check is one clear line in `problems`."""
    from auditor.report.render import render_report

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the report ({exc.__class__.__name__})") from None
    verdict = Verdict()
    embedded = extract(text, "findings")
    if embedded is None:
        raise ConfigError(f"{path}: no embedded findings: not a report of this tool")
    try:
        document = json.loads(embedded)
    except ValueError as exc:
        verdict.problems.append(f"the embedded findings are not valid JSON ({exc})")
        return verdict
    canonical = canonical_json(document)
    verdict.digest = digest_of(canonical)
    signature_text = extract(text, "signature")
    signature: dict[str, Any] | None = None
    if signature_text is None:
        verdict.problems.append("the report is unsigned")
    else:
        try:
            signature = json.loads(signature_text)
            assert isinstance(signature, dict)
        except (ValueError, AssertionError):
            verdict.problems.append("the signature block is not valid JSON")
            signature = None
    if signature is not None:
        _check_signature(verdict, signature, expected_signer)
    try:
        expected = render_report(document, findings_json=canonical, signature=signature)
    except ValueError as exc:
        verdict.problems.append(f"the report cannot be re-rendered from its findings: {exc}")
        return verdict
    if expected != text:
        verdict.problems.append("the visible report differs from its signed findings at " +
                                first_difference(expected, text))
    else:
        verdict.checks.append("the visible report is exactly what its findings render to")
    if rerun is not None:
        fresh = rerun(document)
        differences = list(diff_documents(document, fresh))
        if differences:
            verdict.problems.append(f"re-running the audit gives different figures ({len(differences)}): " +
                                    "; ".join(differences[:10]))
        else:
            verdict.checks.append("re-running the audit at the report's pins gives the same figures")
    return verdict


def _check_signature(verdict: Verdict, signature: dict[str, Any], expected_signer: str | None) -> None:
    claimed_digest, claimed_signer = str(signature.get("digest", "")), str(signature.get("signer", ""))
    if claimed_digest != verdict.digest:
        verdict.problems.append(
            f"findings digest mismatch: the embedded findings hash to {verdict.digest}, the signature covers "
            f"{claimed_digest}: the findings were changed after signing")
    else:
        verdict.checks.append(f"the findings hash to the signed digest {verdict.digest}")
    try:
        recovered = recover_signer(claimed_digest, str(signature.get("signature", "")))
    except ValueError as exc:
        verdict.problems.append(str(exc))
        return
    verdict.signer = recovered
    if recovered.lower() != claimed_signer.lower():
        verdict.problems.append(f"signer mismatch: the signature was made by {recovered}, the report names "
                                f"{claimed_signer}")
    else:
        verdict.checks.append(f"signed by {recovered}")
    if expected_signer and recovered.lower() != expected_signer.lower():
        verdict.problems.append(f"signed by {recovered}, not by the expected signer {expected_signer}")
