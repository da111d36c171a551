"""`auditor history` on generated worlds whose backing changes at known blocks: the exact series, the exact
crossing dates, and a re-run from the cache that sends no eth_call (counted at a loopback proxy)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor import numbers
from auditor.cli import main
from auditor.history import Point, block_points, crossings, parse_every, time_points, to_csv
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract, accounts, install_multicall3
from auditor.lab.node import Anvil, rpc, start_anvil
from tests.faultproxy import FaultProxy

USDC = 10**6
DAY = 86_400
START = int(dt.datetime(2025, 9, 1, tzinfo=dt.UTC).timestamp())


@dataclass
class World:
    node: Anvil
    url: str
    truth: list[tuple[Decimal, Decimal]]  # per day: (aUSD supply, USDC the treasury holds) after that day's events
    folder: Path


@pytest.fixture
def anvil_node() -> Iterator[Anvil]:
    """A fresh chain per test, starting on 1 Sep 2025: the generator sets every block's time."""
    node = start_anvil(1, timestamp=START)
    try:
        yield node
    finally:
        node.stop()


def build(node: Anvil, folder: Path, seed: int, days: int) -> World:
    """One token, one treasury; every day at 01:00 a seeded event: mint aUSD (supply up), pay USDC into the
    treasury (backing up) or pay USDC out of it (backing down). The truth is the running totals."""
    rng = random.Random(seed)
    url = node.url
    owner, treasury, outsider = accounts(url)[:3]
    install_multicall3(url)
    built = compile_lab_contracts()
    usdc = Contract.deploy(url, built["LabToken"], "USD Coin (lab)", "USDC", 6)
    token = Contract.deploy(url, built["LabToken"], "Alpha USD", "aUSD", 6)
    supply, held = Decimal(1000), Decimal(1000)
    token.transact("mint", outsider, 1000 * USDC)
    usdc.transact("mint", treasury, 1000 * USDC)
    truth = []
    for day in range(days):
        rpc(url, "evm_setNextBlockTimestamp", [START + day * DAY + 3600])
        event = rng.choice(("mint", "in", "out", "none"))
        amount = rng.randint(1, 400)
        if event == "mint":
            token.transact("mint", outsider, amount * USDC)
            supply += amount
        elif event == "in":
            usdc.transact("mint", treasury, amount * USDC)
            held += amount
        elif event == "out" and held > amount:
            usdc.transact("transfer", outsider, amount * USDC, sender=treasury)
            held -= amount
        else:
            rpc(url, "evm_mine", [])
        truth.append((supply, held))
    rpc(url, "evm_setNextBlockTimestamp", [START + days * DAY])
    rpc(url, "evm_mine", [])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{usdc.address}\", decimals: 6, price: par}}\n")
    (folder / "alpha.yaml").write_text(
        "id: alpha\nname: Alpha\ntoken:\n  symbol: aUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    del owner
    return World(node, url, truth, folder)


def run(world: World, url: str, days: int, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [
        "history", str(world.folder / "alpha.yaml"), "--registry", str(world.folder / "registry.yaml"),
        "--rpc", f"ethereum={url}", "--from", "2025-09-01T12:00:00Z", "--to",
        f"2025-09-{days:02d}T12:00:00Z", "--every", "1d", *extra])
    return result.exit_code, result.output


def expected_crossing(truth: list[tuple[Decimal, Decimal]], limit: Decimal) -> tuple[int | None, int | None]:
    """The first day whose backing ratio is below `limit`, and the last day before it where it was not."""
    last_clear = None
    for day, (supply, held) in enumerate(truth):
        if held / supply < limit:
            return day, last_clear
        last_clear = day
    return None, last_clear


def label(day: int) -> str:
    return f"2025-09-{day + 1:02d}T12:00:00Z"


@pytest.mark.parametrize("seed", [3, 8])  # 3: under 0.95 from day 5 (held on day 4); 8: never
def test_history_series_and_crossings_are_exact_and_a_rerun_sends_no_eth_call(
        anvil_node: Anvil, tmp_path: Path, seed: int) -> None:
    days = 10
    world = build(anvil_node, tmp_path / "world", seed, days)
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_backing_ratio: 0.95\n")
    with FaultProxy(world.url) as proxy:
        code, output = run(world, proxy.url, days, "--policy", str(policy), "--json", str(tmp_path / "h.json"),
                           "--csv", str(tmp_path / "h.csv"))
        first_calls = proxy.state.methods["eth_call"]
    assert code == 0, output
    data = json.loads((tmp_path / "h.json").read_text())
    assert [row["point"] for row in data["series"]] == [label(d) for d in range(days)]
    for row, (supply, held) in zip(data["series"], world.truth, strict=True):
        assert row["complete"] is True
        assert Decimal(row["supply_usd"]) == supply
        assert Decimal(row["verifiable_backing_usd"]) == held
        ratio = min(Decimal(1), numbers.context().divide(held, supply))  # r never exceeds 1
        assert abs(Decimal(row["backing_ratio"]) - ratio) < Decimal("1e-50")
        assert Decimal(row["coverage"]) == 1  # minted, paid in and paid out between people and the issuer
    first, last_clear = expected_crossing(world.truth, Decimal("0.95"))
    crossing = data["crossings"].get("check:min-backing-ratio")
    if first is None:
        assert crossing is None
    else:
        assert crossing == {"first": label(first), "last_clear": None if last_clear is None else label(last_clear)}
        assert data["crossings"]["flag:under-backed"]["first"] == label(first)  # the flag's default threshold
    assert first_calls > 0
    # A re-run is served from the cache of pinned reads: the same bytes, and no eth_call reaches the node.
    with FaultProxy(world.url) as proxy:
        code, output = run(world, proxy.url, days, "--policy", str(policy), "--json", str(tmp_path / "again.json"))
        assert code == 0, output
        assert proxy.state.methods["eth_call"] == 0
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "h.json").read_bytes()
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].startswith("point,complete,supply_usd") and len(lines) == days + 1


def test_an_outage_point_is_kept_incomplete_and_never_dates_a_crossing(anvil_node: Anvil, tmp_path: Path) -> None:
    from tests.faultproxy import ItemFault

    days = 4
    world = build(anvil_node, tmp_path / "world", 5, days)
    fault = ItemFault("error", method="eth_call", count=None)  # every read: a node that keeps no state
    with FaultProxy(world.url, item_faults=[fault]) as proxy:
        code, output = run(world, proxy.url, days, "--json", str(tmp_path / "h.json"))
    assert code == 1, output
    assert "incomplete" in output
    data = json.loads((tmp_path / "h.json").read_text())
    assert data["complete"] is False and data["crossings"] == {}
    assert all(row["complete"] is False and row["why_incomplete"] for row in data["series"])


def test_points_and_steps_are_parsed_strictly() -> None:
    assert parse_every("1d") == dt.timedelta(days=1) and parse_every("30m") == dt.timedelta(minutes=30)
    for bad in ("", "1", "0d", "1y", "-1d", "1.5h"):
        with pytest.raises(Exception, match="--every"):
            parse_every(bad)
    start = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)
    points = time_points(start, start + dt.timedelta(days=2), dt.timedelta(days=1))
    assert [p.label for p in points] == ["2025-09-01T00:00:00Z", "2025-09-02T00:00:00Z", "2025-09-03T00:00:00Z"]
    assert [p.block for p in block_points("10:30:10")] == [10, 20, 30]
    for bad in ("10:5:1", "1:2", "a:b:c", "1:10:0"):
        with pytest.raises(Exception, match="--blocks"):
            block_points(bad)
    with pytest.raises(Exception, match="at most"):
        time_points(start, start + dt.timedelta(days=100), dt.timedelta(minutes=1))


def test_crossings_skip_incomplete_points() -> None:
    from auditor.history import Sample

    def sample(day: int, complete: bool, failed: list[str]) -> Sample:
        return Sample(Point(f"d{day}"), complete=complete, failed_checks=failed)

    samples = [sample(0, True, []), sample(1, False, ["max-expansion"]), sample(2, True, []),
               sample(3, True, ["max-expansion"]), sample(4, True, [])]
    assert crossings(samples) == {"check:max-expansion": {"first": "d3", "last_clear": "d2"}}


def test_csv_cells_from_a_chain_never_start_a_formula() -> None:
    data: dict[str, Any] = {"series": [{"point": "p", "complete": False, "pins": {}, "flags": [], "failed_checks": [],
                                        "why_incomplete": "=HYPERLINK(\"http://x\")", "supply_usd": "-5"}]}
    text = to_csv(data)
    assert "'=HYPERLINK" in text and ",-5," in text


def test_the_default_policy_is_the_example_policy() -> None:
    from auditor.gate import load_policy
    from auditor.policy import DEFAULT_POLICY

    example = Path(__file__).resolve().parent.parent / "examples" / "policy.yaml"
    assert load_policy(example) == DEFAULT_POLICY


def test_node_text_in_a_failed_point_reaches_the_terminal_and_csv_inert(anvil_node: Anvil, tmp_path: Path) -> None:
    from tests.faultproxy import ItemFault

    world = build(anvil_node, tmp_path / "world", 5, 2)
    hostile = {"code": -32000, "message": "EVIL\x1b]8;;http://x/\x07link\x1b[31m\r\nFAKE: all good\u202e"}
    fault = ItemFault("error", method="eth_call", count=None, error=hostile)
    with FaultProxy(world.url, item_faults=[fault]) as proxy:
        code, output = run(world, proxy.url, 2, "--csv", str(tmp_path / "h.csv"))
    assert code == 1
    assert "\x1b" not in output and "\u202e" not in output and "\r" not in output
    assert "EVIL\\x1b" in output
    csv_text = (tmp_path / "h.csv").read_text()
    assert "\x1b" not in csv_text and "\u202e" not in csv_text


def test_block_points_beyond_the_head_are_refused_before_any_audit(anvil_node: Anvil, tmp_path: Path) -> None:
    world = build(anvil_node, tmp_path / "world", 5, 1)
    result = CliRunner().invoke(main, [
        "history", str(world.folder / "alpha.yaml"), "--registry", str(world.folder / "registry.yaml"),
        "--rpc", f"ethereum={world.url}", "--blocks", "1:4999:1"])
    assert result.exit_code == 2 and "head is block" in result.output, result.output
