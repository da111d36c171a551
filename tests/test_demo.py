"""The whole Stream/Elixir reconstruction, audited from chain state: what an analyst would have seen."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.demo import run_demo
from auditor.lab.reconstruction import PARAMS_FILE


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_demo(tmp_path_factory.mktemp("demo"), lambda _line: None)


def figures(report: dict[str, Any], stage: str, issuer: str) -> dict[str, Any]:
    return report["stages"][stage]["audit"]["backing"]["issuers"][issuer]


def flags(report: dict[str, Any], stage: str, flag: str) -> list[dict[str, Any]]:
    return [f for f in report["stages"][stage]["audit"]["flags"] if f["id"] == flag]


def test_late_october_expansion_ratio_comes_out_of_chain_state(report: dict[str, Any]) -> None:
    xusd = figures(report, "late-october", "stream-xusd")
    assert Decimal(xusd["supply_usd"]) == Decimal("14500000.00")
    # $1.9M of users' USDC, less a day and a half of 6% interest on the loop's debts
    assert Decimal("1880000") < Decimal(xusd["verifiable_backing_usd"]) <= Decimal("1900000")
    assert abs(Decimal(xusd["expansion_ratio"]) / Decimal("7.6") - 1) < Decimal("0.01")
    deusd = figures(report, "late-october", "elixir-deusd")
    assert Decimal(deusd["backing_ratio"]) == 1  # deUSD still fully backed by USDT
    assert {"under-backed", "self-issued-collateral"} <= {f["id"] for f in report["stages"]["late-october"]["audit"]
                                                           ["flags"] if f["issuer"] == "stream-xusd"}


def test_late_october_loop_and_provenance(report: dict[str, Any]) -> None:
    trace = report["stages"]["late-october"]["trace"]
    (loop,) = trace["loops"]
    assert sorted(loop["issuers"]) == ["elixir-deusd", "stream-xusd"]
    assert set(loop["chains"]) == {"ethereum", "plume"}  # deUSD minted on ethereum, bridged, borrowed against
    # deUSD step + 7 xUSD iterations; the last mint is not borrowed against again
    assert loop["iteration_count"] == len(loop["iterations"]) >= 7
    totals = trace["provenance"]["totals"]
    assert Decimal(totals["minted_units"]) == Decimal("14500000")
    # 12.6M of the 14.5M xUSD were minted with borrowed money: 86.9%
    assert abs(Decimal(totals["borrowed_share"]) - Decimal("12.6") / Decimal("14.5")) < Decimal("0.001")
    by_issuer = {entry["issuer"]: entry for entry in loop["minted_by_issuer"]}
    assert Decimal(by_issuer["stream-xusd"]["units"]) == Decimal("14500000")
    assert abs(Decimal(by_issuer["stream-xusd"]["leverage"]) - Decimal("7.63")) < Decimal("0.01")


def test_early_november_circular_dependency(report: dict[str, Any]) -> None:
    (cycle,) = report["stages"]["early-november"]["audit"]["backing"]["cycles"]
    assert sorted(cycle["issuers"]) == ["elixir-deusd", "stream-xusd"]
    assert Decimal(cycle["cycle_gap_usd"]) > 0
    circular = flags(report, "early-november", "circular-dependency")
    assert {f["issuer"] for f in circular} == {"elixir-deusd", "stream-xusd"}
    deusd = figures(report, "early-november", "elixir-deusd")
    # 65% of reserves lent to Stream against xUSD, whose look-through value is ~0: only the USDT left counts
    assert Decimal(deusd["backing_ratio"]) == Decimal("0.35")
    xusd = figures(report, "early-november", "stream-xusd")
    assert xusd["expansion_ratio"] is None or Decimal(xusd["expansion_ratio"]) > Decimal("7.6")
    # Stream holds ~90% of deUSD
    held = Decimal(xusd["issued_holdings_tokens"]["elixir-deusd"])
    assert abs(held / Decimal(deusd["supply_tokens"]) - Decimal("0.9")) < Decimal("0.001")


def test_after_loss_oracles_hide_bad_debt(report: dict[str, Any]) -> None:
    overvalued = [f for f in flags(report, "after-loss", "oracle-overvalues") if f["issuer"] == "stream-xusd"]
    assert len(overvalued) == 2  # the outside lenders' xUSD market and Elixir's private one
    for flag in overvalued:
        evidence = flag["evidence"]
        assert Decimal(evidence["oracle_price_usd"]) == Decimal("1.26")
        assert Decimal(evidence["market_price_usd"]) == Decimal("0.23")
        assert Decimal(evidence["hidden_bad_debt_usd"]) > 0
    hidden = sum(Decimal(f["evidence"]["hidden_bad_debt_usd"]) for f in overvalued)
    assert hidden > Decimal("17000000")  # everything lent against xUSD is bad debt at look-through


def test_demo_writes_report_and_inputs(report: dict[str, Any]) -> None:
    assert set(report["stages"]) == {"late-october", "early-november", "after-loss"}
    for path in report["inputs"].values():
        assert Path(path).exists()
    assert report["headline"]["late-october"]["supply_usd"] == "14500000.00"


def test_bad_params_and_broken_node_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text(PARAMS_FILE.read_text().replace("users_usdc: 1_900_000", "users_usdc: lots"))
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "out"), "--params", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:" in result.output and "users_usdc" in result.output
    assert "Traceback" not in result.output

    monkeypatch.setenv("AUDITOR_ANVIL", str(tmp_path / "no-anvil-here"))
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "step 'start the ethereum node" in result.output and "npm ci" in result.output
    assert not (tmp_path / "out" / "stream-xusd-reconstruction.json").exists()


def test_after_loss_exposure_map_lists_every_lender(report: dict[str, Any]) -> None:
    exposure = report["stages"]["after-loss"]["audit"]["exposure"]["plume"]
    assert exposure["totals"]["markets"] == 2  # the outside lenders' xUSD market and Elixir's private one
    assert exposure["totals"]["suppliers"] == 4  # three outside lenders and Elixir
    elixir = next(m for m in exposure["markets"] if len(m["suppliers"]) == 1)
    (lender,) = elixir["suppliers"]
    assert lender["at_risk"] == lender["supplied"]  # Elixir's market is fully borrowed by Stream
    assert Decimal(exposure["totals"]["bad_debt_usd"]) == Decimal(exposure["totals"]["borrowed_usd"])


def test_after_loss_frozen_oracle_and_unexplained_yield(report: dict[str, Any]) -> None:
    frozen = flags(report, "after-loss", "oracle-frozen")
    assert frozen and all(f["issuer"] == "stream-xusd" for f in frozen)
    (unexplained,) = flags(report, "after-loss", "unexplained-yield")
    assert Decimal(unexplained["evidence"]["claimed_apy"]) == Decimal("0.18")
    assert Decimal(unexplained["evidence"]["explained_apy"]) < 0  # Stream pays 6% on its loops and earns nothing
