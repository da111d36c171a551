"""Oracle sampling over a window and the oracle-frozen flag: on anvil with real Morpho markets, and as pure data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest

from auditor import model
from auditor.backing import solve
from auditor.chain.plan import run_plan
from auditor.chain.reader import ChainClient
from auditor.chain.rpc import HttpTransport, RetryPolicy, Stats
from auditor.flags import OracleFrozen
from auditor.flags.base import DEFAULT_CONFIG, FlagConfig, FlagContext
from auditor.lab.deploy import Contract
from auditor.lab.morpho import oracle_price
from auditor.lab.node import rpc
from auditor.ledger import build_universe
from auditor.oracles import (
    OracleWatch,
    address_key,
    frozen_oracles,
    relative_move,
    sample_blocks,
    sample_markets,
    sample_oracle_prices,
    sample_pool_prices,
    watch_markets,
    watches_for_markets,
)
from auditor.spec import load_registry, load_spec
from tests.conftest import Lab
from tests.test_backing import USDC, market, position, sheet, token_of, universe

USDC_UNIT = 10**6
E18 = 10**18
KEY = "ethereum:morpho_blue:m"


@dataclass(frozen=True)
class WindowContext(FlagContext):
    """The proposed wiring: the audit attaches the sampled window to the flag context."""

    oracle_watches: tuple[OracleWatch, ...] = ()


def head(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


def watch(
    oracle: Sequence[int | None], market_prices: Sequence[str | None] = (), look_through: Sequence[str] = ()
) -> OracleWatch:
    """A window of consecutive blocks from 100: raw oracle answers, market prices and look-through values."""
    blocks = range(100, 100 + max(len(oracle), len(market_prices), len(look_through)))
    return OracleWatch(
        market=KEY, chain="ethereum", oracle="0x" + "0c" * 20, collateral=model.token_key("ethereum", token_of("X")),
        oracle_prices=tuple(zip(blocks, oracle, strict=False)),
        market_prices=tuple((b, None if p is None else Decimal(p))
                            for b, p in zip(blocks, market_prices, strict=False)),
        look_through=tuple((b, Decimal(p)) for b, p in zip(blocks, look_through, strict=False)),
        oracle_to_usd=Decimal(10) ** -36,
    )


# ------------------------------------------------------------------ pure


def test_relative_move_and_sample_blocks() -> None:
    move = relative_move([(3, Decimal("0.5")), (1, Decimal(1)), (2, None), (4, Decimal(0))])
    assert move is not None
    half, one = Decimal("0.5"), Decimal(1)
    assert (move.first, move.last, move.low, move.high, move.relative) == (one, half, half, one, half)
    assert (move.first_block, move.last_block, move.points) == (1, 3, 2)
    assert relative_move([(1, 5), (2, None)]) is None  # one readable value is no window
    assert sample_blocks(100, 200, 5) == [100, 125, 150, 175, 200]
    assert sample_blocks(100, 102, 5) == [100, 101, 102]
    assert sample_blocks(7, 9, 1) == [9]
    with pytest.raises(ValueError, match="cannot sample"):
        sample_blocks(9, 7, 2)


def test_frozen_oracle_rules() -> None:
    price = 126 * 10**34
    frozen = frozen_oracles([watch([price] * 3, ["1", "0.6", "0.23"])])
    assert [(f.truth, f.truth_move.relative, f.oracle.relative) for f in frozen] == [
        ("market price", Decimal("0.77"), Decimal(0))]
    # Tracking oracle: moved with the pool.
    assert frozen_oracles([watch([10**36, 6 * 10**35, 23 * 10**34], ["1", "0.6", "0.23"])]) == []
    # The truth moved exactly the threshold: not more than it.
    assert frozen_oracles([watch([price] * 2, ["1", "0.95"])]) == []
    assert len(frozen_oracles([watch([price] * 2, ["1", "0.9499"])])) == 1
    # An oracle creeping by less than 0.1% (accruing exchange rate) is as blind as a hard-coded one; 1% is not.
    assert len(frozen_oracles([watch([price, price + price // 2000], ["1", "0.5"])])) == 1
    assert frozen_oracles([watch([price, price + price // 100], ["1", "0.5"])]) == []
    assert frozen_oracles([watch([price, price + price // 100], ["1", "0.5"])], still_tolerance=Decimal("0.02"))
    # Look-through alone is enough, and the larger mover is reported.
    (through,) = frozen_oracles([watch([price] * 2, ["1", "0.98"], ["1", "0.2"])])
    assert through.truth == "look-through value" and through.market_price is not None
    # Unreadable samples are skipped; fewer than two readable values on either side means not assessed.
    assert len(frozen_oracles([watch([None, price, price], ["1", None, "0.5"])])) == 1
    assert frozen_oracles([watch([price, None], ["1", "0.5"])]) == []
    assert frozen_oracles([watch([price, price], ["1", None])]) == []
    assert frozen_oracles([watch([price, price])]) == []


def test_detector_on_plain_data() -> None:
    u = universe(sheet("X", 100, [position("X", USDC, 23)], claimed_apy=None))
    result = solve(u)
    frozen, tracking = watch([126 * 10**34] * 3, ["1", "0.6", "0.23"]), watch([10**36] * 3, ["1", "1", "1"])
    (finding,) = OracleFrozen([frozen, tracking]).detect(FlagContext(u, result, DEFAULT_CONFIG))
    assert (finding.id, finding.severity, finding.issuer) == ("oracle-frozen", "high", "X")
    assert finding.evidence["oracle_price_usd"] == Decimal("1.26")  # 1.26e36 raw x 1e-36: exact
    assert finding.evidence["truth_move"] == Decimal("0.77") and finding.evidence["oracle_move"] == 0
    assert finding.evidence["market_price"]["last"] == Decimal("0.23")
    data = finding.as_dict()["evidence"]  # the JSON spells each figure exactly
    assert (data["oracle_price_usd"], data["truth_move"], data["oracle_move"]) == ("1.26", "0.77", "0")
    assert finding.evidence["samples"]["oracle"][0] == [100, str(126 * 10**34)]
    assert "held XUSD at 1.26 USD across blocks 100..102" in finding.message
    # Attached to the context instead of given to the detector (run_flags builds detectors without arguments).
    attached = OracleFrozen().detect(WindowContext(u, result, DEFAULT_CONFIG, (frozen,)))
    assert [f.as_dict() for f in attached] == [finding.as_dict()]
    assert OracleFrozen().detect(FlagContext(u, result, DEFAULT_CONFIG)) == []  # nothing sampled: nothing said

    @dataclass(frozen=True)
    class Tolerant(FlagConfig):
        oracle_frozen_threshold: Decimal = Decimal("0.8")

    assert OracleFrozen([frozen]).detect(FlagContext(u, result, Tolerant())) == []


def test_watches_join_samples_with_markets() -> None:
    oracle = "0x" + "0C" * 20  # mixed case, as the chain layer returns addresses: keys are lowercase
    m = replace(market(KEY, USDC, token_of("X"), borrowers=[]), oracle=oracle)
    collateral = model.token_key("ethereum", token_of("X"))
    samples = {address_key("ethereum", oracle): [(1, 5), (2, 5)]}
    assert list(samples) == ["ethereum:0x" + "0c" * 20]
    (joined,) = watches_for_markets([m], universe().hard_assets, samples, {collateral: [(1, Decimal(1))]},
                                    market_price_sources={collateral: "pool p"})
    assert joined.oracle_prices == ((1, 5), (2, 5)) and joined.market_prices == ((1, Decimal(1)),)
    assert joined.market_price_source == "pool p" and joined.look_through == ()
    # USDC (6 decimals) per 18-decimal collateral: raw x 1e12 / 1e36 per whole token.
    assert joined.oracle_to_usd == Decimal(10) ** 12 / Decimal(10) ** 36
    assert watches_for_markets([m], {}, {}) == []  # oracle not sampled: not watched


# ------------------------------------------------------------------ on anvil


def pinned(url: str, block: int) -> ChainClient:
    stats = Stats()
    client = ChainClient("ethereum", 1, HttpTransport("ethereum", url, stats, RetryPolicy(attempts=2)), stats)
    client.pin(block)
    return client


def test_oracle_that_never_moves_while_the_pool_does_is_frozen(chain: Lab, tmp_path: Path) -> None:
    """Two markets lend USDC against xUSD: one oracle hard-coded at 1.26, one set to follow the pool.
    The pool's price goes 1.00 -> 0.60 -> 0.23 over the sampled blocks."""
    lab, morpho = chain, chain.morpho
    treasury, outsider = lab.accounts[3], lab.accounts[4]
    before = head(lab.url)  # no oracle exists yet at this block
    xusd = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Stream xUSD", "xUSD", 6)
    vault_token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Curated USDC", "cUSDC", 6)
    xusd.transact("mint", outsider, 1_000 * USDC_UNIT)
    vault_token.transact("mint", outsider, 200 * USDC_UNIT)
    pool = Contract.deploy(lab.url, lab.lab_contracts["ConstantSumPool"], xusd.address, lab.usdc.address, E18)
    frozen = morpho.deploy_oracle(oracle_price("1.26", 6, 6))
    tracking = morpho.deploy_oracle(oracle_price(1, 6, 6))
    markets = [morpho.market_params(lab.usdc.address, xusd.address, lab.lltv, o.address) for o in (frozen, tracking)]
    lab.usdc.transact("mint", treasury, 200 * USDC_UNIT)
    for params in markets:
        morpho.create_market(params)
        morpho.supply(params, 100 * USDC_UNIT, treasury)  # the curator's exposure: how its markets are found
    blocks = [head(lab.url)]
    for price in ("0.6", "0.23"):
        pool.transact("setPrice", int(Decimal(price) * E18))
        morpho.set_price(oracle_price(price, 6, 6), tracking.address)
        blocks.append(head(lab.url))

    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{morpho.morpho.address}\", from_block: 0}}\n"
        f"pools:\n  ethereum:\n    xusd_usdc: {{address: \"{pool.address}\", kind: constant_price, "
        f"base: \"{xusd.address}\", quote: \"{lab.usdc.address}\"}}\n")
    (tmp_path / "curator.yaml").write_text(
        "id: curator\nname: Curator\ntoken:\n  symbol: cUSDC\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{vault_token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: vault}}\n")
    (tmp_path / "xusd.yaml").write_text(
        "id: xusd\nname: xUSD\ntoken:\n  symbol: xUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{xusd.address}\"}}\n")
    registry = load_registry(tmp_path / "registry.yaml")
    specs = {name: load_spec(tmp_path / f"{name}.yaml", registry) for name in ("curator", "xusd")}
    universe_at_pin, _ = build_universe("curator", specs, registry, {"ethereum": pinned(lab.url, blocks[-1])})
    result = solve(universe_at_pin)
    assert len(universe_at_pin.markets) == 2 and "xusd" in universe_at_pin.sheets

    client = pinned(lab.url, blocks[-1])
    # Raw samples at earlier blocks of one pinned chain, every block in one round: the frozen oracle repeats
    # itself, the tracking one follows the pool.
    requests = client.stats.http_requests
    sampled = run_plan(client, sample_oracle_prices([frozen.address, tracking.address], [before, *blocks]))
    # One request to see whether Multicall3 is at the pin, then one batch for all four blocks.
    assert client.stats.http_requests - requests == 2 and sampled.unavailable == []
    assert sampled.series[frozen.address] == [(before, None)] + [(b, oracle_price("1.26", 6, 6)) for b in blocks]
    assert sampled.series[tracking.address] == [(before, None)] + [
        (b, oracle_price(p, 6, 6)) for b, p in zip(blocks, ("1", "0.6", "0.23"), strict=True)]
    by_getter = run_plan(client, sample_pool_prices([pool.address], blocks))
    by_registry = run_plan(client, sample_pool_prices(list(registry.pools["ethereum"].values()), blocks))
    assert by_getter.series == by_registry.series == {pool.address: [
        (b, Decimal(p)) for b, p in zip(blocks, ("1", "0.6", "0.23"), strict=True)]}

    chain_samples = run_plan(client, sample_markets(universe_at_pin, registry, "ethereum", blocks))
    watches = watch_markets(universe_at_pin, {"ethereum": chain_samples})
    context = WindowContext(universe_at_pin, result, DEFAULT_CONFIG, tuple(watches))
    (finding,) = OracleFrozen().detect(context)
    frozen_market = f"ethereum:morpho_blue:0x{markets[0].id.hex()}"
    assert (finding.id, finding.issuer, finding.evidence["market"]) == ("oracle-frozen", "xusd", frozen_market)
    assert finding.evidence["oracle_price_usd"] == Decimal("1.26") and finding.evidence["oracle_move"] == 0
    assert finding.evidence["truth"] == "market price" and finding.evidence["truth_move"] == Decimal("0.77")
    assert (finding.evidence["market_price"]["first"], finding.evidence["market_price"]["last"]) == (
        Decimal("1"), Decimal("0.23"))
    assert finding.evidence["market_price_source"] == f"constant_price pool xusd_usdc ({pool.address})"
    assert f"blocks {blocks[0]}..{blocks[-1]}" in finding.message
