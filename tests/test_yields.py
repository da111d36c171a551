"""Yield sources: APY maths, the unexplained-yield flag on a real Morpho market, and yield paid from principal."""

from __future__ import annotations

import decimal
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
from auditor.findings import plain as json_data
from auditor.flags import UnexplainedYield, run_flags
from auditor.flags.base import DEFAULT_CONFIG, FlagConfig, FlagContext
from auditor.lab.deploy import Contract
from auditor.lab.morpho import MarketParams, oracle_price
from auditor.lab.node import rpc
from auditor.ledger import build_universe
from auditor.model import COLLATERAL, DEBT, SUPPLY, VAULT_SHARE, Market, Universe
from auditor.numbers import PRECISION, exact
from auditor.spec import Registry, Spec, load_registry, load_spec
from auditor.yields import (
    SECONDS_PER_YEAR,
    SharePricePoint,
    SharePriceSample,
    analyse_yield,
    market_supply_apy,
    per_second_apy,
    ray_apy,
    sample_share_price,
    share_price_apy,
    share_price_growth,
    share_price_point,
    utilization,
    yield_sources,
)
from tests.conftest import Lab
from tests.support import same_block
from tests.test_backing import USDC, WETH, position, sheet, universe

USDC_UNIT = 10**6
WETH_UNIT = 10**18
CTX = decimal.Context(prec=PRECISION)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path / "cache"))


def num(figure: object) -> Decimal:
    """A figure as the JSON data carries it (an exact string), read back as the number it spells."""
    assert isinstance(figure, str), figure
    return Decimal(figure)


def continuous(rate_wad: int) -> Decimal:
    """The test's own statement of 'a per-second rate compounded to a year'."""
    with decimal.localcontext(CTX):
        return (Decimal(rate_wad) * SECONDS_PER_YEAR / Decimal(10**18)).exp() - 1


def lab_market(key: str, supplied: int, borrowed: int, rate: int, fee: int = 0) -> Market:
    return Market(key=key, chain="ethereum", venue="morpho_blue", loan_token=USDC, loan_decimals=6,
                  collateral_token=WETH, collateral_decimals=18, total_supply_assets=supplied,
                  total_supply_shares=supplied * 10**6, total_borrow_assets=borrowed,
                  details={"borrow_rate_per_s": rate, "fee": fee, "irm": "0xirm"})


# ------------------------------------------------------------------ pure maths


def test_rate_maths() -> None:
    assert per_second_apy(0) == 0
    five = int(Decimal("1.05").ln(CTX) / SECONDS_PER_YEAR * 10**18)  # truncated to a whole WAD per second
    assert per_second_apy(five) == continuous(five)
    assert abs(per_second_apy(five) - Decimal("0.05")) < Decimal("1e-9")
    # Aave: 5% a year in RAY, compounded per second.
    rate = 5 * 10**25
    with decimal.localcontext(CTX):
        expected = ((Decimal(1) + Decimal("0.05") / SECONDS_PER_YEAR).ln() * SECONDS_PER_YEAR).exp() - 1
    assert abs(ray_apy(rate) - expected) < Decimal("1e-50")
    assert round(ray_apy(rate), 6) == Decimal("0.051271")


def test_supply_apy_is_borrow_apy_times_utilization_times_one_minus_fee() -> None:
    rate = 1_547_125_956  # ~5% borrow APY
    market = lab_market("m", 1_000 * USDC_UNIT, 800 * USDC_UNIT, rate, fee=10**17)
    assert utilization(market) == Decimal("0.8")
    with decimal.localcontext(CTX):
        expected = continuous(rate) * Decimal("0.8") * Decimal("0.9")
    assert market_supply_apy(market) == expected
    assert utilization(replace(market, total_supply_assets=0)) == 0
    assert market_supply_apy(replace(market, details={})) is None


def mixed_universe() -> tuple[Universe, Decimal, Decimal]:
    """A: Morpho supply 1000 (80% used), Morpho debt 100, Aave supply 200 at 3%, Aave debt 50 at 6% (stable),
    a vault share of 300, 500 USDC idle and 10 WETH posted as collateral; supply 2000 tokens at par 1."""
    lend = lab_market("ethereum:morpho_blue:lend", 1_000 * USDC_UNIT, 800 * USDC_UNIT, 1_500_000_000)
    borrow = lab_market("ethereum:morpho_blue:borrow", 5_000 * USDC_UNIT, 4_000 * USDC_UNIT, 2_000_000_000)
    vault = "0x" + "be" * 20
    positions = [
        position("A", USDC, 1_000, kind=SUPPLY, venue="morpho_blue", market=lend.key, supply_shares=10**15),
        position("A", USDC, 100, kind=DEBT, venue="morpho_blue", market=borrow.key, borrow_shares=10**14),
        position("A", USDC, 200, kind=SUPPLY, venue="aave_v3", market=None, liquidity_rate_ray=3 * 10**25),
        position("A", USDC, 50, kind=DEBT, venue="aave_v3", market=None, variable_borrow_rate_ray=6 * 10**25,
                 rate_mode="stable"),
        position("A", USDC, 300, kind=VAULT_SHARE, venue="erc4626", vault_path=[vault]),
        position("A", USDC, 500),
        position("A", WETH, 10, kind=COLLATERAL, venue="morpho_blue", market=borrow.key),
    ]
    u = universe(sheet("A", 2_000, positions, claimed_apy="0.18"), markets=[lend, borrow])
    with decimal.localcontext(CTX):
        vault_apy = Decimal("0.07")
        earned = (1_000 * continuous(1_500_000_000) * Decimal("0.8") + 200 * ray_apy(3 * 10**25) + 300 * vault_apy)
        paid = 100 * continuous(2_000_000_000) + 50 * ray_apy(6 * 10**25)
    return u, earned, paid


def test_decomposition_of_every_kind_of_position() -> None:
    u, earned, paid = mixed_universe()
    result = solve(u)
    vault_key = model.token_key("ethereum", "0x" + "be" * 20)
    breakdown = analyse_yield(u, result, "A", vault_apys={vault_key: Decimal("0.07")})
    assert abs(breakdown.earned_usd_per_year - earned) < Decimal("1e-40")
    assert abs(breakdown.paid_usd_per_year - paid) < Decimal("1e-40")
    with decimal.localcontext(CTX):
        expected = (earned - paid) / 2_000
    assert breakdown.explained_apy is not None and abs(breakdown.explained_apy - expected) < Decimal("1e-40")
    assert breakdown.complete
    # As the audit document carries it (auditor.audit passes it through findings.plain): exact strings.
    doc = json_data(yield_sources(u, result, "A", vault_apys={vault_key: Decimal("0.07")}))
    assert doc["explained_apy"] == exact(breakdown.explained_apy)
    assert abs(num(doc["explained_apy"]) - expected) < Decimal("1e-40")
    assert num(doc["claimed_apy"]) == Decimal("0.18") and num(doc["benchmark_apy"]) == Decimal("0.05")  # FlagConfig's
    assert doc["value_basis"].startswith("face")
    by_where = {(s["venue"], s["kind"]): s for s in doc["sources"]}
    assert num(by_where[("morpho_blue", "supply")]["rate"]["utilization"]) == Decimal("0.8")
    assert by_where[("morpho_blue", "debt")]["direction"] == "paid"
    assert num(by_where[("morpho_blue", "debt")]["usd_per_year"]) < 0
    assert num(by_where[("wallet", "balance")]["apy"]) == 0  # hard-asset balances earn nothing
    assert by_where[("morpho_blue", "collateral")]["direction"] == "none"
    assert "stable-rate" in by_where[("aave_v3", "debt")]["note"]
    # Without a share-price window the vault share earns 0, and an explicit benchmark is used as given.
    plain = analyse_yield(u, result, "A", benchmark_apy=Decimal("0.04"))
    with decimal.localcontext(CTX):
        assert plain.earned_usd_per_year == breakdown.earned_usd_per_year - 300 * Decimal("0.07")
    assert plain.benchmark_apy == Decimal("0.04")
    # The difference carries the same full precision as the figures it is taken from (not the 28 digits of
    # whatever decimal context the caller happens to be in).
    with decimal.localcontext(CTX):
        assert abs(num(doc["claimed_minus_explained"]) - (Decimal("0.18") - expected)) < Decimal("1e-40")


def test_unreadable_rates_make_the_breakdown_incomplete() -> None:
    u = universe(sheet("A", 100, [
        position("A", USDC, 100, kind=SUPPLY, venue="morpho_blue", market="ethereum:morpho_blue:gone"),
    ], claimed_apy="0.18"))
    breakdown = analyse_yield(u, solve(u), "A")
    assert not breakdown.complete and breakdown.explained_apy == 0
    assert "not in the universe" in breakdown.notes[0]
    (finding,) = run_flags(u, solve(u), detectors=[UnexplainedYield])
    assert finding.evidence["complete"] is False and "at most" in finding.message


def test_unexplained_yield_threshold_and_override() -> None:
    market = lab_market("ethereum:morpho_blue:m", 1_000 * USDC_UNIT, 800 * USDC_UNIT, 1_547_125_956)
    explained = market_supply_apy(market)
    assert explained is not None

    def flags(claim: Decimal, config: FlagConfig = DEFAULT_CONFIG) -> list[str]:
        u = universe(sheet("A", 1_000, [
            position("A", USDC, 1_000, kind=SUPPLY, venue="morpho_blue", market=market.key, supply_shares=10**15),
        ], claimed_apy=claim), markets=[market])
        return [f.id for f in run_flags(u, solve(u), config, detectors=[UnexplainedYield])]

    assert flags(explained + Decimal("0.02")) == []  # at the margin: not flagged
    assert flags(explained + Decimal("0.0201")) == ["unexplained-yield"]

    @dataclass(frozen=True)
    class Looser(FlagConfig):
        unexplained_yield_margin: Decimal = Decimal("0.2")

    assert flags(Decimal("0.18"), Looser()) == []
    # No claim, or no supply: nothing to compare.
    u = universe(sheet("A", 0, [position("A", USDC, 10)], claimed_apy="0.5"), sheet("B", 10, [position("B", USDC, 10)]))
    assert run_flags(u, solve(u), detectors=[UnexplainedYield]) == []


def test_share_price_growth_compares_absolute_rises() -> None:
    start = SharePricePoint(1, 1_000, Decimal("1.0"), Decimal("1.1"))
    flat = share_price_growth(start, SharePricePoint(2, 1_000 + 86_400, Decimal("1.05"), Decimal("1.1")))
    assert flat.paid_from_principal and flat.unfunded_usd_per_token == Decimal("0.05")
    funded = share_price_growth(start, SharePricePoint(2, 1_000 + 86_400, Decimal("1.05"), Decimal("1.15")))
    assert not funded.paid_from_principal and funded.unfunded_usd_per_token == 0
    half = share_price_growth(start, SharePricePoint(2, 1_000, Decimal("1.05"), Decimal("1.125")))
    assert half.paid_from_principal and half.unfunded_usd_per_token == Decimal("0.025")
    assert half.share_price_apy is None  # no time passed
    falling = share_price_growth(start, SharePricePoint(2, 2_000, Decimal("0.9"), Decimal("1.0")))
    assert not falling.paid_from_principal
    tiny = share_price_growth(start, SharePricePoint(2, 2_000, Decimal("1.00005"), Decimal("1.1")))
    assert not tiny.paid_from_principal  # under the 1 bp tolerance
    assert num(json_data(flat.as_dict())["unfunded_usd_per_token"]) == Decimal("0.05")
    with decimal.localcontext(CTX):
        assert flat.share_price_apy == (Decimal("1.05").ln() * 365).exp() - 1


# ------------------------------------------------------------------ on anvil


def pinned(url: str, block: int) -> ChainClient:
    stats = Stats()
    client = ChainClient("ethereum", 1, HttpTransport("ethereum", url, stats, RetryPolicy(attempts=2)), stats)
    client.check_chain_id()
    client.pin(block)
    return client


def world(folder: Path, lab: Lab, issuer: str, token: Contract, accounts: list[str], extra: str = "",
          venues: bool = True) -> tuple[Registry, dict[str, Spec]]:
    venue = (f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{lab.morpho.morpho.address}\", from_block: 0}}\n"
             if venues else "")
    (folder / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n" + venue)
    listed = "".join(f"  - {{chain: ethereum, address: \"{a}\", label: account {k}}}\n" for k, a in enumerate(accounts))
    (folder / f"{issuer}.yaml").write_text(
        f"id: {issuer}\nname: {issuer}\ntoken:\n  symbol: {issuer.upper()}\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\naccounts:\n{listed}{extra}")
    registry = load_registry(folder / "registry.yaml")
    return registry, {issuer: load_spec(folder / f"{issuer}.yaml", registry)}


def test_unexplained_yield_on_a_fixed_rate_morpho_market(chain: Lab, tmp_path: Path) -> None:
    """The issuer's only position: 1000 USDC lent in a market 80% borrowed at a fixed ~5% borrow APY, fee 0.
    It earns ~4% on its supply of 1000 tokens while its spec claims 18%."""
    lab, morpho = chain, chain.morpho
    treasury, outsider = lab.accounts[3], lab.accounts[4]
    rate = int(Decimal("1.05").ln(CTX) / SECONDS_PER_YEAR * 10**18)
    irm = Contract.deploy(lab.url, morpho.compiled["FixedRateIrm"], rate)
    morpho.enable_irm(irm.address)
    oracle = morpho.deploy_oracle(oracle_price(2000, 6, 18))
    params = MarketParams(lab.usdc.address, lab.weth.address, oracle.address, irm.address, lab.lltv)
    morpho.create_market(params)
    token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Yield Co", "YLD", 6)
    token.transact("mint", outsider, 1_000 * USDC_UNIT)
    lab.usdc.transact("mint", treasury, 1_000 * USDC_UNIT)
    lab.weth.transact("mint", lab.borrower, WETH_UNIT)
    blue = morpho.morpho
    lab.usdc.transact("approve", blue.address, 1_000 * USDC_UNIT, sender=treasury)
    lab.weth.transact("approve", blue.address, WETH_UNIT, sender=lab.borrower)
    block = same_block(lab.url, [  # one block: no interest accrues between the pin and the market's last update
        (blue, "supply", (params.as_tuple(), 1_000 * USDC_UNIT, 0, treasury, b""), treasury),
        (blue, "supplyCollateral", (params.as_tuple(), WETH_UNIT, lab.borrower, b""), lab.borrower),
        (blue, "borrow", (params.as_tuple(), 800 * USDC_UNIT, 0, lab.borrower, lab.borrower), lab.borrower),
    ])
    registry, specs = world(tmp_path, lab, "yieldco", token, [treasury], "claims: {apy: 0.18}\n")
    universe_at_pin, _notes = build_universe("yieldco", specs, registry, {"ethereum": pinned(lab.url, block)})
    result = solve(universe_at_pin)

    # The expected APY from the chain's own values at the pin, by the formula stated in the issue.
    supplied, _, borrowed, _, _, fee = blue.call("market", params.id, block=block)
    chain_rate = irm.call("ratePerSecond", block=block)
    with decimal.localcontext(CTX):
        expected = continuous(chain_rate) * Decimal(borrowed) / Decimal(supplied) * (1 - Decimal(fee) / 10**18)
    assert (supplied, borrowed, fee) == (1_000 * USDC_UNIT, 800 * USDC_UNIT, 0)
    assert round(expected, 6) == Decimal("0.040000")  # (1.05 - 1) x 0.8, less a truncation of the rate far below 1e-6

    breakdown = analyse_yield(universe_at_pin, result, "yieldco")
    assert breakdown.explained_apy is not None and abs(breakdown.explained_apy - expected) < Decimal("1e-50")
    (finding,) = run_flags(universe_at_pin, result, detectors=[UnexplainedYield])
    assert (finding.id, finding.severity, finding.issuer) == ("unexplained-yield", "high", "yieldco")
    evidence = finding.evidence
    assert evidence["claimed_apy"] == Decimal("0.18")
    assert abs(evidence["explained_apy"] - expected) < Decimal("1e-50")
    with decimal.localcontext(CTX):
        assert evidence["unexplained_apy"] == evidence["claimed_apy"] - evidence["explained_apy"]
        assert abs(evidence["unexplained_apy"] - (Decimal("0.18") - expected)) < Decimal("1e-50")
        assert abs(evidence["earned_usd_per_year"] - 1_000 * expected) < Decimal("1e-47")
    assert evidence["supply_usd"] == Decimal("1000")
    assert round(evidence["earned_usd_per_year"], 2) == Decimal("40.00")
    assert evidence["margin"] == Decimal("0.02") and evidence["complete"] is True
    (source,) = evidence["sources"]
    assert source["market"] == f"ethereum:morpho_blue:0x{params.id.hex()}" and source["value_usd"] == Decimal("1000")
    assert "claims 18.00% APY" in finding.message and "explain 4.00% APY" in finding.message
    assert "($40.00 a year on $1,000.00 of supply)" in finding.message
    # The finding's JSON carries the exact figures.
    data = finding.as_dict()["evidence"]
    assert data["explained_apy"] == exact(evidence["explained_apy"]) and num(data["supply_usd"]) == Decimal("1000")

    # The same chain with an honest claim (within 2 points of what it earns): quiet.
    honest = replace(universe_at_pin.sheets["yieldco"], claimed_apy=Decimal("0.05"))
    quiet = Universe(sheets={"yieldco": honest}, hard_assets=universe_at_pin.hard_assets,
                     markets=universe_at_pin.markets)
    assert UnexplainedYield().detect(FlagContext(quiet, solve(quiet), DEFAULT_CONFIG)) == []


def share_prices(clients: Sequence[ChainClient], token: str) -> list[SharePriceSample]:
    """The sample plan run at each client's own pin."""
    return [run_plan(c, sample_share_price(c.chain, token, c.pinned.number, c.multicall)) for c in clients]


@pytest.mark.parametrize(("payer", "from_principal"), [("treasury", True), ("outsider", False)])
def test_share_price_rise_without_new_backing_is_paid_from_principal(
    chain: Lab, tmp_path: Path, payer: str, from_principal: bool
) -> None:
    """An ERC-4626 token whose issuer holds the vault's assets plus 100 USDC in its treasury. 50 USDC moved
    into the vault raise the share price 5% either way; only money from outside raises backing per token."""
    lab = chain
    treasury, depositor, outsider = lab.accounts[3], lab.accounts[4], lab.accounts[5]
    vault = Contract.deploy(lab.url, lab.lab_contracts["LabVault"], lab.usdc.address, "Yield USD", "yUSD")
    lab.usdc.transact("mint", depositor, 1_000 * USDC_UNIT)
    lab.usdc.transact("approve", vault.address, 1_000 * USDC_UNIT, sender=depositor)
    vault.transact("deposit", 1_000 * USDC_UNIT, depositor, sender=depositor)
    lab.usdc.transact("mint", treasury, 100 * USDC_UNIT)
    lab.usdc.transact("mint", outsider, 50 * USDC_UNIT)
    start = int(rpc(lab.url, "eth_blockNumber"), 16)
    rpc(lab.url, "evm_increaseTime", [86_400])
    lab.usdc.transact("transfer", vault.address, 50 * USDC_UNIT, sender=treasury if payer == "treasury" else outsider)
    end = int(rpc(lab.url, "eth_blockNumber"), 16)
    registry, specs = world(tmp_path, lab, "yusd", vault, [treasury, vault.address], venues=False)

    clients = [pinned(lab.url, start), pinned(lab.url, end)]
    samples = share_prices(clients, vault.address)
    assert [s.timestamp for s in samples] == [c.pinned.timestamp for c in clients]  # the Multicall3 clock
    assert [s.method for s in samples] == ["convertToAssets", "convertToAssets"]
    # OpenZeppelin (offset 0): assets = 1e6 x (totalAssets + 1) // (totalSupply + 1).
    assert samples[0].assets_per_share == 1
    assert samples[1].assets_per_share == Decimal(10**6 * (1_050 * USDC_UNIT + 1) // (1_000 * USDC_UNIT + 1)) / 10**6
    assert samples[1].assets_per_share == Decimal("1.049999")
    points = []
    for client, sample in zip(clients, samples, strict=True):
        universe_at_pin, _ = build_universe("yusd", specs, registry, {"ethereum": client})
        point = share_price_point(sample, universe_at_pin, solve(universe_at_pin), "yusd")
        assert point is not None
        points.append(point)
    assert points[0].backing_per_token_usd == Decimal("1.1")
    assert points[1].backing_per_token_usd == (Decimal("1.1") if from_principal else Decimal("1.15"))
    growth = share_price_growth(points[0], points[1])
    assert growth.paid_from_principal is from_principal
    assert growth.unfunded_usd_per_token == (Decimal("0.049999") if from_principal else 0)
    seconds = clients[1].pinned.timestamp - clients[0].pinned.timestamp
    with decimal.localcontext(CTX):
        assert growth.share_price_apy == (Decimal("1.049999").ln() * SECONDS_PER_YEAR / seconds).exp() - 1
    assert growth.as_dict()["paid_from_principal"] is from_principal
    # A plain ERC-20 has no price per share: the sample says so instead of inventing one.
    (plain,) = share_prices([clients[0]], lab.usdc.address)
    assert plain.assets_per_share is None and "neither" in plain.error


def test_the_audit_measures_vault_share_growth_over_its_window(chain: Lab, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The issuer's treasury holds shares of an ERC-4626 vault whose price rises 5% over the audit's window
    (outside money donated to the vault): the audit samples the share price at the window's start and at the
    pin and credits that growth to the vault position. Before the window the vault is not there: the check is
    then not evaluated, never a zero."""
    from auditor.audit import AuditRequest, run_audit
    from auditor.chain.reader import ConnectOptions

    window = 40  # the audit's window, shortened: mining its 50,400 blocks takes anvil over a minute
    monkeypatch.setattr("auditor.audit.ORACLE_WINDOW_BLOCKS", window)
    lab = chain
    treasury, outsider, holder = lab.accounts[3], lab.accounts[4], lab.accounts[5]
    vault = Contract.deploy(lab.url, lab.lab_contracts["LabVault"], lab.usdc.address, "Vault USD", "vUSD")
    token = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Hodl", "HODL", 6)
    token.transact("mint", holder, 1_000 * USDC_UNIT)
    lab.usdc.transact("mint", treasury, 1_000 * USDC_UNIT)
    lab.usdc.transact("approve", vault.address, 1_000 * USDC_UNIT, sender=treasury)
    vault.transact("deposit", 1_000 * USDC_UNIT, treasury, sender=treasury)
    extra = f"holdings:\n  - {{chain: ethereum, address: \"{vault.address}\", label: vault}}\n"
    registry, specs = world(tmp_path, lab, "hodl", token, [treasury], extra=extra, venues=False)
    options = ConnectOptions(rpc={"ethereum": lab.url}, use_cache=False)

    young = run_audit(AuditRequest(specs["hodl"], registry, options, specs=specs))
    assert young.complete and [s.check for s in young.skipped] == ["unexplained-yield"]

    start = int(rpc(lab.url, "eth_blockNumber"), 16) + 1
    rpc(lab.url, "anvil_mine", [hex(window), hex(6 * 3600)])
    lab.usdc.transact("mint", outsider, 50 * USDC_UNIT)
    lab.usdc.transact("transfer", vault.address, 50 * USDC_UNIT, sender=outsider)
    pin = int(rpc(lab.url, "eth_blockNumber"), 16)
    assert pin - window >= start  # the window opens after the deposit

    result = run_audit(AuditRequest(specs["hodl"], registry, options, specs=specs))
    assert result.complete and result.skipped == []
    clients = [pinned(lab.url, pin - window), pinned(lab.url, pin)]
    expected = share_price_apy(*share_prices(clients, vault.address))
    assert expected is not None and expected > 0
    (source,) = [s for s in result.document["yields"]["hodl"]["sources"] if s["kind"] == "vault_share"]
    assert Decimal(source["apy"]) == expected
