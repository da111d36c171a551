"""Aave v3 on anvil: the lab deployment works, and the adapter reports exact supply, debt and health."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from eth_utils.address import to_checksum_address

from auditor.adapters import Account, Collected, Scope, load_all
from auditor.adapters.aave_v3 import collect
from auditor.chain.reader import ChainClient
from auditor.chain.rpc import ChainError, HttpTransport, Stats
from auditor.lab import LabError
from auditor.lab.aave import AaveLab, aave_artifact, deploy_aave
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from auditor.model import DEBT, SUPPLY, Position
from auditor.spec import Registry, Venue
from tests.conftest import Lab

RAY = 10**27
HALF_RAY = RAY // 2
WAD = 10**18
SECONDS_PER_YEAR = 365 * 24 * 3600  # MathUtils.SECONDS_PER_YEAR (leap years ignored)
MAX_UINT = 2**256 - 1

USDC_SUPPLIED = 500_000 * 10**6
WETH_COLLATERAL = 10 * 10**18
USDC_BORROWED = 10_000 * 10**6
WETH_PRICE = 3000


# ------------------------------------------------------------------ Aave's maths (WadRayMath, MathUtils)


def ray_mul(a: int, b: int) -> int:
    return (a * b + HALF_RAY) // RAY


def linear_interest(rate: int, last_update: int, now: int) -> int:
    return RAY + rate * (now - last_update) // SECONDS_PER_YEAR


def compounded_interest(rate: int, last_update: int, now: int) -> int:
    """MathUtils.calculateCompoundedInterest: the binomial expansion to the third term."""
    exp = now - last_update
    if exp == 0:
        return RAY
    base_power_two = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate) // SECONDS_PER_YEAR
    second = exp * (exp - 1) * base_power_two // 2
    third = exp * (exp - 1) * max(exp - 2, 0) * base_power_three // 6
    return RAY + rate * exp // SECONDS_PER_YEAR + second + third


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(scope="module")
def aave(lab: Lab) -> Iterator[AaveLab]:
    """Aave with USDC and WETH listed, deployed once for this module and rolled back after it."""
    snapshot = rpc(lab.url, "evm_snapshot")
    try:
        yield deploy_aave(lab.url, lab.deployer, [lab.usdc, lab.weth], [1, WETH_PRICE])
    finally:
        rpc(lab.url, "evm_revert", [snapshot])


@dataclass
class Scenario:
    supply_block: int
    borrow_block: int


def lend_and_borrow(chain: Lab, aave: AaveLab) -> Scenario:
    chain.usdc.transact("mint", chain.lender, USDC_SUPPLIED, sender=chain.deployer)
    chain.weth.transact("mint", chain.borrower, WETH_COLLATERAL, sender=chain.deployer)
    supplied = aave.supply(chain.usdc, USDC_SUPPLIED, chain.lender)
    aave.supply(chain.weth, WETH_COLLATERAL, chain.borrower)
    borrowed = aave.borrow(chain.usdc, USDC_BORROWED, chain.borrower)
    return Scenario(int(supplied["blockNumber"], 16), int(borrowed["blockNumber"], 16))


def run(scope: Scope) -> tuple[Collected, int]:
    """The adapter's plan driven to its end; returns what it collected and how many rounds of reads it asked for
    (the adapter promises one batch per round)."""
    plan, rounds, answer = collect(scope), 0, None
    while True:
        try:
            request = plan.send(answer)
        except StopIteration as stop:
            return stop.value, rounds
        rounds += 1
        answer = scope.client.read(request.reads)


def make_scope(
    lab: Lab, pool: str, block: int | None = None, accounts: Sequence[Account] | None = None
) -> Scope:
    stats = Stats()
    client = ChainClient("ethereum", lab.chain_id, HttpTransport("ethereum", lab.url, stats), stats)
    client.check_chain_id()
    client.pin(block)
    if accounts is None:
        accounts = [
            Account(issuer="stream", address=lab.lender, label="lender"),
            Account(issuer="stream", address=lab.borrower, label="borrower"),
            Account(issuer="stream", address=lab.accounts[3], label="idle"),
        ]
    return Scope(
        chain="ethereum",
        client=client,
        registry=Registry(path="<test>", chains={}, assets={}, venues={}),
        accounts=list(accounts),
        tokens={},
        venue=Venue(name="aave_v3", chain="ethereum", address=pool, from_block=0),
    )


def only(positions: list[Position], account: str, kind: str, token: str) -> Position:
    found = [p for p in positions if p.account == account and p.kind == kind and p.token == token]
    assert len(found) == 1, found
    return found[0]


def reserve_data(aave: AaveLab, asset: str, block: int) -> tuple[int, ...]:
    data: tuple[int, ...] = aave.pool.call("getReserveData", asset, block=block)
    return data


# ------------------------------------------------------------------ the lab deployment


def test_deploy_aave_lists_reserves_fast(aave: AaveLab, lab: Lab) -> None:
    assert aave.deploy_seconds < 10
    listed = [to_checksum_address(a) for a in aave.pool.call("getReservesList")]
    assert listed == [lab.usdc.address, lab.weth.address]
    usdc = aave.reserve(lab.usdc)
    assert (usdc.symbol, usdc.decimals) == ("USDC", 6)
    assert aave.reserve(lab.weth).decimals == 18
    assert aave.oracle.call("getAssetPrice", lab.weth.address) == WETH_PRICE * 10**8
    assert to_checksum_address(aave.provider.call("getPool")) == aave.pool.address
    with pytest.raises(LabError, match="not listed"):
        aave.reserve(lab.wsteth)


def test_lab_supply_and_borrow_move_tokens(chain: Lab, aave: AaveLab) -> None:
    lend_and_borrow(chain, aave)
    usdc = aave.reserve(chain.usdc)
    assert aave.balance(usdc.a_token, chain.lender) == USDC_SUPPLIED
    assert aave.balance(usdc.variable_debt_token, chain.borrower) == USDC_BORROWED
    assert chain.usdc.call("balanceOf", chain.borrower) == USDC_BORROWED
    with pytest.raises(LabError, match="reverted"):  # 80% LTV of $30,000: $24,000 at most
        aave.borrow(chain.usdc, 20_000 * 10**6, chain.borrower)


# ------------------------------------------------------------------ the adapter


def test_adapter_is_registered() -> None:
    assert load_all()["aave_v3"] is collect


def test_collect_exact_positions_at_the_borrow_block(chain: Lab, aave: AaveLab) -> None:
    scenario = lend_and_borrow(chain, aave)
    scope = make_scope(chain, aave.pool.address, scenario.borrow_block)
    out, rounds = run(scope)
    assert rounds == 3  # reserve list; reserve data + symbols; balances + account data
    usdc, weth = aave.reserve(chain.usdc), aave.reserve(chain.weth)
    # Indexes are still 1 ray in the borrow block (no rate before it), so amounts equal what was moved.
    assert {(p.account, p.kind, p.token, p.amount) for p in out.positions} == {
        (chain.lender, SUPPLY, usdc.asset, USDC_SUPPLIED),
        (chain.borrower, SUPPLY, weth.asset, WETH_COLLATERAL),
        (chain.borrower, DEBT, usdc.asset, USDC_BORROWED),
    }
    stored = reserve_data(aave, usdc.asset, scenario.borrow_block)
    assert stored[2] > 0  # the borrow set a liquidity rate

    lent = only(out.positions, chain.lender, SUPPLY, usdc.asset)
    assert (lent.venue, lent.decimals, lent.symbol) == ("aave_v3", 6, "USDC")
    assert lent.details["issuer"] == "stream"
    assert lent.details["label"] == "lender"
    assert lent.details["reserve"] == usdc.asset
    assert lent.details["aToken"] == usdc.a_token
    assert lent.details["liquidity_rate_ray"] == stored[2]
    assert lent.details["market"] is None
    assert lent.details["used_as_collateral"] is True  # USDC has LTV > 0: the first supply enables it
    assert lent.details["total_debt_base"] == 0
    assert lent.details["health_factor"] == MAX_UINT

    posted = only(out.positions, chain.borrower, SUPPLY, weth.asset)
    assert (posted.decimals, posted.symbol, posted.details["used_as_collateral"]) == (18, "WETH", True)
    owed = only(out.positions, chain.borrower, DEBT, usdc.asset)
    assert owed.details["rate_mode"] == "variable"
    assert owed.details["debt_token"] == usdc.variable_debt_token
    assert owed.details["aToken"] == usdc.a_token
    assert owed.details["market"] is None
    # Base currency is USD with 8 decimals; HF = collateral * liquidation threshold / debt, in wad.
    collateral_base, debt_base = WETH_PRICE * 10 * 10**8, 10_000 * 10**8
    for position in (posted, owed):
        assert position.details["total_collateral_base"] == collateral_base
        assert position.details["total_debt_base"] == debt_base
        assert position.details["health_factor"] == collateral_base * 8250 // 10_000 * WAD // debt_base

    for position in out.positions:
        assert all(e.block == scenario.borrow_block for e in position.evidence)
        calls = [e.call.split("(")[0].rsplit(".", 1)[1] for e in position.evidence]
        assert {"getReservesList", "getReserveData", "balanceOf", "getUserAccountData"} <= set(calls)
    assert sum("face value" in note for note in out.notes) == 1
    assert not [p for p in out.positions if p.account == chain.accounts[3]]


def test_collect_pinned_before_the_borrow(chain: Lab, aave: AaveLab) -> None:
    scenario = lend_and_borrow(chain, aave)
    out, _ = run(make_scope(chain, aave.pool.address, scenario.supply_block))
    assert [(p.account, p.kind, p.amount) for p in out.positions] == [(chain.lender, SUPPLY, USDC_SUPPLIED)]


def test_collect_accrues_interest_to_the_pin(chain: Lab, aave: AaveLab) -> None:
    lend_and_borrow(chain, aave)
    rpc(chain.url, "evm_increaseTime", [30 * 24 * 3600])
    rpc(chain.url, "evm_mine")
    scope = make_scope(chain, aave.pool.address)
    pin = scope.client.pinned
    out, _ = run(scope)

    # Expected from the stored indexes and rates, as AToken/VariableDebtToken.balanceOf compute it.
    usdc = aave.reserve(chain.usdc)
    stored = reserve_data(aave, usdc.asset, pin.number)
    liquidity_index, liquidity_rate, borrow_index, borrow_rate = stored[1:5]
    last_update = stored[6]
    a_token = Contract(chain.url, usdc.a_token, aave_artifact("AToken").abi, "AToken")
    debt_token = Contract(chain.url, usdc.variable_debt_token, aave_artifact("VariableDebtToken").abi, "VDT")
    scaled_supply = a_token.call("scaledBalanceOf", chain.lender, block=pin.number)
    scaled_debt = debt_token.call("scaledBalanceOf", chain.borrower, block=pin.number)
    income = ray_mul(linear_interest(liquidity_rate, last_update, pin.timestamp), liquidity_index)
    debt_index = ray_mul(compounded_interest(borrow_rate, last_update, pin.timestamp), borrow_index)
    expected_supply = ray_mul(scaled_supply, income)
    expected_debt = ray_mul(scaled_debt, debt_index)

    assert only(out.positions, chain.lender, SUPPLY, usdc.asset).amount == expected_supply
    assert only(out.positions, chain.borrower, DEBT, usdc.asset).amount == expected_debt
    assert expected_supply > USDC_SUPPLIED
    assert expected_debt > USDC_BORROWED
    # Suppliers earn what borrowers pay minus the 10% reserve factor, so the lender gains less.
    assert expected_supply - USDC_SUPPLIED < expected_debt - USDC_BORROWED


def test_collect_reports_collateral_switched_off(chain: Lab, aave: AaveLab) -> None:
    lend_and_borrow(chain, aave)
    aave.set_collateral(chain.usdc, False, chain.lender)
    out, _ = run(make_scope(chain, aave.pool.address))
    lent = only(out.positions, chain.lender, SUPPLY, chain.usdc.address)
    assert lent.details["used_as_collateral"] is False
    assert lent.details["total_collateral_base"] == 0


def test_collect_needs_a_venue_and_accounts(chain: Lab, aave: AaveLab) -> None:
    scope = make_scope(chain, aave.pool.address, accounts=[])
    out, rounds = run(scope)
    assert out.positions == [] and rounds == 0
    scope = make_scope(chain, aave.pool.address)
    scope.venue = None
    assert run(scope)[0] == Collected()


def test_collect_fails_loudly_when_the_venue_is_not_a_pool(chain: Lab, aave: AaveLab) -> None:
    with pytest.raises(ChainError, match="reserve list"):
        run(make_scope(chain, chain.usdc.address))
