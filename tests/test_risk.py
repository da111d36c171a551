"""Risk flags: each one fires on the pattern it names and stays quiet on a clean balance sheet."""

from __future__ import annotations

import json
from decimal import Decimal

from auditor import model
from auditor.backing import solve
from auditor.flags import (
    DETECTORS,
    SEVERITIES,
    CircularDependency,
    Concentration,
    Finding,
    FlagConfig,
    NoSupply,
    NotConverged,
    Opacity,
    OracleFrozen,
    SelfIssuedCollateral,
    UnderBacked,
    UnexplainedYield,
    UnsustainableYield,
    run_flags,
)
from auditor.model import COLLATERAL, SUPPLY, OffchainClaim, Universe
from tests.test_backing import (
    CHAIN,
    USDC,
    account_of,
    address,
    market,
    position,
    raw,
    sheet,
    token_of,
    universe,
    xusd_deusd,
)

BASE = tuple(d for d in DETECTORS if d not in (UnexplainedYield, OracleFrozen))


def flags(u: Universe, config: FlagConfig | None = None, **solve_args: int) -> list[Finding]:
    result = solve(u, **solve_args)  # type: ignore[arg-type]
    # The base detectors; unexplained-yield and oracle-frozen have their own tests (test_yields, test_oracles).
    return run_flags(u, result, config or FlagConfig(), BASE)


def ids(findings: list[Finding], issuer: str | None = "A") -> list[str]:
    return [f.id for f in findings if f.issuer == issuer]


def clean() -> Universe:
    """Fully backed, honest claims, modest yield, dispersed holders: nothing to flag."""
    a = sheet("A", 100, [position("A", USDC, 100)], claimed_assets_usd=100, claimed_apy="0.04")
    key = model.token_key(CHAIN, token_of("A"))
    return universe(a, holders={key: [(address(1), raw(30, 18)), (address(2), raw(20, 18))]})


def test_detectors_have_metadata() -> None:
    seen = set()
    for detector in DETECTORS:
        assert detector.ID and detector.ID not in seen
        assert detector.SEVERITY in SEVERITIES
        assert detector.HELP and "\n" not in detector.HELP
        seen.add(detector.ID)


def test_fully_backed_token_raises_no_flags() -> None:
    assert flags(clean()) == []


def test_circular_dependency_fires_on_a_mutual_pair_and_on_the_xusd_loop() -> None:
    pair = universe(
        sheet("A", 100, [position("A", token_of("B"), 100)]),
        sheet("B", 100, [position("B", token_of("A"), 100)]),
    )
    found = [f for f in flags(pair) if f.id == CircularDependency.ID]
    assert [f.issuer for f in found] == ["A", "B"]
    assert found[0].severity == "high"
    assert found[0].evidence["circular_backing_usd"] == Decimal("100")
    assert found[0].evidence["cycle"] == ["A", "B"]
    assert found[0].evidence["cycle_total_circular_backing_usd"] == Decimal("200")
    assert "taken at its word" in found[0].message
    # The xUSD loop has a unique fixed point (circular backing 0), but what the cycle adds at par is flagged.
    xusd = [f for f in flags(xusd_deusd()) if f.id == CircularDependency.ID]
    # Reached by iteration: the gaps are checked at the cent (backing at par does not depend on r: exact).
    assert [(f.issuer, round(f.evidence["cycle_gap_usd"], 2)) for f in xusd] == [
        ("A", Decimal("320.00")), ("B", Decimal("150.00"))]
    assert round(xusd[0].evidence["cycle_total_gap_usd"], 2) == Decimal("470.00")
    assert xusd[0].evidence["backing_at_par_usd"] == Decimal("570")
    assert "$570.00 if its cycle's tokens were worth par" in xusd[0].message


def test_circular_dependency_quiet_when_the_cycle_is_fully_backed() -> None:
    # A and B hold half of each other, but each also holds its whole supply in USDC: r = 1, nothing circular.
    # A also holds 50 of C, which is half backed and not on the cycle: a look-through gap of 25 that is not
    # the cycle's doing.
    u = universe(
        sheet("A", 100, [position("A", USDC, 100), position("A", token_of("B"), 50), position("A", token_of("C"), 50)]),
        sheet("B", 100, [position("B", USDC, 100), position("B", token_of("A"), 50)]),
        sheet("C", 100, [position("C", USDC, 50)]),
    )
    result = solve(u)
    assert result.issuers["A"].look_through_gap_usd == 25
    assert result.issuers["A"].cycle_gap_usd == 0
    found = run_flags(u, result, detectors=BASE)
    assert CircularDependency.ID not in [f.id for f in found]
    assert ids(found) == [SelfIssuedCollateral.ID]  # still holds a token of its cycle


def test_self_issued_collateral_fires_on_own_tokens_cycle_mates_and_own_collateral_loans() -> None:
    found = {(f.issuer, f.id): f for f in flags(xusd_deusd())}
    a = found[("A", SelfIssuedCollateral.ID)]
    assert a.evidence["self_held_tokens"] == Decimal("200")
    assert a.evidence["cycle_issuers_held_tokens"] == {"B": Decimal("400")}
    b = found[("B", SelfIssuedCollateral.ID)]
    assert b.evidence["cycle_issuers"] == ["A"]
    assert b.evidence["cycle_issuers_held_tokens"] == {}  # through its loan against A, not held directly
    # An issuer that lends against its own token.
    m = market("ethereum:morpho_blue:own", USDC, token_of("C"), borrowers=[(address(0xB0), 10, 20)])
    c = sheet(
        "C",
        10,
        [
            position("C", USDC, 10),
            position(
                "C", USDC, 10, kind=SUPPLY, venue="morpho_blue", market=m.key, supply_shares=m.total_supply_shares
            ),
        ],
    )
    own = [f for f in flags(universe(c, markets=[m])) if f.id == SelfIssuedCollateral.ID]
    assert len(own) == 1 and own[0].evidence["lends_against_own_token"] is True


def test_self_issued_collateral_quiet_without_own_or_cycle_tokens() -> None:
    # C holds B's token, but B does not hold C: no cycle, nothing self-issued.
    u = universe(
        sheet("B", 100, [position("B", USDC, 100)]),
        sheet("C", 100, [position("C", USDC, 50), position("C", token_of("B"), 50, kind=COLLATERAL)]),
    )
    assert SelfIssuedCollateral.ID not in [f.id for f in flags(u)]


def test_under_backed() -> None:
    half = flags(universe(sheet("A", 200, [position("A", USDC, 100)])))
    assert ids(half) == [UnderBacked.ID]
    assert half[0].evidence["backing_ratio"] == Decimal("0.5")
    assert half[0].evidence["expansion_ratio"] == Decimal("2")
    nearly = universe(sheet("A", 100, [position("A", USDC, 96)]))
    assert flags(nearly) == []
    assert ids(flags(nearly, FlagConfig(under_backed_threshold=Decimal("0.99")))) == [UnderBacked.ID]


def test_opacity_against_claimed_assets_and_without_claims() -> None:
    # Claims 100, 70 visible on chain: 30% cannot be verified.
    claimed = sheet(
        "A", 70, [position("A", USDC, 70)], claimed_assets_usd=100, offchain=[OffchainClaim("fund", Decimal(30))]
    )
    found = flags(universe(claimed))
    assert ids(found) == [Opacity.ID]
    assert found[0].evidence["opaque_share"] == Decimal("0.3")
    assert found[0].evidence["offchain_usd"] == Decimal("30")
    # No claim: 50 off-chain next to 50 on chain is half opaque (the off-chain half is never counted as backing).
    unclaimed = sheet("A", 50, [position("A", USDC, 50)], offchain=[OffchainClaim("fund", Decimal(50))])
    assert Opacity.ID in ids(flags(universe(unclaimed)))


def test_opacity_quiet_when_claims_are_visible() -> None:
    mostly = sheet("A", 90, [position("A", USDC, 90)], claimed_assets_usd=100)
    assert flags(universe(mostly)) == []  # 10% opaque <= 20%


def test_unsustainable_yield() -> None:
    u = universe(sheet("A", 100, [position("A", USDC, 100)], claimed_apy="0.18"))
    found = flags(u)
    assert ids(found) == [UnsustainableYield.ID]
    assert found[0].evidence["limit"] == Decimal("0.1")
    assert flags(u, FlagConfig(benchmark_lending_rate=Decimal("0.1"))) == []  # limit 0.2
    assert flags(universe(sheet("A", 100, [position("A", USDC, 100)], claimed_apy="0.08"))) == []


def test_concentration() -> None:
    key = model.token_key(CHAIN, token_of("A"))
    a = sheet("A", 100, [position("A", USDC, 100)])
    b = sheet("B", 10, [position("B", USDC, 10)])
    # B's account holds 60 of A's 100 tokens: one holder, 60%, and it is another issuer.
    u = universe(a, b, holders={key: [(account_of("B"), raw(60, 18)), (address(7), raw(40, 18))]})
    found = [f for f in flags(u) if f.id == Concentration.ID]
    assert [f.issuer for f in found] == ["A"]
    assert found[0].evidence["share"] == Decimal("0.6")
    assert found[0].evidence["holder_issuer"] == "B"
    assert Concentration.ID not in [f.id for f in flags(u, FlagConfig(ignored_holders=frozenset({account_of("B")})))]
    even = universe(a, holders={key: [(address(6), raw(50, 18)), (address(7), raw(50, 18))]})
    assert flags(even) == []  # exactly half is not "more than half"


def test_no_supply_and_not_converged() -> None:
    empty = flags(universe(sheet("A", 0)))
    assert ids(empty) == [NoSupply.ID]
    slow = universe(
        sheet("A", 100, [position("A", token_of("B"), 100), position("A", USDC, 1)]),
        sheet("B", 100, [position("B", token_of("A"), 100)]),
    )
    capped = flags(slow, max_iterations=2)
    assert NotConverged.ID in ids(capped, None)
    assert "lower bound" in next(f for f in capped if f.id == UnderBacked.ID).message
    assert NotConverged.ID not in ids(flags(slow), None)
    assert flags(clean()) == []


def test_findings_are_sorted_and_json_safe() -> None:
    found = flags(xusd_deusd())
    assert found
    ranks = [SEVERITIES.index(f.severity) for f in found]
    assert ranks == sorted(ranks)
    json.dumps([f.as_dict() for f in found], allow_nan=False)


def test_all_detectors_include_the_window_flags() -> None:
    from auditor.flags import all_detectors

    assert all_detectors() == DETECTORS and {d.ID for d in DETECTORS} == {d.ID for d in BASE} | {
        "unexplained-yield", "oracle-frozen"}
