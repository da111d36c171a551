"""One verdict: every output format renders the same typed findings, so they state the same flags and figures."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.audit import summary_lines
from auditor.findings import AuditResult, Finding, Severity
from auditor.flags import flag_ids
from auditor.gate import FORMATS, evaluate, render
from auditor.numbers import multiple, percent
from auditor.policy import Policy

ratios = st.decimals(min_value=0, max_value=1, places=12, allow_nan=False, allow_infinity=False)
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@st.composite
def audits(draw: st.DrawFn) -> AuditResult:
    ratio = draw(ratios)
    supply = draw(st.decimals(min_value=1, max_value=10**12, places=6, allow_nan=False, allow_infinity=False))
    expansion = None if ratio == 0 else 1 / ratio
    figures = SimpleNamespace(symbol=draw(texts) or "TKN", supply_usd=supply, verifiable_backing_usd=supply * ratio,
                              backing_ratio=ratio, expansion_ratio=expansion, attested=())
    ids = draw(st.lists(st.sampled_from(flag_ids()), unique=True, max_size=5))
    flags = [Finding(flag_id, draw(st.sampled_from(list(Severity))), "alpha", draw(texts),
                     {"value": draw(ratios)}) for flag_id in ids]
    document = {"pins": {"ethereum": {"number": 1, "time": "2025-10-28T00:00:00Z"}}}
    return AuditResult(spec="alpha", token=figures.symbol, backing=SimpleNamespace(issuers={"alpha": figures}),
                       flags=flags, document=document)


@settings(max_examples=60, deadline=None)
@given(audits(), st.lists(st.sampled_from(flag_ids()), unique=True, min_size=1, max_size=4), ratios)
def test_every_format_states_the_same_flags_and_figures(result: AuditResult, policy_flags: list[str],
                                                        limit: Decimal) -> None:
    checks = evaluate(result, Policy(min_backing_ratio=limit, fail_on_flags=tuple(policy_flags)))
    figures = result.backing.issuers["alpha"]
    raised = {f.id for f in result.flags}
    verdicts = {c.id: c.passed for c in checks}
    assert verdicts["min-backing-ratio"] == (figures.backing_ratio >= limit)
    assert all(verdicts[f"flag:{flag}"] == (flag not in raised) for flag in policy_flags)

    summary = "\n".join(summary_lines(result))
    assert percent(figures.backing_ratio) in summary
    assert multiple(figures.expansion_ratio, unbounded="unbounded") in summary
    assert all(f"] {flag} (alpha)" in summary for flag in raised)

    text = render(checks, "text")
    assert percent(figures.backing_ratio) in text
    document = json.loads(render(checks, "json"))
    assert {c["id"]: c["passed"] for c in document["checks"]} == verdicts
    assert Decimal(document["checks"][0]["evidence"]["backing_ratio"]) == figures.backing_ratio  # full precision
    junit = ET.fromstring(render(checks, "junit"))
    assert {case.get("name"): case.find("failure") is None for case in junit.iter("testcase")} == verdicts
    sarif = json.loads(render(checks, "sarif"))
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {k for k, v in verdicts.items() if not v}
    github = render(checks, "github").splitlines()
    assert sorted(line.startswith("::error") for line in github) == sorted(not v for v in verdicts.values())
    assert set(FORMATS) == {"text", "json", "junit", "sarif", "github"}
