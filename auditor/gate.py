"""The CI gate: a policy applied to audit findings, reported as text, JSON, JUnit, SARIF or GitHub annotations."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from auditor import __version__
from auditor.spec import Boolean, Field, Number, Obj, Seq, Text, load_document

FORMATS = ("text", "json", "junit", "sarif", "github")
INFO_URI = "https://github.com/reserve-auditor/reserve-auditor"


@dataclass(frozen=True)
class Policy:
    """What a curator accepts as collateral. Every limit is optional; absent means not checked."""

    min_backing_ratio: Decimal | None = None
    max_expansion: Decimal | None = None
    fail_on_flags: tuple[str, ...] = ()
    max_oracle_deviation: Decimal | None = None  # oracle price over look-through value, minus 1
    max_exposure_usd: Decimal | None = None  # per collateral, summed over the markets found
    allow_unverified_collateral: bool = False


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _policy(**values: Any) -> Policy:
    return Policy(
        min_backing_ratio=_decimal(values.get("min_backing_ratio")),
        max_expansion=_decimal(values.get("max_expansion")),
        fail_on_flags=tuple(values.get("fail_on_flags", ())),
        max_oracle_deviation=_decimal(values.get("max_oracle_deviation")),
        max_exposure_usd=_decimal(values.get("max_exposure_usd")),
        allow_unverified_collateral=bool(values.get("allow_unverified_collateral", False)),
    )


def vault_collaterals(client: Any, registry: Any, chain: str, vault: str) -> list[str]:
    """Collateral tokens of every Morpho market the vault supplies to (found from its Supply events)."""
    from auditor.adapters import Scope
    from auditor.adapters.morpho_blue import SUPPLY_EVENT, read_markets
    from auditor.chain.abi import address_topic
    from auditor.chain.rpc import ConfigError

    venue = registry.venues.get("morpho_blue", {}).get(chain)
    if venue is None:
        raise ConfigError(f"the registry has no morpho_blue venue on {chain}: cannot find the vault's markets")
    scope = Scope(chain, client, registry, [], {}, venue=venue)
    ids = sorted({SUPPLY_EVENT.decode(log.topics, log.data)["id"] for log in client.scan_logs(
        [venue.address], [SUPPLY_EVENT.topic, None, None, [address_topic(vault)]], venue.from_block,
        client.pinned.number)})
    if not ids:
        raise ConfigError(f"{vault} never supplied to a Morpho Blue market on {chain}: nothing to check")
    return sorted({m.collateral_token for m in read_markets(scope, ids).values()})


POLICY_FORMAT = Obj(
    {
        "min_backing_ratio": Field(Number("fail if verifiable backing ratio is below", minimum=0, maximum=1)),
        "max_expansion": Field(Number("fail if supply / verifiable backing is above (unbounded always fails)",
                                      minimum=1)),
        "fail_on_flags": Field(Seq(Text("a flag id, e.g. circular-dependency"), "flags that fail the gate")),
        "max_oracle_deviation": Field(Number("fail if a market's oracle prices the collateral more than this "
                                             "fraction above its look-through value", minimum=0)),
        "max_exposure_usd": Field(Number("fail if more than this is lent against one collateral", minimum=0)),
        "allow_unverified_collateral": Field(Boolean("in --vault mode, pass collateral that has no spec")),
    },
    build=_policy,
    description="Policy of `auditor check`",
)


def load_policy(path: str | Path) -> Policy:
    policy: Policy = load_document(path, POLICY_FORMAT)
    return policy


@dataclass(frozen=True)
class Check:
    id: str
    subject: str  # issuer id or market key
    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    location: str = ""  # a file to point annotations at (the spec)


def evaluate(findings: Mapping[str, Any], policy: Policy, location: str = "") -> list[Check]:
    """Every check the policy asks for, on the audited issuer of one findings document."""
    issuer = str(findings["spec"])
    figures = findings["backing"]["issuers"][issuer]
    checks: list[Check] = []
    ratio = figures.get("backing_ratio")
    if policy.min_backing_ratio is not None:
        passed = ratio is not None and Decimal(ratio) >= policy.min_backing_ratio
        checks.append(Check("min-backing-ratio", issuer, passed,
                            f"backing ratio {ratio} {'>=' if passed else '<'} {policy.min_backing_ratio}",
                            {"backing_ratio": ratio, "limit": str(policy.min_backing_ratio)}, location))
    if policy.max_expansion is not None:
        expansion = figures.get("expansion_ratio")
        passed = expansion is not None and Decimal(expansion) <= policy.max_expansion
        shown = f"{expansion}x" if expansion is not None else "unbounded (no verifiable backing)"
        checks.append(Check("max-expansion", issuer, passed,
                            f"expansion {shown} {'<=' if passed else 'exceeds'} {policy.max_expansion}x",
                            {"expansion_ratio": expansion, "limit": str(policy.max_expansion)}, location))
    for flag_id in policy.fail_on_flags:
        raised = [f for f in findings.get("flags", []) if f["id"] == flag_id and f.get("issuer") in (issuer, None)]
        checks.append(Check(f"flag:{flag_id}", issuer, not raised,
                            "; ".join(f["message"] for f in raised) if raised else f"{flag_id} not raised",
                            {"flags": [f.get("evidence", {}) for f in raised]}, location))
    if policy.max_oracle_deviation is not None:
        checks += _oracle_checks(findings, issuer, policy.max_oracle_deviation, location)
    if policy.max_exposure_usd is not None:
        checks += _exposure_checks(findings, issuer, policy.max_exposure_usd, location)
    return checks


def _oracle_checks(findings: Mapping[str, Any], issuer: str, limit: Decimal, location: str) -> list[Check]:
    out = []
    for flag in findings.get("flags", []):
        if flag["id"] != "oracle-overvalues" or flag.get("issuer") != issuer:
            continue
        evidence = flag["evidence"]
        oracle, truth = Decimal(evidence["oracle_price_usd"]), Decimal(evidence["look_through_usd"])
        deviation = oracle / truth - 1 if truth > 0 else None
        passed = deviation is not None and deviation <= limit
        shown = f"{deviation:.4f}" if deviation is not None else "unbounded (look-through value 0)"
        out.append(Check("max-oracle-deviation", evidence["market"], passed,
                         f"oracle {oracle} USD vs look-through {truth} USD: deviation {shown} > {limit}; hides "
                         f"{evidence['hidden_bad_debt_usd']} USD of bad debt", evidence, location))
    if not out:
        out.append(Check("max-oracle-deviation", issuer, True, "no market prices the collateral above "
                         f"its look-through value by more than the flag threshold (limit {limit})", {}, location))
    return out


def _exposure_checks(findings: Mapping[str, Any], issuer: str, limit: Decimal, location: str) -> list[Check]:
    exposure = findings.get("exposure")
    if not isinstance(exposure, Mapping):
        return [Check("max-exposure", issuer, False, "no exposure map in the findings: cannot check exposure "
                      "(fail closed)", {}, location)]
    total = Decimal(0)
    for per_chain in exposure.values():
        for market in per_chain.get("markets", []):
            usd = market.get("total_borrowed_usd")
            if usd is None:
                return [Check("max-exposure", issuer, False, f"market {market.get('key')} lends in an unpriced "
                              "token: exposure cannot be summed (fail closed)", {}, location)]
            total += Decimal(str(usd))
    passed = total <= limit
    return [Check("max-exposure", issuer, passed, f"{total} USD lent against {issuer} "
                  f"{'<=' if passed else '>'} {limit}", {"exposure_usd": str(total), "limit": str(limit)}, location)]


# ------------------------------------------------------------------ output formats


def render(checks: Sequence[Check], output_format: str) -> str:
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}")
    return {"text": _text, "json": _json, "junit": _junit, "sarif": _sarif, "github": _github}[output_format](checks)


def _text(checks: Sequence[Check]) -> str:
    lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.id} ({c.subject}): {c.message}" for c in checks]
    failed = sum(not c.passed for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed")
    return "\n".join(lines) + "\n"


def _json(checks: Sequence[Check]) -> str:
    document = {
        "tool": {"name": "reserve-auditor", "version": __version__},
        "passed": all(c.passed for c in checks),
        "checks": [{"id": c.id, "subject": c.subject, "passed": c.passed, "message": c.message,
                    "evidence": c.evidence} for c in checks],
    }
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _junit(checks: Sequence[Check]) -> str:
    failures = sum(not c.passed for c in checks)
    cases = []
    for c in checks:
        body = "" if c.passed else (f"<failure message={quoteattr(c.message)} type={quoteattr(c.id)}>"
                                    f"{escape(json.dumps(c.evidence, sort_keys=True, default=str))}</failure>")
        cases.append(f'    <testcase classname={quoteattr("auditor." + c.subject)} name={quoteattr(c.id)} '
                     f'time="0">{body}</testcase>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites name="auditor check" tests="{len(checks)}" failures="{failures}" errors="0">\n'
            f'  <testsuite name="auditor check" tests="{len(checks)}" failures="{failures}" errors="0" '
            'skipped="0" time="0">\n' + "\n".join(cases) + "\n  </testsuite>\n</testsuites>\n")


def _sarif(checks: Sequence[Check]) -> str:
    rules = sorted({c.id for c in checks})
    results = []
    for c in checks:
        if c.passed:
            continue
        result: dict[str, Any] = {"ruleId": c.id, "level": "error", "message": {"text": f"{c.subject}: {c.message}"},
                                  "properties": {"subject": c.subject, "evidence": c.evidence}}
        if c.location:
            result["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": c.location},
                                                         "region": {"startLine": 1}}}]
        results.append(result)
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "reserve-auditor", "version": __version__, "informationUri": INFO_URI,
                                "rules": [{"id": r, "shortDescription": {"text": f"auditor check {r}"}}
                                          for r in rules]}},
            "results": results,
        }],
    }
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _annotation(text: str) -> str:
    # GitHub workflow commands: %, CR and LF must be escaped or the annotation is cut.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    # In a property (file=, title=) ":" and "," end the value, so they are escaped too.
    return _annotation(text).replace(":", "%3A").replace(",", "%2C")


def _github(checks: Sequence[Check]) -> str:
    lines = []
    for c in checks:
        where = f"file={_property(c.location)}," if c.location else ""
        title = _property(f"auditor check {c.id}")
        if c.passed:
            lines.append(f"::notice {where}title={title}::{_annotation(c.subject + ': ' + c.message)}")
        else:
            lines.append(f"::error {where}title={title}::{_annotation(c.subject + ': ' + c.message)}")
    return "\n".join(lines) + "\n"
