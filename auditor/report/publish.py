"""Write signed HTML reports and the static site's index, atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditor.output import write_text
from auditor.report.render import (
    extract_findings_json,
    extract_signature,
    index_entries,
    render_index,
    render_report,
)
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


def _entries(path: Path) -> list[dict[str, Any]]:
    """A report's index rows (one per token and pin); none for a page that is not a report of this tool."""
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(extract_findings_json(text))
        signature = extract_signature(text) or {}
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    return index_entries(document, path.name, signature.get("signer"))


def write_index(folder: Path, failures: dict[str, str] | None = None) -> Path:
    """The site's index: one row per token and pin of every report in `folder`, and one per spec of this run
    that could not be published (`failures`: spec id -> why), worst first."""
    entries = [e for p in sorted(folder.glob("*.html")) if p.name != INDEX for e in _entries(p)]
    entries += [{"title": spec_id, "file": None, "token": spec_id, "stage": "", "severity": "failed",
                 "verdict": f"not audited: {reason}", "expansion_ratio": None, "generated": "", "signer": None}
                for spec_id, reason in sorted((failures or {}).items())]
    path = folder / INDEX
    write_text(path, render_index(entries))
    return path
