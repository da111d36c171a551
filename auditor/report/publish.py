"""Write signed HTML reports and the static site's index, atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditor.output import write_text
from auditor.report.render import extract_findings_json, extract_signature, render_index, render_report
from auditor.report.sign import Signature, canonical_json, digest_of, sign_digest

INDEX = "index.html"


def write_report(document: Mapping[str, Any], path: Path, key: bytes | None,
                 evidence_digest: str | None = None) -> Signature | None:
    """Canonicalise, sign the digest (when a key is given) and render; the page renders from the canonical
    form so that `auditor verify` re-rendering the embedded findings gets the same bytes."""
    canonical = canonical_json(document)
    signature = sign_digest(digest_of(canonical), key, evidence_digest) if key is not None else None
    html = render_report(json.loads(canonical), findings_json=canonical,
                         signature=signature.as_dict() if signature else None)
    write_text(path, html)
    return signature


def _entry(path: Path) -> dict[str, Any] | None:
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(extract_findings_json(text))
    except (ValueError, KeyError):
        return None
    signature = extract_signature(text) or {}
    stages = document.get("stages")
    if isinstance(stages, dict) and stages:
        last = list(stages.values())[-1]
        findings, pin_time = last.get("audit", {}), last.get("pin_time")
    else:
        findings, pin_time = document, None
    spec = findings.get("spec", "")
    figures = findings.get("backing", {}).get("issuers", {}).get(spec, {})
    flags = findings.get("flags", [])
    severity = flags[0]["severity"] if flags else "none"
    expansion = figures.get("expansion_ratio")
    return {
        "title": document.get("report") or spec or path.stem,
        "file": path.name,
        "token": findings.get("token", ""),
        "verdict": f"{len(flags)} flag(s); expansion {expansion + 'x' if expansion else 'unbounded'}",
        "severity": severity,
        "expansion_ratio": expansion,
        "supply_usd": figures.get("supply_usd"),
        "verifiable_backing_usd": figures.get("verifiable_backing_usd"),
        "generated": document.get("generated", ""),
        "pin_time": pin_time,
        "signer": signature.get("signer"),
    }


def write_index(folder: Path) -> Path:
    """The site's index: one row per report in `folder`."""
    entries = [e for p in sorted(folder.glob("*.html")) if p.name != INDEX and (e := _entry(p)) is not None]
    path = folder / INDEX
    write_text(path, render_index(entries))
    return path
