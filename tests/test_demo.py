"""The whole Stream/Elixir reconstruction, audited from chain state: what an analyst would have seen."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_utils.crypto import keccak

from auditor.chain.rpc import ConfigError
from auditor.cli import main
from auditor.demo import REPORT_NAME, generation_time, run_demo
from auditor.lab import reconstruction
from auditor.lab.node import rpc
from auditor.lab.reconstruction import PARAMS_FILE, PIN_TIMES, STAGES, World, load_params, timestamp
from auditor.spec import SpecError

# Any fixed key will do: the reproducibility test compares signed pages, so both runs must sign alike. The module
# fixtures run before conftest's per-test cache dir, so they share the machine's compile cache (no 30 s compile).
TEST_KEY = keccak(text="reserve-auditor demo reproducibility test")


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_demo(out, quiet, signing=(TEST_KEY, "a fixed test key"))
    return out


@pytest.fixture(scope="module")
def report(demo_out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((demo_out / f"{REPORT_NAME}.json").read_text())
    return document


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """The reconstruction built again, nodes left running so tests can ask Morpho itself."""
    params = load_params()
    eth, plume = reconstruction.start_nodes(params)
    try:
        yield reconstruction.build(params, quiet, eth, plume)
    finally:
        eth.stop()
        plume.stop()


def figures(report: dict[str, Any], stage: str, issuer: str) -> dict[str, Any]:
    found: dict[str, Any] = report["stages"][stage]["audit"]["backing"]["issuers"][issuer]
    return found


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
    # ... and the concentration flag says so from the positions read (an issuer's own tokens are not counted).
    (concentrated,) = flags(report, "early-november", "concentration")
    assert concentrated["issuer"] == "elixir-deusd" and concentrated["evidence"]["holder_issuer"] == "stream-xusd"
    assert abs(Decimal(concentrated["evidence"]["share"]) - Decimal("0.9")) < Decimal("0.001")


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


def test_demo_writes_report_and_inputs(report: dict[str, Any], demo_out: Path) -> None:
    assert set(report["stages"]) == {"late-october", "early-november", "after-loss"}
    for path in report["inputs"].values():
        assert (demo_out / path).is_file()  # relative to the output folder, which the report must not name
    assert Decimal(report["headline"]["late-october"]["supply_usd"]) == Decimal("14500000")


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


# --- reproducibility ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def again(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second demo run; a module fixture, so it shares the compile cache with the first (see TEST_KEY)."""
    out = tmp_path_factory.mktemp("demo-again")
    run_demo(out, quiet, signing=(TEST_KEY, "a fixed test key"))
    return out


def test_second_run_writes_identical_bytes(demo_out: Path, again: Path) -> None:
    """Same parameters and key, another folder, fresh nodes: every file the demo writes is byte for byte the same,
    so the signed findings digest is too, and nothing names the run (folder, node URL, wall clock)."""
    first = {p.relative_to(demo_out): p.read_bytes() for p in sorted(demo_out.rglob("*")) if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in sorted(again.rglob("*")) if p.is_file()}
    assert Path(f"{REPORT_NAME}.json") in first and Path(f"{REPORT_NAME}.html") in first
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    for text in (content.decode() for content in first.values()):
        assert str(demo_out) not in text and "127.0.0.1" not in text and "localhost" not in text
    document = json.loads(first[Path(f"{REPORT_NAME}.json")])
    assert document["generated"] == PIN_TIMES["after-loss"]  # the latest pin, not the clock


def test_reconstruction_rebuilds_the_same_chains_on_fixed_block_times(
    world: World, report: dict[str, Any], demo_out: Path, tmp_path: Path
) -> None:
    params = load_params()
    assert world.pins == report["pins"]
    # same deployers and nonce order: the same addresses, hence the same registry and specs
    rebuilt = reconstruction.write_inputs(world, params, tmp_path)
    for name, path in rebuilt.items():
        assert path.read_bytes() == (demo_out / report["inputs"][name]).read_bytes()
    timeline = params["timeline"]
    loop, start = timestamp(timeline["loop"]), timestamp(params["start_time"])
    scheduled = {timestamp(timeline["early_november"]), timestamp(timeline["loss"]),
                 *(timestamp(t) for t in PIN_TIMES.values()),
                 *(start + k * timeline["deposits_every_days"] * 86_400 for k in (1, 2, 3)),  # the users' deposits
                 *(loop + k * timeline["loop_every_hours"] * 3600 for k in range(50))}  # the loop's rounds
    for chain, node in (("ethereum", world.eth), ("plume", world.plume)):
        for stage in STAGES:
            block = rpc(node.url, "eth_getBlockByNumber", [hex(world.pins[stage][chain]), False])
            assert block["hash"] == report["stages"][stage]["audit"]["pins"][chain]["hash"]
            assert int(block["timestamp"], 16) == timestamp(PIN_TIMES[stage])
        times = [int(rpc(node.url, "eth_getBlockByNumber", [hex(n), False])["timestamp"], 16)
                 for n in range(world.pins["after-loss"][chain] + 1)]
        assert times[0] == timestamp(params["start_time"])
        steps = {later for earlier, later in itertools.pairwise(times)
                 if later - earlier != params["timeline"]["block_seconds"]}
        assert steps <= scheduled  # every block a fixed interval after the last, or at a scheduled time


def test_debts_are_what_morpho_itself_charges_to_the_unit(world: World, report: dict[str, Any]) -> None:
    """The reader's interest model against Morpho's own accrual run at the pin, for every loan at every stage."""
    stream = world.actors["stream"]
    assert world.morpho is not None
    for stage in STAGES:
        reported = {p["details"]["market"].rsplit(":", 1)[1]: int(p["amount_raw"])
                    for p in report["stages"][stage]["audit"]["issuers"]["stream-xusd"]["positions"]
                    if p["kind"] == "debt"}
        expected = {"0x" + m.id.hex(): world.morpho.debt_at(m, stream, world.pins[stage]["plume"])
                    for m in world.markets.values()}
        assert reported == {market: debt for market, debt in expected.items() if debt}


def test_late_october_backing_is_users_usdc_less_morpho_interest(world: World, report: dict[str, Any]) -> None:
    """Every dollar Stream borrowed stays on the lending chain (in its vault or wallet), so what is verifiable is
    the users' USDC less the interest Morpho charged by the pin: to the unit of USDC."""
    params, block = load_params(), world.pins["late-october"]["plume"]
    stream, usdc = world.actors["stream"], world.plume_contracts["usdc"]
    assert world.morpho is not None
    holders = (stream, world.plume_contracts["xusd"].address)
    held = sum(usdc.call("balanceOf", holder, block=block) for holder in holders)
    owed = sum(world.morpho.debt_at(m, stream, block) for m in world.markets.values())
    interest = owed - held
    assert 0 < interest < held * 6 // 100 * 2 // 365  # under two days of 6% a year
    expected = Decimal(reconstruction.usd(params["users_usdc"]) - interest).scaleb(-6)
    figure = Decimal(report["stages"]["late-october"]["audit"]["backing"]["issuers"]["stream-xusd"]
                     ["verifiable_backing_usd"])
    exponent = figure.as_tuple().exponent  # exact to the precision the report states (micro-dollars today)
    assert isinstance(exponent, int)
    places = -exponent
    assert places >= 2
    assert figure == expected.quantize(Decimal(1).scaleb(-places))


def test_generation_time_comes_from_the_pins_or_source_date_epoch() -> None:
    pins = [timestamp(t) for t in PIN_TIMES.values()]
    assert generation_time(pins, {}) == PIN_TIMES["after-loss"]
    assert generation_time(pins, {"SOURCE_DATE_EPOCH": "1762300800"}) == "2025-11-05T00:00:00Z"
    for bad in ("yesterday", "-5", "1e9", "99999999999999999999"):
        with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
            generation_time(pins, {"SOURCE_DATE_EPOCH": bad})
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        generation_time([], {})


def test_timeline_out_of_order_is_a_located_error(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text(PARAMS_FILE.read_text().replace('loss: "2025-11-04T00:00:00Z"', 'loss: "2025-11-03T00:00:00Z"'))
    with pytest.raises(SpecError, match=r"timeline\.loss.*not after early-november pin"):
        load_params(bad)
    naive = tmp_path / "naive.yaml"
    naive.write_text(PARAMS_FILE.read_text().replace('"2025-10-01T00:00:00Z"', '"2025-10-01T00:00:00"'))
    with pytest.raises(SpecError, match=r"start_time.*zone"):
        load_params(naive)


def test_verify_rebuild_re_runs_the_demo_to_its_digest(demo_out: Path, tmp_path: Path) -> None:
    report = demo_out / f"{REPORT_NAME}.html"
    result = CliRunner().invoke(main, ["verify", str(report), "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "re-running the audit at the report's pins gives the same figures" in result.output
    # --rebuild is for the demo's report only, and never mixed with a node or a bundle.
    mixed = CliRunner().invoke(main, ["verify", str(report), "--rebuild", "--rpc", "ethereum=http://127.0.0.1:9"])
    assert mixed.exit_code == 2 and "--rebuild" in mixed.output


def test_the_demo_history_dates_every_default_limit_before_the_loss(report: dict[str, Any]) -> None:
    """The expansion rises from 1x (users' deposits) through 7.6x (the loop) to unbounded (Elixir's loans), and the
    default policy's expansion and backing limits are first crossed on 27 Oct, a week before the loss of 4 Nov."""
    history = report["history"]
    assert history["complete"] is True
    series = {row["point"]: row for row in history["series"]}
    assert Decimal(series["2025-10-20T12:00:00Z"]["expansion_ratio"]) == 1
    assert abs(Decimal(series["2025-10-28T12:00:00Z"]["expansion_ratio"]) / Decimal("7.6") - 1) < Decimal("0.01")
    assert series["2025-11-03T12:00:00Z"]["expansion_ratio"] is None  # unbounded: no verifiable backing left
    # The history's point at a pin is that pin's audit: the same figures.
    late = report["stages"]["late-october"]["audit"]["backing"]["issuers"]["stream-xusd"]
    assert series["2025-10-28T12:00:00Z"]["verifiable_backing_usd"] == late["verifiable_backing_usd"]
    crossings = history["crossings"]
    for check in ("check:max-expansion", "check:min-backing-ratio", "check:flag:self-issued-collateral"):
        assert crossings[check] == {"first": "2025-10-27T12:00:00Z", "last_clear": "2025-10-26T12:00:00Z"}
    assert crossings["check:flag:circular-dependency"]["first"] == "2025-11-01T12:00:00Z"
    loss = timestamp(load_params()["timeline"]["loss"])
    assert all(timestamp(c["first"]) < loss for name, c in crossings.items() if name.startswith("check:"))
