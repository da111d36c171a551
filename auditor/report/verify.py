"""Verify a report: findings digest, signature and signer, the visible HTML against its findings, re-execution."""

from __future__ import annotations

import html as html_lib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.addresses import check_address
from auditor.chain.rpc import ConfigError
from auditor.report.sign import block_problems, canonical_json, digest_of, recover_signer, signed_statement

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


def parse_signer(text: str) -> str:
    """The checksummed address --signer names, or ConfigError: an empty or malformed value must never
    silently mean "any signer"."""
    try:
        return check_address(text.strip())
    except ValueError as exc:
        raise ConfigError(f"--signer {text!r}: {exc}") from None


def extract(text: str, name: str) -> str | None:
    """A data block's text exactly as the page holds it ("findings" or "signature"), or None."""
    from auditor.report.render import findings_block, signature_block

    try:
        return findings_block(text) if name == "findings" else signature_block(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def first_difference(expected: str, actual: str) -> str:
    """Where two renderings part, as 'line N: expected ..., found ...' with the text around it."""
    # Split on "\n" only: splitlines() would also split on "\r" and friends and misplace the difference.
    expected_lines, actual_lines = expected.split("\n"), actual.split("\n")
    for number, (want, got) in enumerate(zip(expected_lines, actual_lines, strict=False), start=1):
        if want != got:
            pairs = enumerate(zip(want, got, strict=False))
            start = next((i for i, (a, b) in pairs if a != b), min(len(want), len(got)))
            window = slice(max(0, start - 40), start + 60)
            return (f"line {number}: expected {html_lib.unescape(want[window]).strip(' ')!r}, "
                    f"found {html_lib.unescape(got[window]).strip(' ')!r}")
    return f"the lengths differ ({len(expected_lines)} lines expected, {len(actual_lines)} found)"


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
    replay_digest: str | None = None,
) -> Verdict:
    """Check everything a reader must trust; each failed check is one clear line in `problems`.

    `replay_digest` is the digest of the evidence bundle `rerun` answers from (None for a node):
    it must be the bundle the report was signed with, or the re-run proves nothing about it."""
    from auditor.report.render import decode_findings_block, render_report

    signer = parse_signer(expected_signer) if expected_signer is not None else None
    try:
        # Bytes, not text: reading as text would turn a "\r\n" on the page into "\n" before the comparison.
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the report ({exc.__class__.__name__})") from None
    verdict = Verdict()
    block = extract(text, "findings")
    if block is None and text.lstrip().startswith(("{", "[")):
        # The report's JSON beside the page (`audit --out`, the demo) carries no signature: the page does.
        page = path.with_suffix(".html")
        raise ConfigError(f"{path}: a JSON document, not a signed report page: verify checks the HTML report that "
                          "embeds the findings and their signature" + (f" ({page})" if page.is_file() else ""))
    if block is None:
        legacy = '<script type="application/json" id="findings">' in text
        raise ConfigError(f"{path}: no embedded findings this version reads: " + (
            "a report of an older version (findings as plain JSON); verify it with that version or re-render it"
            if legacy else "not a report of this tool"))
    try:
        embedded = decode_findings_block(block)
        document = json.loads(embedded)
    except ValueError as exc:
        verdict.problems.append(f"the embedded findings are not valid JSON ({exc})")
        return verdict
    canonical = canonical_json(document)
    verdict.digest = digest_of(canonical)
    signature = _signature_block(verdict, extract(text, "signature"))
    if signature is not None:
        _check_signature(verdict, signature, signer)
        _check_evidence(verdict, signature, document)
    try:
        # Around the page's own block (checked to inflate to the findings): another zlib may deflate differently.
        expected = render_report(document, findings_json=canonical, signature=signature,
                                 findings_block=block if embedded == canonical else None)
    except ValueError as exc:
        verdict.problems.append(f"the report cannot be re-rendered from its findings: {exc}")
        return verdict
    if expected.encode("utf-8") != raw:
        verdict.problems.append("the visible report differs from its signed findings at " +
                                first_difference(expected, text))
    else:
        verdict.checks.append("the visible report is exactly what its findings render to")
    if rerun is not None and _bundle_is_the_signed_one(verdict, signature, replay_digest):
        # The re-run's figures may be Decimals or floats; the report's are canonical strings.
        fresh = json.loads(canonical_json(rerun(document)))
        differences = list(diff_documents(document, fresh))
        if differences:
            verdict.problems.append(f"re-running the audit gives different figures ({len(differences)}): " +
                                    "; ".join(differences[:10]))
        else:
            verdict.checks.append("re-running the audit at the report's pins gives the same figures")
    return verdict


def _signature_block(verdict: Verdict, block_text: str | None) -> dict[str, Any] | None:
    if block_text is None:
        verdict.problems.append("the report is unsigned")
        return None
    try:
        block = json.loads(block_text)
    except ValueError:
        block = None
    if not isinstance(block, dict):
        verdict.problems.append("the signature block is not a JSON object")
        return None
    return block


def _check_signature(verdict: Verdict, signature: dict[str, Any], expected_signer: str | None) -> None:
    schema = block_problems(signature)
    verdict.problems.extend(schema)
    claimed_digest = signature.get("digest")
    if claimed_digest != verdict.digest:
        verdict.problems.append(
            f"findings digest mismatch: the embedded findings hash to {verdict.digest}, the signature covers "
            f"{claimed_digest}: the findings were changed after signing")
    else:
        verdict.checks.append(f"the findings hash to the signed digest {verdict.digest}")
    if schema:
        return  # the signed statement cannot be rebuilt from a malformed block
    claimed_signer = signature["signer"]
    statement = signed_statement(claimed_signer, signature["digest"], signature["evidence_digest"],
                                 signature["scheme"])
    try:
        recovered = recover_signer(statement, signature["signature"])
    except ValueError as exc:
        verdict.problems.append(str(exc))
        return
    if recovered.lower() != claimed_signer.lower():
        verdict.problems.append(
            f"signer mismatch: the signature was made by {recovered} over this block, which names "
            f"{claimed_signer}: the signer, digest, evidence_digest or scheme was changed after signing")
        return
    verdict.signer = recovered
    verdict.checks.append(f"signed by {recovered}, over the findings digest, the evidence digest and the scheme")
    if expected_signer is not None and recovered.lower() != expected_signer.lower():
        verdict.problems.append(f"signed by {recovered}, not by the expected signer {expected_signer}")


def _check_evidence(verdict: Verdict, signature: dict[str, Any], document: dict[str, Any]) -> None:
    """The findings record which bundle they came from; the signature must name the same one."""
    evidence = document.get("evidence")
    recorded = evidence.get("digest") if isinstance(evidence, dict) else None
    signed = signature.get("evidence_digest")
    if recorded != signed:
        verdict.problems.append(f"the signed evidence digest {signed} differs from the one the findings record "
                                f"({recorded})")


def _bundle_is_the_signed_one(verdict: Verdict, signature: dict[str, Any] | None, replay_digest: str | None) -> bool:
    """Whether a re-run may go ahead: a bundle other than the signed one would 'confirm' other figures."""
    if replay_digest is None:
        return True
    signed = signature.get("evidence_digest") if signature is not None else None
    if signed is None:
        verdict.problems.append("the report names no signed evidence bundle, so --replay cannot be checked "
                                "against it; re-run with --rpc instead")
        return False
    if replay_digest != signed:
        verdict.problems.append(f"the evidence bundle given to --replay has digest {replay_digest}, but the report "
                                f"was signed with evidence {signed}: it is not this report's bundle; not re-run")
        return False
    verdict.checks.append(f"the evidence bundle is the signed one ({signed})")
    return True
