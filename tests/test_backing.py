"""Backing engine: hand-computed balance sheets, properties over random issuer graphs, and bad input."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auditor import model
from auditor.backing import BackingResult, solve, strongly_connected_components
from auditor.model import (
    BALANCE,
    COLLATERAL,
    DEBT,
    SUPPLY,
    VAULT_SHARE,
    BalanceSheet,
    Borrower,
    Deployment,
    HardAsset,
    Market,
    OffchainClaim,
    Position,
    Supply,
    Universe,
)

CHAIN = "ethereum"
USDC = "0x" + "a0" * 20
WETH = "0x" + "c0" * 20
UNKNOWN = "0x" + "dd" * 20
USDC_KEY = model.token_key(CHAIN, USDC)
WETH_KEY = model.token_key(CHAIN, WETH)
HARD = {
    USDC_KEY: HardAsset(USDC_KEY, "USDC", 6, Decimal(1)),
    WETH_KEY: HardAsset(WETH_KEY, "WETH", 18, Decimal("2.5")),
}
DECIMALS = {USDC: 6, WETH: 18}
EPS = Decimal("1e-9")


# ---------------------------------------------------------------------------------------------------------------
# Builders (also used by tests/test_risk.py).


def address(n: int) -> str:
    return f"0x{n:040x}"


def token_of(issuer: str) -> str:
    """Each test issuer 'A', 'B', ... has a token address derived from its name."""
    return address(0x7000 + sum(ord(c) * 256**k for k, c in enumerate(issuer)))


def account_of(issuer: str) -> str:
    return address(0x5000 + sum(ord(c) * 256**k for k, c in enumerate(issuer)))


def raw(tokens: Any, decimals: int) -> int:
    """Whole tokens (exact decimal) to raw units; refuses amounts that are not whole raw units."""
    value = Decimal(str(tokens)).scaleb(decimals)
    assert value == value.to_integral_value(), (tokens, decimals)
    return int(value)


def position(
    issuer: str,
    token: str,
    tokens: Any,
    *,
    kind: str = BALANCE,
    decimals: int | None = None,
    venue: str = "wallet",
    **details: Any,
) -> Position:
    places = DECIMALS.get(token, 18) if decimals is None else decimals
    return Position(
        chain=CHAIN,
        account=account_of(issuer),
        venue=venue,
        kind=kind,
        token=token,
        amount=raw(tokens, places),
        decimals=places,
        details=dict(details),
    )


def sheet(
    issuer: str,
    supply: Any,
    positions: list[Position] | None = None,
    *,
    par: Any = 1,
    offchain: list[OffchainClaim] | None = None,
    claimed_assets_usd: Any = None,
    claimed_apy: Any = None,
    escrowed: Any = 0,
) -> BalanceSheet:
    token = token_of(issuer)
    DECIMALS[token] = 18
    return BalanceSheet(
        issuer=issuer,
        symbol=f"{issuer}USD",
        par_usd=Decimal(str(par)),
        token_keys=frozenset({model.token_key(CHAIN, token)}),
        supply=Supply((Deployment(CHAIN, token, 18, raw(supply, 18), escrowed=raw(escrowed, 18)),)),
        positions=positions or [],
        offchain=offchain or [],
        claimed_assets_usd=None if claimed_assets_usd is None else Decimal(str(claimed_assets_usd)),
        claimed_apy=None if claimed_apy is None else Decimal(str(claimed_apy)),
    )


def market(
    key: str,
    loan: str,
    collateral: str,
    *,
    borrowers: list[tuple[str, Any, Any]],
    idle: Any = 0,
    supply_shares: int = 10**12,
) -> Market:
    """A market with the given borrowers (address, debt tokens, collateral tokens) and idle liquidity."""
    loan_decimals, collateral_decimals = DECIMALS.get(loan, 18), DECIMALS.get(collateral, 18)
    debts = [Borrower(who, raw(debt, loan_decimals), raw(coll, collateral_decimals)) for who, debt, coll in borrowers]
    borrowed = sum(b.debt for b in debts)
    return Market(
        key=key,
        chain=CHAIN,
        venue="morpho_blue",
        loan_token=loan,
        loan_decimals=loan_decimals,
        collateral_token=collateral,
        collateral_decimals=collateral_decimals,
        total_supply_assets=borrowed + raw(idle, loan_decimals),
        total_supply_shares=supply_shares,
        total_borrow_assets=borrowed,
        borrowers=tuple(debts),
    )


def universe(*sheets: BalanceSheet, markets: list[Market] | None = None, **kwargs: Any) -> Universe:
    return Universe(
        sheets={s.issuer: s for s in sheets},
        hard_assets=dict(HARD),
        markets={m.key: m for m in markets or []},
        **kwargs,
    )


def figures(result: BackingResult, issuer: str) -> dict[str, Any]:
    return result.as_dict()["issuers"][issuer]  # type: ignore[no-any-return]


def close(value: Decimal | None, expected: str) -> bool:
    return value is not None and abs(value - Decimal(expected)) < EPS


def num(figure: Any) -> Decimal:
    """A figure as the JSON carries it (an exact string), read back as the number it spells."""
    assert isinstance(figure, str), figure
    return Decimal(figure)


def nums(figures_: dict[str, Any]) -> dict[str, Decimal]:
    return {key: num(value) for key, value in figures_.items()}


def cents(figure: Any) -> Decimal:
    """A USD figure rounded to the cent: for values an iteration reaches only approximately."""
    return round(num(figure), 2)


def ratio6(figure: Any) -> Decimal:
    """A ratio rounded to six places: for values an iteration reaches only approximately."""
    return round(num(figure), 6)


def no_nan(result: BackingResult) -> str:
    """JSON-safe, and no figure is NaN or infinite (notes may quote the bad input they are about)."""
    text = json.dumps(result.as_dict(), allow_nan=False, sort_keys=True)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key not in ("notes", "reason", "label"):
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            assert "nan" not in value.lower() and "inf" not in value.lower(), value

    walk(json.loads(text))
    return text


# ---------------------------------------------------------------------------------------------------------------
# Exact cases, computed by hand.


def test_fully_backed_token() -> None:
    result = solve(universe(sheet("A", 100, [position("A", USDC, 100)])))
    a = figures(result, "A")
    assert result.converged
    assert num(a["backing_ratio"]) == Decimal("1")
    assert a["supply_tokens"] == "100"
    assert num(a["supply_usd"]) == Decimal("100")
    assert num(a["verifiable_backing_usd"]) == Decimal("100")
    assert nums(a["verifiable_by_class_usd"]) == {
        "hard": Decimal("100"), "issued": Decimal(0), "lending_supply": Decimal(0)}
    assert num(a["expansion_ratio"]) == Decimal("1")
    assert num(a["leverage"]) == Decimal("1")
    assert num(a["circular_backing_usd"]) == Decimal(0)
    assert a["cycle"] is None
    assert result.cycles == ()


def test_half_backed_token() -> None:
    # 200 tokens at par 1 against 40 WETH at 2.5 = 100 USD: r = 100 / 200 = 0.5, expansion 200 / 100 = 2.
    result = solve(universe(sheet("A", 200, [position("A", WETH, 40)])))
    a = figures(result, "A")
    assert num(a["backing_ratio"]) == num(a["claimed_ratio"]) == Decimal("0.5")
    assert num(a["verifiable_backing_usd"]) == Decimal("100")
    assert num(a["expansion_ratio"]) == Decimal("2")
    assert result.issuers["A"].backing_ratio == Decimal("0.5")  # exact: one step, no iteration error


def test_two_tokens_backing_each_other_are_fully_circular() -> None:
    # A holds all of B, B holds all of A, nothing else. From r = 0 nothing ever gets value (least fixed
    # point 0); from r = 1 each holds 100 tokens at par against 100 supply (fixed point 1).
    result = solve(
        universe(
            sheet("A", 100, [position("A", token_of("B"), 100)]),
            sheet("B", 100, [position("B", token_of("A"), 100)]),
        )
    )
    assert result.converged
    for issuer in "AB":
        f = figures(result, issuer)
        assert num(f["backing_ratio"]) == Decimal(0)
        assert num(f["claimed_ratio"]) == Decimal("1")
        assert num(f["verifiable_backing_usd"]) == Decimal(0)
        assert num(f["claimed_backing_usd"]) == Decimal("100")
        assert num(f["circular_backing_usd"]) == Decimal("100")
        assert f["expansion_ratio"] is None
        assert any("unbounded" in note for note in f["notes"])
        assert f["cycle"] == 0
    assert [c.issuers for c in result.cycles] == [("A", "B")]
    assert num(result.as_dict()["cycles"][0]["circular_backing_usd"]) == Decimal("200")


def xusd_deusd() -> Universe:
    """A (xUSD) and B (deUSD) lending to each other through two markets.

    A: supply 1000. Holds 670 USDC; posted 400 B in market M1 (outside lenders) and borrowed 200 USDC;
       posted 200 of its own A in market M2 and borrowed 300 USDC there.
    B: supply 500. Holds 50 USDC; is the only supplier of M2 (idle 0), whose one borrower is A.

    Closed form. With r_A, r_B the ratios and par 1:
      backing_A = 670 + 400 r_B - 200 - 300          (own A posted in M2 is worth 0 to A)
      backing_B = 50 + 1 * (0 + min(300, 200 r_A))   (M2 repays at most A's collateral by look-through)
    Guess the region 200 r_A < 300 (loan under-collateralised) and r < 1; then the linear system
      1000 r_A = 170 + 400 r_B,   500 r_B = 50 + 200 r_A
    gives r_A = (170*500 + 400*50) / (1000*500 - 400*200) = 105000 / 420000 = 0.25 and
    r_B = (50 + 200*0.25) / 500 = 0.2, inside the region (200*0.25 = 50 < 300). The loop gain is
    (400*200) / (1000*500) = 0.16 < 1, so this fixed point is unique: iteration from 0 and from 1 both reach it
    and the circular backing (fixed point from 1 minus from 0) is 0. What the cycle carries shows instead
    in the look-through gap: at par A would count 670 + 400 - 500 = 570 and B 50 + min(300, 200) = 250.
      A: gross 670 + 80 = 750, debt 500, net 250, expansion 1000/250 = 4, leverage 750/250 = 3.
      B: gross 50 + 50 = 100, net 100, expansion 500/100 = 5, leverage 1.
    """
    token_a, token_b = token_of("A"), token_of("B")
    m1 = market("ethereum:morpho_blue:m1", USDC, token_b, borrowers=[(account_of("A"), 200, 400)])
    m2 = market("ethereum:morpho_blue:m2", USDC, token_a, borrowers=[(account_of("A"), 300, 200)])
    a = sheet(
        "A",
        1000,
        [
            position("A", USDC, 670),
            position("A", token_b, 400, kind=COLLATERAL, venue="morpho_blue", market=m1.key),
            position("A", USDC, 200, kind=DEBT, venue="morpho_blue", market=m1.key),
            position("A", token_a, 200, kind=COLLATERAL, venue="morpho_blue", market=m2.key),
            position("A", USDC, 300, kind=DEBT, venue="morpho_blue", market=m2.key),
        ],
    )
    b = sheet(
        "B",
        500,
        [
            position("B", USDC, 50),
            position(
                "B", USDC, 300, kind=SUPPLY, venue="morpho_blue", market=m2.key, supply_shares=m2.total_supply_shares
            ),
        ],
    )
    return universe(a, b, markets=[m1, m2])


def test_xusd_deusd_shaped_loop_matches_closed_form() -> None:
    result = solve(xusd_deusd())
    assert result.converged
    assert close(result.issuers["A"].backing_ratio, "0.25")
    assert close(result.issuers["B"].backing_ratio, "0.2")
    a, b = figures(result, "A"), figures(result, "B")
    # The iteration reaches the fixed point only approximately: look-through figures are checked at the cent and
    # ratios at six places; figures that do not depend on r (hard assets, debts at par, par values) exactly.
    assert ratio6(a["backing_ratio"]) == Decimal("0.250000")
    by_class = a["verifiable_by_class_usd"]
    assert (num(by_class["hard"]), cents(by_class["issued"]), num(by_class["lending_supply"])) == (
        Decimal("670"), Decimal("80.00"), Decimal(0))
    assert (cents(a["gross_assets_usd"]), num(a["debt_usd"]), cents(a["net_assets_usd"])) == (
        Decimal("750.00"), Decimal("500"), Decimal("250.00"))
    assert cents(a["verifiable_backing_usd"]) == Decimal("250.00")
    assert ratio6(a["expansion_ratio"]) == Decimal("4.000000")
    assert ratio6(a["leverage"]) == Decimal("3.000000")
    assert a["self_held_tokens"] == "200"
    assert a["issued_holdings_tokens"] == {"A": "200", "B": "400"}
    assert num(a["backing_at_par_usd"]) == Decimal("570")
    assert cents(a["look_through_gap_usd"]) == Decimal("320.00")
    assert cents(a["circular_backing_usd"]) == Decimal("0.00")
    assert ratio6(b["backing_ratio"]) == Decimal("0.200000")
    by_class = b["verifiable_by_class_usd"]
    assert (num(by_class["hard"]), num(by_class["issued"]), cents(by_class["lending_supply"])) == (
        Decimal("50"), Decimal(0), Decimal("50.00"))
    assert cents(b["verifiable_backing_usd"]) == Decimal("100.00")
    assert ratio6(b["expansion_ratio"]) == Decimal("5.000000")
    assert num(b["leverage"]) == Decimal("1")  # no debt: gross = net, exactly
    assert num(b["backing_at_par_usd"]) == Decimal("250")
    assert cents(b["look_through_gap_usd"]) == Decimal("150.00")
    assert b["depends_on"] == ["A"]
    assert a["depends_on"] == ["A", "B"]  # A->A: posts its own token; A->B: holds B
    assert [c.issuers for c in result.cycles] == [("A", "B")]
    # every issued token is on the cycle
    assert (cents(a["cycle_gap_usd"]), cents(b["cycle_gap_usd"])) == (Decimal("320.00"), Decimal("150.00"))
    assert cents(result.as_dict()["cycles"][0]["cycle_gap_usd"]) == Decimal("470.00")


def test_three_issuer_cycle_with_one_external_hard_asset() -> None:
    # A: 45 USDC + 50 B; B: 50 C; C: 40 A; each supply 100 at par 1.
    #   r_C = 40 r_A / 100, r_B = 50 r_C / 100 = 0.2 r_A, r_A = (45 + 50 r_B) / 100 = 0.45 + 0.1 r_A
    #   => r_A = 0.45 / 0.9 = 0.5, r_B = 0.1, r_C = 0.2. Loop gain 0.1 < 1: unique fixed point, circular 0.
    #   At par: A = 95, B = 50, C = 40; look-through gap 95-50 = 45, 50-10 = 40, 40-20 = 20 (all of it the
    #   cycle's: with only the cycle-mates at par, the same numbers).
    result = solve(
        universe(
            sheet("A", 100, [position("A", USDC, 45), position("A", token_of("B"), 50)]),
            sheet("B", 100, [position("B", token_of("C"), 50)]),
            sheet("C", 100, [position("C", token_of("A"), 40)]),
        )
    )
    assert result.converged
    expected = {
        "A": (Decimal("0.500000"), Decimal("50.00"), Decimal("45.00")),
        "B": (Decimal("0.100000"), Decimal("10.00"), Decimal("40.00")),
        "C": (Decimal("0.200000"), Decimal("20.00"), Decimal("20.00")),
    }
    for issuer, (ratio, backing, gap) in expected.items():  # reached by iteration: at six places / the cent
        f = figures(result, issuer)
        assert (ratio6(f["backing_ratio"]), cents(f["verifiable_backing_usd"]), cents(f["look_through_gap_usd"])) == (
            ratio, backing, gap)
        assert cents(f["circular_backing_usd"]) == Decimal("0.00")
        assert cents(f["cycle_gap_usd"]) == gap
        assert f["cycle"] == 0
    assert [c.issuers for c in result.cycles] == [("A", "B", "C")]
    assert cents(figures(result, "A")["verifiable_by_class_usd"]["issued"]) == Decimal("5.00")


def test_holder_of_a_circular_pair_inherits_circular_backing_without_being_on_the_cycle() -> None:
    result = solve(
        universe(
            sheet("A", 100, [position("A", token_of("B"), 100)]),
            sheet("B", 100, [position("B", token_of("A"), 100)]),
            sheet("C", 100, [position("C", token_of("A"), 50), position("C", USDC, 10)]),
        )
    )
    c = figures(result, "C")
    assert (num(c["backing_ratio"]), num(c["claimed_ratio"]), num(c["circular_backing_usd"])) == (
        Decimal("0.1"), Decimal("0.6"), Decimal("50"))
    assert c["cycle"] is None
    assert result.cycle_of("C") is None
    assert result.cycle_of("A") is result.cycles[0]


def test_debt_in_an_issued_token_is_valued_by_look_through() -> None:
    # B: supply 100, 20 USDC: r_B = 0.2. A owes 50 B: debt 10, so 100 - 10 = 90 verifiable on a supply of 100.
    # With claims taken at face value A's debt is also at B's claimed ratio 0.2: no gap.
    result = solve(
        universe(
            sheet("A", 100, [position("A", USDC, 100), position("A", token_of("B"), 50, kind=DEBT, venue="otc")]),
            sheet("B", 100, [position("B", USDC, 20)]),
        )
    )
    a = figures(result, "A")
    assert (num(a["debt_usd"]), num(a["verifiable_backing_usd"]), num(a["backing_ratio"])) == (
        Decimal("10"), Decimal("90"), Decimal("0.9"))
    assert num(a["backing_at_par_usd"]) == Decimal("50")  # at par the B debt counts 50


def test_supply_position_pays_idle_plus_min_of_debt_and_collateral_not_the_oracle() -> None:
    # Market: 100 USDC idle; borrower X owes 300 USDC against 100 WETH (250 USD), Y owes 100 against 80 WETH
    # (200 USD). Repayable = 100 + min(300, 250) + min(100, 200) = 450. A has 40% of the shares: 180.
    m = market(
        "ethereum:morpho_blue:m",
        USDC,
        WETH,
        borrowers=[(address(0xB1), 300, 100), (address(0xB2), 100, 80)],
        idle=100,
        supply_shares=1000,
    )
    m = replace(m, oracle_price=10**40)  # an absurd oracle price must change nothing
    a = sheet("A", 360, [position("A", USDC, 200, kind=SUPPLY, venue="morpho_blue", market=m.key, supply_shares=400)])
    result = solve(universe(a, markets=[m]))
    f = figures(result, "A")
    assert num(f["verifiable_by_class_usd"]["lending_supply"]) == Decimal("180")
    assert num(f["backing_ratio"]) == Decimal("0.5")


def test_unknown_tokens_offchain_and_missing_markets_are_listed_not_counted() -> None:
    a = sheet(
        "A",
        100,
        [
            position("A", USDC, 10),
            position("A", UNKNOWN, "1.5"),
            position("A", USDC, 5, kind=SUPPLY, venue="morpho_blue", market="nowhere", supply_shares=1),
            position("A", UNKNOWN, 3, kind=DEBT, venue="otc"),
        ],
        offchain=[OffchainClaim("fund manager", Decimal(90))],
        claimed_assets_usd=100,
    )
    result = solve(universe(a))
    f = figures(result, "A")
    assert num(f["verifiable_backing_usd"]) == Decimal("10")
    assert num(f["unverifiable"]["offchain_usd"]) == Decimal("90")
    assert [(o["label"], num(o["usd"])) for o in f["unverifiable"]["offchain"]] == [("fund manager", Decimal("90"))]
    assert [set(o) for o in f["unverifiable"]["offchain"]] == [{"label", "usd"}]
    holdings = f["unverifiable"]["holdings"]
    assert [(h["kind"], h["tokens"]) for h in holdings] == [("balance", "1.5"), ("debt", "3"), ("supply", "5")]
    assert any("not subtracted" in note for note in f["notes"])
    assert num(f["claimed_assets_usd"]) == Decimal("100")


def test_vault_share_and_escrow() -> None:
    # Supply 150 minus 50 escrowed for a bridged copy = 100; vault shares already converted to 60 USDC.
    a = sheet("A", 150, [position("A", USDC, 60, kind=VAULT_SHARE, venue="erc4626")], escrowed=50)
    f = figures(solve(universe(a)), "A")
    assert (f["supply_tokens"], num(f["backing_ratio"])) == ("100", Decimal("0.6"))


def test_over_backed_issuer_caps_ratio_at_one_and_reports_expansion_below_one() -> None:
    # A is over-backed (200 on 100): r_A capped at 1, so B holding 100 A sees exactly 100.
    result = solve(
        universe(
            sheet("A", 100, [position("A", USDC, 200)]),
            sheet("B", 200, [position("B", token_of("A"), 100)]),
        )
    )
    assert num(figures(result, "A")["expansion_ratio"]) == Decimal("0.5")
    assert num(figures(result, "B")["backing_ratio"]) == Decimal("0.5")


def test_strongly_connected_components() -> None:
    graph = {"a": ["b"], "b": ["c", "a"], "c": ["d"], "d": ["c"], "e": ["e"], "f": ["a"]}
    assert strongly_connected_components(graph) == [("a", "b"), ("c", "d"), ("e",), ("f",)]
    # Deep chains must not hit the recursion limit.
    chain = {str(k): [str(k + 1)] for k in range(5000)}
    chain["5000"] = ["0"]
    assert len(strongly_connected_components(chain)[0]) == 5001


# ---------------------------------------------------------------------------------------------------------------
# Bad input.


def test_zero_supply_gives_notes_and_no_ratio() -> None:
    result = solve(
        universe(
            sheet("A", 0, [position("A", USDC, 10)]),
            sheet("B", 100, [position("B", token_of("A"), 5), position("B", USDC, 1)]),
        )
    )
    text = no_nan(result)
    a, b = figures(result, "A"), figures(result, "B")
    assert a["backing_ratio"] is None and a["claimed_ratio"] is None and a["expansion_ratio"] is None
    assert any("supply is zero" in note for note in a["notes"])
    assert num(a["verifiable_backing_usd"]) == Decimal("10")
    # B's A tokens: worth 0 when verifying (A has no ratio), par when taking claims at face value.
    assert (num(b["verifiable_backing_usd"]), num(b["claimed_backing_usd"])) == (Decimal("1"), Decimal("6"))
    assert "null" in text


def test_escrow_above_supply_and_bad_numbers_are_notes_not_crashes() -> None:
    a = sheet("A", 10, [position("A", USDC, 10)], escrowed=20)
    b = sheet("B", 10, [position("B", USDC, 10)], par="NaN", claimed_assets_usd="NaN")
    c = sheet("C", 10, [position("C", WETH, 1), position("C", USDC, -1)])
    u = universe(a, b, c)
    u.hard_assets[WETH_KEY] = replace(HARD[WETH_KEY], price_usd=Decimal("NaN"))
    result = solve(u)
    no_nan(result)
    assert any("escrow" in n for n in figures(result, "A")["notes"])
    assert figures(result, "B")["backing_ratio"] is None
    assert figures(result, "C")["unverifiable"]["holdings"][0]["token_key"] == WETH_KEY
    assert any("no usable price" in n for n in result.notes)


def test_iteration_cap_reports_non_convergence_with_bounds() -> None:
    # A holds all of B plus 1 USDC, B holds all of A: from 0 the ratios creep up by 0.01 per round trip and
    # only reach 1 after ~200 iterations. Capped at 3 the figures are lower bounds and say so.
    u = universe(
        sheet("A", 100, [position("A", token_of("B"), 100), position("A", USDC, 1)]),
        sheet("B", 100, [position("B", token_of("A"), 100)]),
    )
    capped = solve(u, max_iterations=3)
    assert not capped.converged and capped.iterations == 3
    assert any("did not converge" in n for n in capped.notes)
    assert close(capped.issuers["A"].backing_ratio, "0.02")  # 0.01, 0.01, 0.02
    text = no_nan(capped)
    assert json.loads(text)["converged"] is False
    full = solve(u)
    assert full.converged and full.issuers["A"].backing_ratio == 1
    assert not solve(u, max_iterations=0).converged


def test_bad_solver_arguments() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        solve(universe(), tolerance=Decimal(0))
    with pytest.raises(ValueError, match="max_iterations"):
        solve(universe(), max_iterations=-1)
    empty = solve(universe())
    assert empty.converged and empty.issuers == {} and empty.as_dict()["cycles"] == []


# ---------------------------------------------------------------------------------------------------------------
# Random issuer graphs.

ISSUER_IDS = ["i0", "i1", "i2", "i3"]
CENTS = st.integers(0, 10_000)  # amounts in hundredths of a token: every amount is an exact decimal
SUPPLY_CENTS = st.one_of(CENTS, st.integers(10_000, 1_000_000))


def _cents(n: int, decimals: int) -> int:
    return n * int(10 ** (decimals - 2))


@st.composite
def worlds(draw: st.DrawFn, grounded: bool = True) -> Universe:
    """Random issuers holding hard assets, each other's tokens, unknown tokens, outside debts, and lending
    to each other or to outsiders through markets. Every issuer borrower's market debt and collateral
    also appear on its balance sheet, as an adapter would read them.

    grounded=False: no hard asset anywhere on the asset side (markets lend issued tokens against issued
    tokens); hard debts are still allowed.
    """
    ids = ISSUER_IDS[: draw(st.integers(1, 4))]
    decimals = {i: draw(st.sampled_from([6, 18])) for i in ids}
    token = {i: address(0x1000 + k) for k, i in enumerate(ids)}
    account = {i: address(0x2000 + k) for k, i in enumerate(ids)}
    positions: dict[str, list[Position]] = {i: [] for i in ids}
    token_decimals = {USDC: 6, WETH: 18} | {token[i]: decimals[i] for i in ids}
    hard_tokens = [USDC, WETH]

    def add(owner: str, kind: str, tok: str, cents: int, venue: str = "wallet", **details: Any) -> None:
        positions[owner].append(
            Position(
                CHAIN,
                account[owner],
                venue,
                kind,
                tok,
                _cents(cents, token_decimals[tok]),
                token_decimals[tok],
                details=details,
            )
        )

    for i in ids:
        for _ in range(draw(st.integers(0, 4))):
            choice = draw(
                st.sampled_from(["hard", "issued", "unknown", "debt"] if grounded else ["issued", "unknown", "debt"])
            )
            if choice == "hard":
                add(i, draw(st.sampled_from([BALANCE, VAULT_SHARE])), draw(st.sampled_from(hard_tokens)), draw(CENTS))
            elif choice == "issued":
                add(i, draw(st.sampled_from([BALANCE, COLLATERAL])), token[draw(st.sampled_from(ids))], draw(CENTS))
            elif choice == "unknown":
                token_decimals[UNKNOWN] = 18
                add(i, BALANCE, UNKNOWN, draw(CENTS))
            else:
                add(i, DEBT, draw(st.sampled_from(hard_tokens)), draw(CENTS), venue="otc")

    markets: list[Market] = []
    for m in range(draw(st.integers(0, 2))):
        key = f"{CHAIN}:morpho_blue:m{m}"
        if grounded:
            loan = draw(st.sampled_from(hard_tokens))
            collateral = draw(st.sampled_from(hard_tokens + [token[i] for i in ids]))
        else:
            loan = token[draw(st.sampled_from(ids))]
            collateral = token[draw(st.sampled_from(ids))]
        borrowers: list[Borrower] = []
        who_list = draw(st.lists(st.sampled_from([*ids, "out0", "out1"]), max_size=3, unique=True))
        for who in who_list:
            debt, coll = draw(CENTS), draw(CENTS)
            if who in ids:
                add(who, COLLATERAL, collateral, coll, venue="morpho_blue", market=key)
                add(who, DEBT, loan, debt, venue="morpho_blue", market=key)
                borrower_address = account[who]
            else:
                borrower_address = address(0x3000 + int(who[-1]))
            borrowers.append(
                Borrower(borrower_address, _cents(debt, token_decimals[loan]), _cents(coll, token_decimals[collateral]))
            )
        suppliers = draw(st.lists(st.sampled_from(ids), max_size=len(ids), unique=True))
        shares = {i: draw(st.integers(1, 1000)) for i in suppliers}
        outside_shares = draw(st.integers(0, 1000))
        borrowed = sum(b.debt for b in borrowers)
        idle = _cents(draw(CENTS), token_decimals[loan])
        total_shares = sum(shares.values()) + outside_shares
        for i, s in shares.items():
            add(i, SUPPLY, loan, 1, venue="morpho_blue", market=key, supply_shares=s)
        markets.append(
            Market(
                key,
                CHAIN,
                "morpho_blue",
                loan,
                token_decimals[loan],
                collateral,
                token_decimals[collateral],
                total_supply_assets=borrowed + idle,
                total_supply_shares=total_shares,
                total_borrow_assets=borrowed,
                borrowers=tuple(borrowers),
            )
        )

    sheets = {
        i: BalanceSheet(
            issuer=i,
            symbol=i.upper(),
            par_usd=Decimal(draw(st.sampled_from(["1", "2", "0.5"]))),
            token_keys=frozenset({model.token_key(CHAIN, token[i])}),
            # Supplies up to 100x the largest holding, so most issuers are under-backed and the ratios
            # (not the cap at 1) carry the properties.
            supply=Supply((Deployment(CHAIN, token[i], decimals[i], _cents(draw(SUPPLY_CENTS), decimals[i])),)),
            positions=positions[i],
        )
        for i in ids
    }
    return Universe(sheets=sheets, hard_assets=dict(HARD), markets={m.key: m for m in markets})


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAP = 3000  # enough for every non-degenerate example; degenerate ones (loop gain exactly 1) are skipped


def ratio_or_zero(result: BackingResult, issuer: str) -> Decimal:
    ratio = result.issuers[issuer].backing_ratio
    return Decimal(0) if ratio is None else ratio


@PROPERTY_SETTINGS
@given(worlds())
def test_verifiable_never_exceeds_claimed_and_ratios_are_in_range(u: Universe) -> None:
    result = solve(u, max_iterations=CAP)
    no_nan(result)
    for f in result.issuers.values():
        assert f.verifiable_backing_usd <= f.claimed_backing_usd + EPS
        assert f.verifiable_backing_usd <= f.backing_at_par_usd + EPS
        if f.backing_ratio is None:
            assert f.supply_usd == 0 and f.claimed_ratio is None
            continue
        assert f.claimed_ratio is not None
        assert 0 <= f.backing_ratio <= f.claimed_ratio <= 1


@PROPERTY_SETTINGS
@given(worlds(), st.data())
def test_adding_hard_assets_never_lowers_any_ratio(u: Universe, data: st.DataObject) -> None:
    before = solve(u, max_iterations=CAP)
    richer = data.draw(st.sampled_from(sorted(u.sheets)))
    extra = position(richer, USDC, data.draw(st.integers(1, 10_000)))
    sheets = dict(u.sheets)
    sheets[richer] = replace(u.sheets[richer], positions=[*u.sheets[richer].positions, extra])
    after = solve(replace(u, sheets=sheets), max_iterations=CAP)
    assume(before.converged and after.converged)
    for issuer in u.sheets:
        assert ratio_or_zero(after, issuer) >= ratio_or_zero(before, issuer) - EPS
        assert after.issuers[issuer].verifiable_backing_usd >= before.issuers[issuer].verifiable_backing_usd - EPS


@PROPERTY_SETTINGS
@given(worlds(grounded=False))
def test_issuers_without_a_path_to_a_hard_asset_have_no_verifiable_backing(u: Universe) -> None:
    # Every iterate from r = 0 is exactly 0 here (0 * anything = 0), so this holds exactly, converged or not.
    result = solve(u, max_iterations=CAP)
    for f in result.issuers.values():
        assert f.verifiable_backing_usd == 0
        assert f.backing_ratio in (None, 0)


def conservation_sides(u: Universe, result: BackingResult) -> tuple[Decimal, Decimal]:
    """Both sides of the conservation inequality, for a universe whose loan tokens and debts are hard assets.

    LHS, what outside holders of all issuers can recover: sum over issuers j of par_j * r_j * O_j with
      O_j = supply_j - j-tokens held directly by any issuer (balance, vault_share, collateral; j included)
                     - sum over markets m of sigma_m * (j-tokens posted by borrowers that are not issuers),
      sigma_m = share of m's supply shares held by issuers.
    RHS, hard assets net of debts owed outside:
        hard assets held directly by issuers (balance, vault_share, collateral)
      + sum over m of sigma_m * (idle liquidity + sum over outside borrowers of min(debt, hard collateral))
      - for every issuer whose net assets at the verifiable ratios are >= 0: its outside debts (in full) plus
        (1 - sigma_m) * its debt to each market m.
    Why it holds: r_i * supply_usd_i <= max(0, net_i); summing over issuers, a claim on j counted in some
    issuer's assets is a j-token not held outside, a solvent borrower's debt cancels what its lenders count
    (only the share 1 - sigma_m is owed outside), and an insolvent issuer's debts are left out because its
    creditors, not its token holders, bear that loss.
    """
    owner = {next(iter(s.token_keys)): i for i, s in u.sheets.items()}
    issuer_accounts = {p.account.lower() for s in u.sheets.values() for p in s.positions}
    sigma: dict[str, Decimal] = {key: Decimal(0) for key in u.markets}
    for s in u.sheets.values():
        for p in s.positions:
            if p.kind == SUPPLY:
                market_ = u.markets[p.details["market"]]
                sigma[market_.key] += Decimal(p.details["supply_shares"]) / market_.total_supply_shares

    def tokens(amount: int, decimals: int) -> Decimal:
        return Decimal(amount).scaleb(-decimals)

    held = {i: Decimal(0) for i in u.sheets}
    hard = Decimal(0)
    for s in u.sheets.values():
        for p in s.positions:
            if p.kind in (BALANCE, VAULT_SHARE, COLLATERAL):
                if p.token_key in owner:
                    held[owner[p.token_key]] += tokens(p.amount, p.decimals)
                elif p.token_key in u.hard_assets:
                    hard += tokens(p.amount, p.decimals) * u.hard_assets[p.token_key].price_usd
    for m in u.markets.values():
        loan_price = u.hard_assets[model.token_key(CHAIN, m.loan_token)].price_usd
        hard += sigma[m.key] * tokens(m.idle, m.loan_decimals) * loan_price
        collateral_key = model.token_key(CHAIN, m.collateral_token)
        for b in m.borrowers:
            if b.address.lower() in issuer_accounts:
                continue
            if collateral_key in owner:
                held[owner[collateral_key]] += sigma[m.key] * tokens(b.collateral, m.collateral_decimals)
            else:
                debt_usd = tokens(b.debt, m.loan_decimals) * loan_price
                coll_usd = tokens(b.collateral, m.collateral_decimals) * u.hard_assets[collateral_key].price_usd
                hard += sigma[m.key] * min(debt_usd, coll_usd)
    owed_outside = Decimal(0)
    for i, s in u.sheets.items():
        if result.issuers[i].net_assets_usd < 0:
            continue
        for p in s.positions:
            if p.kind == DEBT:
                outside_share = 1 - sigma[p.details["market"]] if "market" in p.details else Decimal(1)
                owed_outside += outside_share * tokens(p.amount, p.decimals) * u.hard_assets[p.token_key].price_usd
    recoverable = sum(
        (s.par_usd * ratio_or_zero(result, i) * (s.supply.tokens - held[i]) for i, s in u.sheets.items()),
        Decimal(0),
    )
    return recoverable, hard - owed_outside


@PROPERTY_SETTINGS
@given(worlds())
def test_conservation_outside_holders_never_recover_more_than_the_hard_assets(u: Universe) -> None:
    result = solve(u, max_iterations=CAP)
    recoverable, hard_net = conservation_sides(u, result)
    assert recoverable <= hard_net + EPS


def scaled(u: Universe, factor: int) -> Universe:
    def position_(p: Position) -> Position:
        details = dict(p.details)
        if "supply_shares" in details:
            details["supply_shares"] *= factor
        return replace(p, amount=p.amount * factor, details=details)

    sheets = {
        i: replace(
            s,
            positions=[position_(p) for p in s.positions],
            supply=Supply(
                tuple(
                    replace(d, total_supply=d.total_supply * factor, escrowed=d.escrowed * factor)
                    for d in s.supply.deployments
                )
            ),
        )
        for i, s in u.sheets.items()
    }
    markets = {
        k: replace(
            m,
            total_supply_assets=m.total_supply_assets * factor,
            total_supply_shares=m.total_supply_shares * factor,
            total_borrow_assets=m.total_borrow_assets * factor,
            borrowers=tuple(replace(b, debt=b.debt * factor, collateral=b.collateral * factor) for b in m.borrowers),
        )
        for k, m in u.markets.items()
    }
    return replace(u, sheets=sheets, markets=markets)


@PROPERTY_SETTINGS
@given(worlds(), st.sampled_from([2, 7, 10**6]))
def test_scaling_every_amount_leaves_every_ratio_unchanged(u: Universe, factor: int) -> None:
    before = solve(u, max_iterations=CAP)
    after = solve(scaled(u, factor), max_iterations=CAP)
    assume(before.converged and after.converged)
    for issuer in u.sheets:
        assert abs(ratio_or_zero(after, issuer) - ratio_or_zero(before, issuer)) < EPS
        b, a = before.issuers[issuer].claimed_ratio, after.issuers[issuer].claimed_ratio
        assert (a is None) == (b is None)
        assert a is None or b is None or abs(a - b) < EPS


def shuffled(u: Universe, rng: random.Random) -> Universe:
    def shuffle_list(items: list[Any]) -> list[Any]:
        copy = list(items)
        rng.shuffle(copy)
        return copy

    sheets = {
        i: replace(u.sheets[i], positions=shuffle_list(u.sheets[i].positions)) for i in shuffle_list(list(u.sheets))
    }
    markets = {
        k: replace(u.markets[k], borrowers=tuple(shuffle_list(list(u.markets[k].borrowers))))
        for k in shuffle_list(list(u.markets))
    }
    hard = {k: u.hard_assets[k] for k in shuffle_list(list(u.hard_assets))}
    return Universe(sheets=sheets, hard_assets=hard, markets=markets, holders=u.holders)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.randoms(use_true_random=False))
def test_answer_does_not_depend_on_order(u: Universe, rng: random.Random) -> None:
    first = json.dumps(solve(u, max_iterations=CAP).as_dict(), sort_keys=True)
    again = json.dumps(solve(shuffled(u, rng), max_iterations=CAP).as_dict(), sort_keys=True)
    assert first == again
