"""What `auditor audit --json` writes, in one place: the command line, `auditor serve` and `auditor mcp` use it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditor.chain.reader import ConnectOptions
    from auditor.findings import AuditResult
    from auditor.spec import Registry, Spec


def audit_with_inputs(spec: Spec, registry: Registry, options: ConnectOptions, spec_path: str | Path,
                      registry_path: str | Path) -> AuditResult:
    """Audit a loaded spec; its findings name the inputs as given."""
    from auditor.audit import AuditRequest, run_audit

    result = run_audit(AuditRequest(spec, registry, options))
    # Paths as given, never resolved: a machine's own paths in the signed findings would change the digest.
    result.document["inputs"] = {"spec": str(Path(spec_path)), "registry": str(Path(registry_path))}
    return result


def audit_json(result: AuditResult) -> dict[str, Any]:
    """What `audit --json` writes: the findings plus the run's request counts (run metadata, never signed)."""
    return {**result.document, "requests": result.requests}


def audit_text(result: AuditResult) -> str:
    """The bytes of that file (auditor.output.write_json's spelling)."""
    from auditor.output import json_text

    return json_text(audit_json(result))


def publish_task(spec_path: str, registry_path: str, rpc: dict[str, str], blocks: dict[str, str | int],
                 use_cache: bool = True) -> dict[str, Any]:
    """One spec of `auditor publish`, from plain arguments (a task of any engine, see auditor.engine): its findings
    and request counts, or why it cannot be published (an audit whose reads failed is never signed)."""
    from auditor.chain.reader import ConnectOptions
    from auditor.spec import load_registry, load_spec

    registry = load_registry(registry_path)
    spec = load_spec(spec_path, registry)
    options = ConnectOptions(rpc=rpc, blocks=blocks, use_cache=use_cache)
    result = audit_with_inputs(spec, registry, options, spec_path, registry_path)
    return {"spec": spec.id, "findings": result.document, "requests": result.requests,
            "incomplete": None if result.complete else f"the audit is incomplete ({result.why_incomplete()})"}
