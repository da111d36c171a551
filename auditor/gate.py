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
from auditor import policy as policy_format
from auditor.findings import AuditResult, plain
from auditor.numbers import multiple, percent, to_decimal, usd
from auditor.policy import Policy
from auditor.text import inert, inert_markup

FORMATS = ("text", "json", "junit", "sarif", "github")
INFO_URI = "https://github.com/reserve-auditor/reserve-auditor"


def vault_collaterals(client: Any, registry: Any, chain: str, vault: str) -> list[str]:
    """Collateral tokens of every Morpho market the vault supplies to (the venue module finds them)."""
    from auditor.adapters import Scope
    from auditor.adapters.morpho_blue import supplied_collaterals
    from auditor.chain.plan import run_plan
    from auditor.chain.rpc import ConfigError

    venue = registry.venues.get("morpho_blue", {}).get(chain)
    if venue is None:
        raise ConfigError(f"the registry has no morpho_blue venue on {chain}: cannot find the vault's markets")
    collaterals = run_plan(client, supplied_collaterals(Scope(chain, client, registry, [], {}, venue=venue), vault))
    if not collaterals:
        raise ConfigError(f"{vault} never supplied to a Morpho Blue market on {chain}: nothing to check")
    return collaterals


def load_policy(path: str | Path) -> Policy:
    """A policy validated like a spec: unknown keys or flag ids, or a policy that checks nothing, exit 2."""
    from auditor.flags import flag_ids

    return policy_format.load_policy(path, flag_ids())


@dataclass(frozen=True)
class Check:
    id: str
    subject: str  # issuer id or market key
    passed: bool
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)  # typed values; each format spells them itself
    location: str = ""  # a file to point annotations at (the spec)
    decided: bool = True  # False: the gate could not decide (incomplete data), which fails it


def undecided(check_id: str, subject: str, message: str, location: str = "") -> Check:
    return Check(check_id, subject, False, message + " (fail closed)", {}, location, decided=False)


def evaluate(result: AuditResult, policy: Policy, location: str = "") -> list[Check]:
    """Every check the policy asks for, on the audited issuer of one audit, from its typed figures and flags."""
    issuer = result.spec
    if not result.complete:
        return [undecided("complete-audit", issuer, f"the audit is incomplete: {result.why_incomplete()}; no figure "
                          "can be checked", location)]
    figures = result.backing.issuers[issuer]
    checks: list[Check] = []
    ratio = figures.backing_ratio
    if policy.min_backing_ratio is not None:
        passed = ratio is not None and ratio >= policy.min_backing_ratio
        checks.append(Check("min-backing-ratio", issuer, passed,
                            f"backing ratio {percent(ratio)} {'>=' if passed else '<'} "
                            f"{percent(policy.min_backing_ratio)}",
                            {"backing_ratio": ratio, "limit": policy.min_backing_ratio}, location))
    if policy.max_expansion is not None:
        expansion = figures.expansion_ratio
        passed = expansion is not None and expansion <= policy.max_expansion
        shown = multiple(expansion, unbounded="unbounded (no verifiable backing)")
        checks.append(Check("max-expansion", issuer, passed,
                            f"expansion {shown} {'<=' if passed else 'exceeds'} {multiple(policy.max_expansion)}",
                            {"expansion_ratio": expansion, "limit": policy.max_expansion}, location))
    if policy.min_coverage is not None:
        coverage = result.coverage.get(issuer)
        if coverage is None:
            checks.append(undecided("min-coverage", issuer, "the issuer's counterparties were not accounted",
                                    location))
        else:
            passed = coverage >= policy.min_coverage
            checks.append(Check("min-coverage", issuer, passed,
                                f"coverage {percent(coverage)} {'>=' if passed else '<'} {percent(policy.min_coverage)}"
                                " (value moved through counterparties the audit understands)",
                                {"coverage": coverage, "limit": policy.min_coverage}, location))
    skipped = {s.check: s.reason for s in result.skipped}
    for flag_id in policy.fail_on_flags:
        raised = [f for f in result.flags if f.id == flag_id and f.issuer in (issuer, None)]
        if not raised and flag_id in skipped:
            checks.append(undecided(f"flag:{flag_id}", issuer, f"{flag_id} was not evaluated: {skipped[flag_id]}",
                                    location))
            continue
        checks.append(Check(f"flag:{flag_id}", issuer, not raised,
                            "; ".join(f.message for f in raised) if raised else f"{flag_id} not raised",
                            {"flags": [f.evidence for f in raised]}, location))
    if policy.max_oracle_deviation is not None:
        checks += _oracle_checks(result, issuer, policy.max_oracle_deviation, location)
    if policy.max_exposure_usd is not None:
        checks += _exposure_checks(result, issuer, policy.max_exposure_usd, location)
    if not checks:
        checks.append(undecided("policy", issuer, "the policy checks nothing, so it cannot pass a token", location))
    return checks


def _oracle_checks(result: AuditResult, issuer: str, limit: Decimal, location: str) -> list[Check]:
    out = []
    for reading in result.oracles:
        if reading.issuer != issuer:
            continue
        key = reading.market.key
        if reading.oracle_usd is None:
            out.append(undecided("max-oracle-deviation", key, f"the oracle {reading.market.oracle} of {key} could "
                                 "not be read", location))
            continue
        deviation = reading.deviation
        passed = deviation is not None and deviation <= limit
        shown = percent(deviation) if deviation is not None else "unbounded (look-through value 0)"
        out.append(Check("max-oracle-deviation", key, passed,
                         f"oracle {usd(reading.oracle_usd)} vs look-through {usd(reading.look_through_usd)}: "
                         f"deviation {shown} {'<=' if passed else '>'} {percent(limit)}; "
                         f"{usd(reading.hidden_bad_debt_usd)} of bad debt on {usd(reading.debt_usd)} lent",
                         {"market": key, "oracle_price_usd": reading.oracle_usd, "deviation": deviation,
                          "look_through_usd": reading.look_through_usd, "limit": limit,
                          "hidden_bad_debt_usd": reading.hidden_bad_debt_usd}, location))
    if not out:
        out.append(Check("max-oracle-deviation", issuer, True, f"no lending market prices {issuer} with an oracle "
                         f"(limit {percent(limit)})", {}, location))
    return out


def _exposure_checks(result: AuditResult, issuer: str, limit: Decimal, location: str) -> list[Check]:
    if any(s.check == "exposure" for s in result.skipped):
        return [undecided("max-exposure", issuer, "the exposure map could not be built", location)]
    total = Decimal(0)
    for per_chain in result.exposure.values():
        for market in per_chain.get("markets", []):
            value = to_decimal(market.get("total_borrowed_usd"))
            if value is None:
                return [undecided("max-exposure", issuer, f"market {market.get('key')} lends in an unpriced "
                                  "token: exposure cannot be summed", location)]
            total += value
    passed = total <= limit
    return [Check("max-exposure", issuer, passed, f"{usd(total)} lent against {issuer} "
                  f"{'<=' if passed else '>'} {usd(limit)}", {"exposure_usd": total, "limit": limit}, location)]


# ------------------------------------------------------------------ output formats


COVERAGE_TEXT = "of the value its accounts moved went through counterparties the audit understands"


def render(checks: Sequence[Check], output_format: str, coverage: Mapping[str, Decimal | None] | None = None) -> str:
    """The checks in one format; every format also carries each audited issuer's coverage (`coverage`)."""
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}")
    renderer = {"text": _text, "json": _json, "junit": _junit, "sarif": _sarif, "github": _github}[output_format]
    return renderer(checks, dict(sorted((coverage or {}).items())))


def _coverage_lines(coverage: Mapping[str, Decimal | None]) -> list[str]:
    return [f"coverage of {subject}: {percent(share)} {COVERAGE_TEXT}" for subject, share in coverage.items()]


def _text(checks: Sequence[Check], coverage: Mapping[str, Decimal | None]) -> str:
    lines = [f"{_verdict(c)}  {c.id} ({inert(c.subject)}): {inert(c.message)}" for c in checks]
    lines += [inert(line) for line in _coverage_lines(coverage)]
    failed = sum(not c.passed for c in checks)
    undecided_count = sum(not c.decided for c in checks)
    lines.append(f"{len(checks) - failed} passed, {failed} failed"
                 + (f" ({undecided_count} could not be decided)" if undecided_count else ""))
    return "\n".join(lines) + "\n"


def _verdict(check: Check) -> str:
    return "PASS" if check.passed else ("FAIL" if check.decided else "UNDECIDED")


def _json(checks: Sequence[Check], coverage: Mapping[str, Decimal | None]) -> str:
    document = {
        "tool": {"name": "reserve-auditor", "version": __version__},
        "passed": all(c.passed for c in checks),
        "decided": all(c.decided for c in checks),
        "coverage": plain(coverage),
        "checks": [{"id": c.id, "subject": c.subject, "passed": c.passed, "decided": c.decided, "message": c.message,
                    "evidence": plain(c.evidence)} for c in checks],
    }
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _junit(checks: Sequence[Check], coverage: Mapping[str, Decimal | None]) -> str:
    failures = sum(not c.passed for c in checks)
    cases = []
    for c in checks:
        # XML 1.0 cannot carry control characters at all, escaped or not: they are spelled out first.
        body = "" if c.passed else (f"<failure message={quoteattr(inert_markup(c.message))} type={quoteattr(c.id)}>"
                                    f"{escape(inert_markup(json.dumps(plain(c.evidence), sort_keys=True)))}</failure>")
        classname = quoteattr("auditor." + inert_markup(c.subject))
        cases.append(f'    <testcase classname={classname} name={quoteattr(c.id)} time="0">{body}</testcase>')
    properties = "".join(f'      <property name={quoteattr("coverage:" + inert_markup(subject))} '
                         f'value={quoteattr(plain(share) or "n/a")}/>\n' for subject, share in coverage.items())
    if properties:
        properties = f"    <properties>\n{properties}    </properties>\n"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites name="auditor check" tests="{len(checks)}" failures="{failures}" errors="0">\n'
            f'  <testsuite name="auditor check" tests="{len(checks)}" failures="{failures}" errors="0" '
            'skipped="0" time="0">\n' + properties + "\n".join(cases) + "\n  </testsuite>\n</testsuites>\n")


def _sarif(checks: Sequence[Check], coverage: Mapping[str, Decimal | None]) -> str:
    rules = sorted({c.id for c in checks})
    results = []
    for c in checks:
        if c.passed:
            continue
        result: dict[str, Any] = {"ruleId": c.id, "level": "error", "message": {"text": f"{c.subject}: {c.message}"},
                                  "properties": {"subject": c.subject, "decided": c.decided,
                                                 "evidence": plain(c.evidence)}}
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
            "properties": {"coverage": plain(coverage)},
        }],
    }
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


def _annotation(text: str) -> str:
    # GitHub workflow commands: %, CR and LF must be escaped or the annotation is cut.
    return inert(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _property(text: str) -> str:
    # In a property (file=, title=) ":" and "," end the value, so they are escaped too.
    return _annotation(text).replace(":", "%3A").replace(",", "%2C")


def _github(checks: Sequence[Check], coverage: Mapping[str, Decimal | None]) -> str:
    lines = [f"::notice title={_property('auditor check coverage')}::{_annotation(line)}"
             for line in _coverage_lines(coverage)]
    for c in checks:
        where = f"file={_property(c.location)}," if c.location else ""
        title = _property(f"auditor check {c.id}")
        if c.passed:
            lines.append(f"::notice {where}title={title}::{_annotation(c.subject + ': ' + c.message)}")
        else:
            lines.append(f"::error {where}title={title}::{_annotation(c.subject + ': ' + c.message)}")
    return "\n".join(lines) + "\n"
