"""`auditor check`: policies, the five output formats, exit codes 0/1/2, and the vault mode on anvil."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.findings import AuditResult, Finding, Gap, Severity, Skipped
from auditor.flags.oracle_overvalues import OracleReading
from auditor.gate import FORMATS, evaluate, load_policy, render
from auditor.lab.deploy import Contract
from auditor.lab.morpho import oracle_price
from auditor.model import Market
from auditor.policy import Policy
from tests.conftest import Lab
from tests.support import same_block

USDC = 10**6


def findings(ratio: str | None = "0.6", expansion: str | None = "1.666667", flags: list[Finding] | None = None,
             oracles: list[OracleReading] | None = None, gaps: list[Gap] | None = None,
             skipped: list[Skipped] | None = None) -> AuditResult:
    figures = SimpleNamespace(backing_ratio=None if ratio is None else Decimal(ratio),
                              expansion_ratio=None if expansion is None else Decimal(expansion))
    return AuditResult(spec="alpha", token="ALPHA", backing=SimpleNamespace(issuers={"alpha": figures}),
                       flags=flags or [], gaps=gaps or [], skipped=skipped or [], oracles=oracles or [])


MARKET = Market(key="plume:morpho_blue:0xab", chain="plume", venue="morpho_blue", loan_token="0x1", loan_decimals=6,
                collateral_token="0x2", collateral_decimals=6, total_supply_assets=0, total_supply_shares=0,
                total_borrow_assets=0, oracle="0x3", oracle_price=1_260_000 * 10**30)
READING = OracleReading(MARKET, "alpha", "ALPHA", Decimal("1.26"), Decimal("0.23"), None, Decimal(1100),
                        Decimal("1030"))
OVERVALUED = Finding("oracle-overvalues", Severity.HIGH, "alpha", "oracle 1.26",
                     {"market": MARKET.key, "oracle_price_usd": Decimal("1.26"), "look_through_usd": Decimal("0.23"),
                      "hidden_bad_debt_usd": Decimal("1030")})


def policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"policy-{len(list(tmp_path.glob('policy*.yaml')))}.yaml"
    path.write_text(text)
    return path


def test_evaluate_each_limit(tmp_path: Path) -> None:
    strict = load_policy(policy(tmp_path, "min_backing_ratio: 0.95\nmax_expansion: 1.1\n"
                                          "fail_on_flags: [oracle-overvalues]\nmax_oracle_deviation: 0.05\n"))
    checks = {c.id: c for c in evaluate(findings(flags=[OVERVALUED], oracles=[READING]), strict, "alpha.yaml")}
    assert not checks["min-backing-ratio"].passed and not checks["max-expansion"].passed
    assert not checks["flag:oracle-overvalues"].passed
    # 1.26 / 0.23 - 1 = 4.47826..., from the typed figures (no rounded string parsed back)
    deviation = checks["max-oracle-deviation"]
    assert not deviation.passed and deviation.evidence["deviation"] == Decimal("1.26") / Decimal("0.23") - 1
    assert "447.8%" in deviation.message
    lenient = load_policy(policy(tmp_path, "min_backing_ratio: 0.5\nmax_expansion: 2\n"))
    assert all(c.passed for c in evaluate(findings(), lenient))
    unbounded = evaluate(findings(ratio="0", expansion=None), lenient)
    assert [c.passed for c in unbounded] == [False, False]
    assert "unbounded" in unbounded[1].message


def test_bad_policy_is_located(tmp_path: Path) -> None:
    from auditor.spec import SpecError

    with pytest.raises(SpecError) as info:
        load_policy(policy(tmp_path, "min_backing_ratio: 0.95\nmax_expansoin: 2\n"))
    assert info.value.line == 2 and "did you mean 'max_expansion'" in str(info.value)


def test_output_formats_have_their_standard_shapes(tmp_path: Path) -> None:
    strict = load_policy(policy(tmp_path, "min_backing_ratio: 0.95\nmax_expansion: 2\n"
                                          "fail_on_flags: [oracle-overvalues]\n"))
    checks = evaluate(findings(flags=[OVERVALUED], oracles=[READING]), strict, "protocols/alpha.yaml")
    assert set(FORMATS) == {"text", "json", "junit", "sarif", "github"}
    text = render(checks, "text")
    assert text.splitlines()[-1] == "1 passed, 2 failed"

    document = json.loads(render(checks, "json"))
    assert document["passed"] is False and len(document["checks"]) == 3

    suites = ET.fromstring(render(checks, "junit"))
    assert suites.tag == "testsuites" and suites.get("tests") == "3" and suites.get("failures") == "2"
    (suite,) = suites.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 3 and all(c.get("name") and c.get("classname") for c in cases)
    assert sum(1 for c in cases if c.find("failure") is not None) == 2
    assert all(c.find("failure").get("message") for c in cases if c.find("failure") is not None)

    sarif = json.loads(render(checks, "sarif"))
    assert sarif["version"] == "2.1.0" and sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert run["tool"]["driver"]["name"] == "reserve-auditor"
    assert len(run["results"]) == 2
    for result in run["results"]:
        assert result["ruleId"] in rule_ids and result["level"] in ("error", "warning", "note", "none")
        assert result["message"]["text"]
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "protocols/alpha.yaml"

    lines = render(checks, "github").splitlines()
    assert len(lines) == 3
    assert all(re.fullmatch(r"::(error|notice) file=[^,]+,title=[^:]+::.+", line) for line in lines)
    assert sum(line.startswith("::error") for line in lines) == 2


@pytest.fixture
def world(chain: Lab, tmp_path: Path) -> dict[str, Any]:
    """alpha: 1000 supply, 600 USDC verifiable (0.6); a 'vault' lends USDC against alpha and against a stray token."""
    lab, morpho = chain, chain.morpho
    treasury, vault, borrower = lab.accounts[3], lab.accounts[4], lab.accounts[5]
    alpha = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Alpha", "ALPHA", 6)
    stray = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Stray", "STRAY", 6)
    alpha.transact("mint", borrower, 1_000 * USDC)
    stray.transact("mint", borrower, 1_000 * USDC)
    lab.usdc.transact("mint", treasury, 600 * USDC)
    lab.usdc.transact("mint", vault, 1_000 * USDC)
    oracle = morpho.deploy_oracle(oracle_price("1.26", 6, 6)).address
    markets = [morpho.market_params(lab.usdc.address, token.address, lab.lltv, oracle) for token in (alpha, stray)]
    blue = morpho.morpho
    lab.usdc.transact("approve", blue.address, 1_000 * USDC, sender=vault)
    for token in (alpha, stray):
        token.transact("approve", blue.address, 1_000 * USDC, sender=borrower)
    calls = []
    for params in markets:
        morpho.create_market(params)
        calls += [(blue, "supply", (params.as_tuple(), 500 * USDC, 0, vault, b""), vault),
                  (blue, "supplyCollateral", (params.as_tuple(), 500 * USDC, borrower, b""), borrower),
                  (blue, "borrow", (params.as_tuple(), 400 * USDC, 0, borrower, borrower), borrower)]
    block = same_block(lab.url, calls)
    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{blue.address}\", from_block: 0}}\n")
    (folder / "alpha.yaml").write_text(
        "id: alpha\nname: Alpha\ntoken:\n  symbol: ALPHA\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{alpha.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    return {"folder": folder, "url": lab.url, "block": block, "vault": vault}


def run_check(world: dict[str, Any], policy_path: Path, *extra: str) -> tuple[int, str]:
    folder = world["folder"]
    result = CliRunner().invoke(main, ["check", "--policy", str(policy_path), "--registry",
                                       str(folder / "registry.yaml"), "--rpc", f"ethereum={world['url']}",
                                       "--block", f"ethereum={world['block']}", *extra])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_cli_exit_codes(world: dict[str, Any], tmp_path: Path) -> None:
    spec = str(world["folder"] / "alpha.yaml")
    lenient = policy(tmp_path, "min_backing_ratio: 0.5\nmax_expansion: 2\n")
    code, output = run_check(world, lenient, spec)
    assert code == 0, output
    assert "PASS  min-backing-ratio (alpha): backing ratio 60.0% >= 50.0%" in output
    strict = policy(tmp_path, "min_backing_ratio: 0.95\n")
    code, output = run_check(world, strict, spec, "--format", "junit")
    assert code == 1 and 'failures="1"' in output
    bad = policy(tmp_path, "min_backing_ration: 0.95\n")
    code, output = run_check(world, bad, spec)
    assert code == 2 and f"{bad}:1: min_backing_ration: unknown key" in output
    result = CliRunner().invoke(main, ["check", spec, "--policy", str(lenient), "--registry",
                                       str(world["folder"] / "registry.yaml"), "--rpc", "ethereum=http://127.0.0.1:9"],
                                env={"AUDITOR_RPC_RETRIES": "1"})
    assert result.exit_code == 2 and "connection failed" in result.output  # fail closed


def test_vault_mode_checks_every_collateral(world: dict[str, Any], tmp_path: Path) -> None:
    # The specs come from the registry's folder (a tmp dir here), not from ./protocols of the checkout.
    lenient = policy(tmp_path, "min_backing_ratio: 0.5\n")
    code, output = run_check(world, lenient, "--vault", world["vault"], "--chain", "ethereum")
    assert code == 1, output
    assert "PASS  min-backing-ratio (alpha)" in output
    assert "FAIL  verifiable-collateral" in output and "has no spec" in output
    allow = policy(tmp_path, "min_backing_ratio: 0.5\nallow_unverified_collateral: true\n")
    code, output = run_check(world, allow, "--vault", world["vault"], "--chain", "ethereum", "--format", "sarif")
    assert code == 0, output
    assert json.loads(output)["runs"][0]["results"] == []


def test_the_gate_fails_closed_when_it_cannot_decide(tmp_path: Path) -> None:
    strict = load_policy(policy(tmp_path, "min_backing_ratio: 0.1\nfail_on_flags: [oracle-frozen]\n"
                                          "max_oracle_deviation: 0.05\n"))
    # An incomplete audit decides nothing, whatever its partial figures say.
    incomplete = evaluate(findings(ratio="1", gaps=[Gap("ethereum", 7, "balanceOf", "header not found")]), strict)
    assert [(c.id, c.passed, c.decided) for c in incomplete] == [("complete-audit", False, False)]
    # A flag whose check could not run is not "not raised"; an oracle that could not be read is not "in range".
    unread = OracleReading(MARKET, "alpha", "ALPHA", None, Decimal("0.23"), None, Decimal(1), Decimal(0))
    checks = {c.id: c for c in evaluate(findings(ratio="1", oracles=[unread],
                                                 skipped=[Skipped("oracle-frozen", "old state pruned")]), strict)}
    assert checks["min-backing-ratio"].passed
    assert not checks["flag:oracle-frozen"].passed and not checks["flag:oracle-frozen"].decided
    assert not checks["max-oracle-deviation"].passed and not checks["max-oracle-deviation"].decided
    assert "UNDECIDED" in render(list(checks.values()), "text")


def test_policies_are_validated_like_specs(tmp_path: Path) -> None:
    from auditor.spec import SpecError

    for text, expected in [("fail_on_flags: [circular, under-backed]\n", "circular"),
                           ("{}\n", "checks nothing"),
                           ("min_backing_ratio: 0.5\nfail_on_flags: [under-backed, cirular-dependency]\n",
                            "circular-dependency")]:
        with pytest.raises(SpecError) as info:
            load_policy(policy(tmp_path, text))
        assert expected in str(info.value)


def test_hostile_text_is_inert_in_every_format() -> None:
    hostile = "x\x1b]8;;http://evil\x07click\x1b]8;;\x07\r\n::error::forged\x00\u202e"
    checks = evaluate(findings(flags=[Finding("under-backed", Severity.HIGH, "alpha", hostile, {"note": hostile})]),
                      Policy(fail_on_flags=("under-backed",)))
    for output_format in FORMATS:
        text = render(checks, output_format)
        assert "\x1b" not in text and "\x00" not in text and "\u202e" not in text and "\x07" not in text
    ET.fromstring(render(checks, "junit"))  # still well-formed XML
    assert all(line.startswith("::") for line in render(checks, "github").splitlines())
