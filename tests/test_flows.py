"""Flow graph, recursive borrow loops and mint provenance on hand-built event lists (no node)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.flows import (
    ACCOUNT,
    ESCROW,
    ISSUER_CONTRACT,
    VENUE,
    ZERO_ADDRESS,
    FlowEvent,
    Labelling,
    MarketLabel,
    NodeLabel,
    TokenLabel,
    analyze,
)
from auditor.model import token_key


def addr(n: int) -> str:
    return f"0x{n:040x}"


X = addr(0x1000)  # alpha's treasury
Y = addr(0x2000)  # beta's treasury
USER = addr(0x3000)
LENDER = addr(0x4000)
BUNDLER = addr(0x5000)
POOL = addr(0x6000)
ALPHA = addr(0xA1)  # alpha's vault is its token (IssuerVault)
BETA = addr(0xB1)
BRIDGED_ALPHA = addr(0xA2)
BRIDGED_BETA = addr(0xB2)
ESCROW_A = addr(0xEA)
ESCROW_B = addr(0xEB)
USDC = addr(0xC1)
WETH = addr(0xE1)
MORPHO = addr(0xD1)
DECIMALS = {USDC: 6, ALPHA: 6, BETA: 18, WETH: 18, BRIDGED_ALPHA: 6, BRIDGED_BETA: 18}
U = 10**6  # one USDC or ALPHA
B = 10**18  # one BETA or WETH


def market(chain: str, name: str) -> str:
    return f"{chain}:morpho_blue:0x{name}"


@dataclass
class Tape:
    """Writes events as a chain would: blocks, transactions, log indexes."""

    chain: str = "ethereum"
    block: int = 100
    log_index: int = 0
    events: list[FlowEvent] = field(default_factory=list)
    count: int = 0

    def next_block(self) -> None:
        self.block += 1
        self.log_index = 0

    def tx(self, *moves: tuple[Any, ...]) -> str:
        self.count += 1
        tx_hash = f"0x{self.chain}-{self.count}"
        for kind, token, amount, src, dst, *rest in moves:
            self.events.append(FlowEvent(
                self.chain, self.block, self.log_index, tx_hash, kind, token, token_key(self.chain, token), amount,
                DECIMALS[token], src, dst, rest[0] if rest else None, rest[1] if len(rest) > 1 else None))
            self.log_index += 1
        return tx_hash


def t(token: str, amount: int, src: str, dst: str) -> tuple[Any, ...]:
    return ("transfer", token, amount, src, dst)


def minted(token: str, amount: int, to: str) -> tuple[Any, ...]:
    return ("mint", token, amount, ZERO_ADDRESS, to)


def deposit(vault: str, amount: int, by: str, scale: int = 1) -> list[tuple[Any, ...]]:
    return [t(USDC, amount, by, vault), minted(vault, amount * scale, by)]


def borrow(mkt: str, amount: int, by: str, token: str = USDC) -> list[tuple[Any, ...]]:
    # Morpho logs Borrow, then the loan token's Transfer: the tracer keeps the first, drops the second
    return [("borrow", token, amount, MORPHO, by, mkt, by), t(token, amount, MORPHO, by)]


def post(mkt: str, token: str, amount: int, by: str) -> list[tuple[Any, ...]]:
    return [("supply_collateral", token, amount, by, MORPHO, mkt, by), t(token, amount, by, MORPHO)]


def world(chains: tuple[str, ...] = ("ethereum",)) -> Labelling:
    lab = Labelling()
    for chain in chains:
        def key(address: str, chain: str = chain) -> str:
            return token_key(chain, address)

        lab.addresses[key(X)] = NodeLabel(ACCOUNT, "alpha treasury", "alpha")
        lab.addresses[key(Y)] = NodeLabel(ACCOUNT, "beta treasury", "beta")
        lab.addresses[key(ALPHA)] = NodeLabel(ISSUER_CONTRACT, "ALPHA", "alpha")
        lab.addresses[key(BETA)] = NodeLabel(ISSUER_CONTRACT, "BETA", "beta")
        lab.addresses[key(MORPHO)] = NodeLabel(VENUE, "morpho_blue")
        lab.tokens[key(USDC)] = TokenLabel("USDC", 6)
        lab.tokens[key(WETH)] = TokenLabel("WETH", 18)
        lab.tokens[key(ALPHA)] = TokenLabel("ALPHA", 6, "alpha")
        lab.tokens[key(BETA)] = TokenLabel("BETA", 18, "beta")
        for name, collateral in (("a", ALPHA), ("b", BETA), ("e", WETH), ("ba", BRIDGED_ALPHA),
                                 ("bb", BRIDGED_BETA)):
            lab.markets[market(chain, name)] = MarketLabel("morpho_blue", key(USDC), key(collateral))
    return lab


def units(value: str) -> Decimal:
    return Decimal(value)


def single_loop(tape: Tape, seed: int, ltv_percent: int, k: int, noise: bool = True, stray: bool = False) -> list[int]:
    """Outside money in, then k turns of post -> borrow -> deposit; returns the borrowed amounts."""
    mkt = market(tape.chain, "a")
    tape.tx(t(USDC, seed, LENDER, X))
    if noise:
        tape.tx(t(USDC, 7 * U, USER, LENDER))  # same block, unrelated
    tape.next_block()
    tape.tx(*deposit(ALPHA, seed, X))
    if noise:
        tape.tx(*deposit(ALPHA, 50 * U, USER))  # a clean outside mint in the same block
        tape.tx(t(ALPHA, 10 * U, USER, LENDER))
    collateral = seed
    borrowed = []
    for _ in range(k):
        tape.next_block()
        if noise:
            tape.tx(("supply", USDC, 3 * U, LENDER, MORPHO, mkt, LENDER), t(USDC, 3 * U, LENDER, MORPHO))
        tape.tx(*post(mkt, ALPHA, collateral, X))
        if noise:
            tape.tx(t(USDC, 1 * U, USER, LENDER))
        if stray:
            tape.tx(t(USDC, 1 * U, USER, X))  # a payment to the treasury between post and borrow
        amount = collateral * ltv_percent // 100
        tape.tx(*borrow(mkt, amount, X))
        tape.next_block()
        if noise:
            tape.tx(t(USDC, 2 * U, LENDER, USER))
        tape.tx(*deposit(ALPHA, amount, X))
        borrowed.append(amount)
        collateral = amount
    return borrowed


def test_single_loop_interleaved_with_unrelated_transfers() -> None:
    tape = Tape()
    borrowed = single_loop(tape, 1000 * U, 80, 3)
    assert borrowed == [800 * U, 640 * U, 512 * U]
    report = analyze(tape.events, world(), audited="alpha")
    assert len(report.loops) == 1
    loop = report.loops[0].as_dict()
    assert loop["issuers"] == ["alpha"]
    assert loop["venues"] == ["morpho_blue"]
    assert loop["markets"] == [market("ethereum", "a")]
    assert loop["iteration_count"] == 3
    assert [i["borrowed"]["raw"] for i in loop["iterations"]] == [str(b) for b in borrowed]
    assert [[m["raw"] for m in i["minted"]] for i in loop["iterations"]] == [[str(b)] for b in borrowed]
    assert [[c["raw"] for c in i["collateral"]] for i in loop["iterations"]] == [
        [str(1000 * U)], [str(800 * U)], [str(640 * U)]]
    assert all(i["account"] == "alpha treasury" for i in loop["iterations"])
    assert units(loop["total_minted_units"]) == 2952  # the seed mint plus three borrowed mints
    assert units(loop["external_in_units"]) == 1000
    assert units(loop["leverage"]) == Decimal("2.952")
    assert units(loop["total_borrowed_units"]) == 1952
    assert loop["path"][0].startswith("borrow USDC")
    assert len(loop["path"]) == 3

    provenance = report.as_dict()["provenance"]
    shares = [(m["raw"], m["shares"]["borrowed"], m["shares"]["external"], m["loop"]) for m in provenance["mints"]]
    assert shares == [
        (str(1000 * U), "0", "1", "loop-1"),
        (str(50 * U), "0", "1", None),
        (str(800 * U), "1", "0", "loop-1"),
        (str(640 * U), "1", "0", "loop-1"),
        (str(512 * U), "1", "0", "loop-1"),
    ]
    totals = provenance["totals"]
    assert units(totals["minted_units"]) == 3002
    assert units(totals["by_source_units"]["borrowed"]) == 1952
    assert units(totals["by_source_units"]["external"]) == 1050
    # the Transfer logs that repeat Morpho's events were merged into them
    assert report.dropped_transfers == 6 + 3  # 3 posts + 3 borrows, and the 3 outside supplies
    json.dumps(report.as_dict())  # JSON-safe as it is


@pytest.mark.parametrize("k", [1, 2, 5])
def test_iteration_count_is_exact(k: int) -> None:
    tape = Tape()
    borrowed = single_loop(tape, 100 * U, 50, k, noise=False)
    (loop,) = analyze(tape.events, world(), audited="alpha").loops
    assert len(loop.iterations) == k
    assert [i.borrowed.raw for i in loop.iterations] == borrowed
    assert loop.leverage == (100 * U + sum(borrowed)) / (100 * U)


def test_clean_issuer_has_no_loop_and_fully_external_mints() -> None:
    tape = Tape()
    for n, user in enumerate((USER, LENDER, addr(0x7777))):
        tape.tx(*deposit(ALPHA, (n + 1) * 100 * U, user))
        tape.next_block()
    tape.tx(t(ALPHA, 5 * U, USER, LENDER))
    report = analyze(tape.events, world(), audited="alpha")
    assert report.loops == []
    totals = report.as_dict()["provenance"]["totals"]
    assert totals["external_share"] == "1"
    assert totals["borrowed_share"] == "0"
    assert units(totals["minted_units"]) == 600


def test_borrowing_to_mint_without_recursion_is_not_a_loop() -> None:
    tape = Tape()
    weth_market = market("ethereum", "e")
    tape.tx(t(WETH, 10 * B, LENDER, X))
    tape.tx(*post(weth_market, WETH, 10 * B, X))
    tape.tx(*borrow(weth_market, 20_000 * U, X))
    tape.tx(*deposit(ALPHA, 15_000 * U, X))
    tape.tx(*deposit(ALPHA, 6_000 * U, X))  # 5,000 borrowed left + 1,000 the treasury had before the window
    report = analyze(tape.events, world(), audited="alpha")
    assert report.loops == []
    first, second = report.provenance
    assert first.shares["borrowed"] == 1
    assert (second.shares["borrowed"], second.shares["prior"]) == (Fraction(5, 6), Fraction(1, 6))
    assert report.as_dict()["provenance"]["mints"][1]["shares"]["prior"] == "0.166666666666666667"
    assert any("before the window" in note for note in report.notes)


def test_operator_mint_is_unpaid_and_moved_deposits_are_recycled() -> None:
    tape = Tape()
    tape.tx(*deposit(ALPHA, 100 * U, USER))
    tape.tx(minted(ALPHA, 40 * U, X))  # operatorMint: no payment in the transaction
    tape.tx(t(USDC, 100 * U, ALPHA, X))  # moveFunds: the users' deposit goes to the treasury
    tape.tx(*deposit(ALPHA, 100 * U, X))  # ... and pays for a second mint
    mints = analyze(tape.events, world(), audited="alpha").as_dict()["provenance"]["mints"]
    assert [m["shares"]["external"] for m in mints] == ["1", "0", "0"]
    assert mints[1]["shares"]["unpaid"] == "1"
    assert mints[2]["shares"]["recycled"] == "1"
    assert mints[2]["paid"][0]["payer"] == "alpha treasury"


def test_mint_logged_before_its_payment_and_paid_through_a_bundler() -> None:
    tape = Tape()
    mkt = market("ethereum", "a")
    tape.tx(*borrow(mkt, 30 * U, X))
    # one transaction: the treasury pays a bundler, the vault mints first and then pulls the bundler's USDC
    tape.tx(t(USDC, 30 * U, X, BUNDLER), minted(ALPHA, 30 * U, X), t(USDC, 30 * U, BUNDLER, ALPHA))
    (mint,) = analyze(tape.events, world(), audited="alpha").as_dict()["provenance"]["mints"]
    assert mint["shares"]["borrowed"] == "1"
    assert mint["paid"] == [{"token": token_key("ethereum", USDC), "symbol": "USDC", "raw": str(30 * U),
                             "units": "30", "payer": "external", "payer_address": BUNDLER}]


def test_funds_returned_in_the_same_transaction_keep_their_history() -> None:
    tape = Tape()
    mkt = market("ethereum", "a")
    tape.tx(*borrow(mkt, 100 * U, X))
    # a flash loan to the treasury and its repayment: without the return rule FIFO would send the borrowed
    # USDC back and leave the flash-loaned 'external' dollars in the treasury
    tape.tx(t(USDC, 70 * U, MORPHO, X), t(USDC, 70 * U, X, MORPHO))
    tape.tx(*deposit(ALPHA, 100 * U, X))
    (mint,) = analyze(tape.events, world(), audited="alpha").provenance
    assert mint.shares["borrowed"] == 1


def test_lending_positions_keep_the_history_of_what_went_in() -> None:
    tape = Tape()
    mkt = market("ethereum", "a")
    tape.tx(*borrow(market("ethereum", "e"), 100 * U, X))
    # lend the borrowed USDC out and take it back: it is still borrowed money when it pays for a mint
    tape.tx(("supply", USDC, 100 * U, X, MORPHO, mkt, X), t(USDC, 100 * U, X, MORPHO))
    tape.tx(("withdraw", USDC, 100 * U, MORPHO, X, mkt, X), t(USDC, 100 * U, MORPHO, X))
    tape.tx(*deposit(ALPHA, 100 * U, X))
    # post the ALPHA, get liquidated on part of it, withdraw the rest, repay with money from outside
    tape.tx(*post(mkt, ALPHA, 100 * U, X))
    tape.tx(("liquidate", ALPHA, 60 * U, MORPHO, LENDER, mkt, X), t(ALPHA, 60 * U, MORPHO, LENDER))
    tape.tx(("withdraw_collateral", ALPHA, 40 * U, MORPHO, X, mkt, X), t(ALPHA, 40 * U, MORPHO, X))
    tape.tx(t(USDC, 5 * U, USER, X), ("repay", USDC, 5 * U, X, MORPHO, mkt, X), t(USDC, 5 * U, X, MORPHO))
    tape.tx(t(ALPHA, 40 * U, X, ALPHA), ("burn", ALPHA, 40 * U, ALPHA, ZERO_ADDRESS))
    report = analyze(tape.events, world(), audited="alpha")
    (mint,) = report.provenance
    assert mint.shares["borrowed"] == 1
    assert report.loops == []
    assert not any("before the window" in note for note in report.notes)  # every outflow had a known source
    assert report.dropped_transfers == 7
    assert report.graph.has_edge(market("ethereum", "a"), "external")  # the liquidator is an outsider


def test_two_issuer_loop_through_a_purchase() -> None:
    """alpha mints, posts ALPHA in beta's market, borrows, buys BETA from a pool, posts BETA, borrows, mints ALPHA."""
    tape = Tape()
    market_a, market_b = market("ethereum", "a"), market("ethereum", "b")
    tape.tx(t(USDC, 1000 * U, LENDER, X))
    tape.tx(("supply", USDC, 5000 * U, Y, MORPHO, market_a, Y), t(USDC, 5000 * U, Y, MORPHO))  # beta lends
    tape.tx(*deposit(ALPHA, 1000 * U, X))
    tape.tx(*post(market_a, ALPHA, 1000 * U, X))
    tape.tx(*borrow(market_a, 900 * U, X))
    tape.tx(t(USDC, 900 * U, X, POOL), t(BETA, 900 * B, POOL, X))  # buy BETA
    tape.tx(*post(market_b, BETA, 900 * B, X))
    tape.tx(*borrow(market_b, 810 * U, X))
    tape.tx(*deposit(ALPHA, 810 * U, X))
    report = analyze(tape.events, world(), audited="alpha")
    (loop,) = report.loops
    data = loop.as_dict()
    assert data["issuers"] == ["alpha", "beta"]
    assert data["markets"] == [market_a, market_b]
    assert [i["borrowed"]["raw"] for i in data["iterations"]] == [str(900 * U), str(810 * U)]
    assert data["iterations"][0]["minted"] == []  # the first borrow bought BETA, it minted nothing
    assert [m["raw"] for m in data["iterations"][1]["minted"]] == [str(810 * U)]
    assert units(data["leverage"]) == Decimal("1.81")
    assert any(stage.startswith("swap into BETA") for stage in data["path"])


def test_two_issuer_loop_across_two_chains_through_bridges() -> None:
    """ALPHA is locked on ethereum and minted on arbitrum, posted, borrowed against; BETA minted there comes back
    the same way. 'arbitrum' sorts first, so the tracer must hold its bridge mints until the locks are seen."""
    lab = world(("arbitrum", "ethereum"))
    for chain, canonical, copy, escrow, issuer, symbol in (
        ("ethereum", ALPHA, BRIDGED_ALPHA, ESCROW_A, "alpha", "ALPHA"),
        ("arbitrum", BETA, BRIDGED_BETA, ESCROW_B, "beta", "BETA"),
    ):
        other = "arbitrum" if chain == "ethereum" else "ethereum"
        lab.addresses[token_key(chain, escrow)] = NodeLabel(ESCROW, f"{symbol} escrow", issuer)
        lab.tokens[token_key(other, copy)] = TokenLabel(symbol, DECIMALS[copy], issuer, bridged=True)
        del lab.tokens[token_key(other, canonical)]
    eth, arb = Tape("ethereum"), Tape("arbitrum", block=5000)
    eth.tx(t(USDC, 1000 * U, LENDER, X))
    eth.tx(*deposit(ALPHA, 1000 * U, X))
    eth.tx(("bridge_lock", ALPHA, 1000 * U, X, ESCROW_A))
    arb.tx(("bridge_mint", BRIDGED_ALPHA, 1000 * U, ZERO_ADDRESS, X))
    arb.tx(*post(market("arbitrum", "ba"), BRIDGED_ALPHA, 1000 * U, X))
    arb.tx(*borrow(market("arbitrum", "ba"), 800 * U, X))
    arb.tx(*deposit(BETA, 800 * U, X, scale=10**12))
    arb.tx(("bridge_lock", BETA, 800 * B, X, ESCROW_B))
    eth.next_block()
    eth.tx(("bridge_mint", BRIDGED_BETA, 800 * B, ZERO_ADDRESS, X))
    eth.tx(*post(market("ethereum", "bb"), BRIDGED_BETA, 800 * B, X))
    eth.tx(*borrow(market("ethereum", "bb"), 640 * U, X))
    eth.tx(*deposit(ALPHA, 640 * U, X))
    report = analyze(eth.events + arb.events, lab, audited="alpha")
    (loop,) = report.loops
    data = loop.as_dict()
    assert data["chains"] == ["arbitrum", "ethereum"]
    assert data["issuers"] == ["alpha", "beta"]
    assert [(i["chain"], i["borrowed"]["raw"]) for i in data["iterations"]] == [
        ("arbitrum", str(800 * U)), ("ethereum", str(640 * U))]
    assert units(data["total_minted_units"]) == 2440  # 1000 + 640 ALPHA, 800 BETA; bridged copies are not mints
    assert units(data["leverage"]) == Decimal("2.44")
    assert {m["symbol"]: m["leverage"] for m in data["minted_by_token"]} == {"ALPHA": "1.64", "BETA": "0.8"}
    assert [(m["issuer"], m["leverage"]) for m in data["minted_by_issuer"]] == [("alpha", "1.64"), ("beta", "0.8")]
    assert report.as_dict()["provenance"]["mints"][1]["shares"]["borrowed"] == "1"
    # the bridge is an edge from the escrow on one chain to the recipient on the other
    edges = report.as_dict()["graph"]["edges"]
    assert {"from": token_key("ethereum", ESCROW_A), "to": token_key("arbitrum", X), "kind": "bridge_mint"}.items() \
        <= next(e for e in edges if e["kind"] == "bridge_mint" and e["from"].startswith("ethereum")).items()


def test_graph_nodes_are_labelled_and_edges_follow_chain_order() -> None:
    tape = Tape()
    single_loop(tape, 100 * U, 50, 2)
    shuffled = list(reversed(tape.events))
    report = analyze(shuffled, world(), audited="alpha")
    order = [(d["event"].chain, d["event"].block, d["event"].log_index)
             for _u, _v, d in report.graph.edges(data=True)]
    keys = [k for _u, _v, k in report.graph.edges(keys=True)]
    by_key = sorted(zip(keys, order, strict=True))
    assert [o for _k, o in by_key] == sorted(order)
    nodes = dict(report.graph.nodes(data=True))
    assert nodes[token_key("ethereum", X)]["name"] == "alpha treasury"
    assert nodes[market("ethereum", "a")]["role"] == "market"
    assert nodes["external"]["role"] == "external" and nodes["mint"]["role"] == "mint"
    assert report.graph.has_edge(market("ethereum", "a"), token_key("ethereum", X))  # borrows come from the market


def test_fifo_through_the_treasury_mixes_stray_payments_into_the_next_mint() -> None:
    tape = Tape()
    single_loop(tape, 1000 * U, 80, 3, noise=False, stray=True)
    report = analyze(tape.events, world(), audited="alpha")
    (loop,) = report.loops
    # Each deposit takes the oldest USDC first: the stray 1 USDC, then the borrow; what a borrow leaves behind
    # pays for the next mint, so a borrow's minted amount spans two mints.
    assert [i.minted[0].raw for i in loop.iterations] == [800 * U, 640 * U, 509 * U]
    assert [m.shares["external"] for m in report.provenance] == [1, Fraction(1, 800), Fraction(1, 640),
                                                                  Fraction(1, 512)]
    assert loop.money_in == 1000 + Fraction(3)  # the seed and the three stray dollars that paid for mints


def test_flow_event_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown flow event kind"):
        FlowEvent("ethereum", 1, 0, "0x1", "teleport", USDC, token_key("ethereum", USDC), 1, 6, X, Y)


NOISE = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([USER, LENDER, BUNDLER, POOL]),
                           st.sampled_from([USER, LENDER, POOL, MORPHO]), st.integers(1, 10**9)), max_size=25)


@settings(max_examples=40, deadline=None)
@given(NOISE)
def test_unrelated_transfers_never_change_the_loop(noise: list[tuple[int, str, str, int]]) -> None:
    tape = Tape()
    single_loop(tape, 100 * U, 75, 3, noise=False)
    clean = analyze(tape.events, world(), audited="alpha").loops[0].as_dict()
    events = list(tape.events)
    for n, (position, src, dst, amount) in enumerate(noise):
        anchor = events[position % len(events)]
        # its own transaction, in the same block as a loop event
        events.append(FlowEvent("ethereum", anchor.block, 1000 + n, f"0xnoise-{n}", "transfer", USDC,
                                 token_key("ethereum", USDC), amount, 6, src, dst))
    noisy = analyze(events, world(), audited="alpha").loops[0].as_dict()
    assert noisy == clean


# ------------------------------------------------------------------ minting designs and hops (issue 15)

MINTER = addr(0x7000)  # alpha's separate minting contract: not labelled, the tracer follows the money to it
CUSTODY = addr(0x7100)  # an account of alpha's where mint payments are kept
X2 = addr(0x1100)  # a second alpha wallet
DESIGNS = ("vault", "minter", "minter_logged_after", "custody_account", "operator")


def designs_world() -> Labelling:
    lab = world()
    for address, name in ((CUSTODY, "alpha custody"), (X2, "alpha wallet 2")):
        lab.addresses[token_key("ethereum", address)] = NodeLabel(ACCOUNT, name, "alpha")
    return lab


def mint_with(tape: Tape, design: str, amount: int, by: str) -> None:
    """`by` pays `amount` USDC for as many ALPHA, the way the design takes payment."""
    if design == "vault":
        tape.tx(*deposit(ALPHA, amount, by))
    elif design == "minter":  # DeUSDMinting-style: the minter pulls the USDC and mints in one transaction
        tape.tx(t(USDC, amount, by, MINTER), minted(ALPHA, amount, by))
    elif design == "minter_logged_after":
        tape.tx(minted(ALPHA, amount, by), t(USDC, amount, by, MINTER))
    elif design == "custody_account":
        tape.tx(t(USDC, amount, by, CUSTODY), minted(ALPHA, amount, by))
    else:  # operator: the payment lands first; the issuer's operator mints a block later
        tape.tx(t(USDC, amount, by, MINTER))
        tape.next_block()
        tape.tx(minted(ALPHA, amount, by))


@pytest.mark.parametrize("hops", [False, True])
@pytest.mark.parametrize("design", DESIGNS)
def test_loops_are_found_whatever_the_minting_design(design: str, hops: bool) -> None:
    """Three borrow -> mint -> post turns paid with borrowed USDC, minted through each design, optionally with
    the cash and the tokens hopping through a second wallet: the same loop and the same provenance."""
    tape = Tape()
    mkt = market("ethereum", "a")
    tape.tx(t(USDC, 1000 * U, LENDER, X))  # outside money in
    tape.next_block()
    mint_with(tape, design, 1000 * U, X)
    collateral, borrowed = 1000 * U, []
    for _ in range(3):
        tape.next_block()
        tape.tx(*post(mkt, ALPHA, collateral, X))
        amount = collateral * 3 // 4
        tape.tx(*borrow(mkt, amount, X))
        tape.next_block()
        minter = X
        if hops:
            tape.tx(t(USDC, amount, X, X2))
            minter = X2
        tape.tx(t(USDC, 5 * U, USER, LENDER))  # noise
        mint_with(tape, design, amount, minter)
        if hops:
            tape.tx(t(ALPHA, amount, X2, X))
        borrowed.append(amount)
        collateral = amount
    report = analyze(tape.events, designs_world(), audited="alpha")
    assert len(report.loops) == 1, design
    loop = report.loops[0].as_dict()
    assert loop["iteration_count"] == 3
    assert [i["borrowed"]["raw"] for i in loop["iterations"]] == [str(b) for b in borrowed]
    assert [[m["raw"] for m in i["minted"]] for i in loop["iterations"]] == [[str(b)] for b in borrowed]
    assert units(loop["external_in_units"]) == 1000
    provenance = report.as_dict()["provenance"]
    assert [(m["raw"], m["shares"]["external"], m["shares"]["borrowed"], m["shares"]["unpaid"])
            for m in provenance["mints"]] == [(str(1000 * U), "1", "0", "0")] + [
        (str(b), "0", "1", "0") for b in borrowed]


def test_a_payment_nobody_mints_against_within_a_few_blocks_pays_for_nothing() -> None:
    """An operator mint is matched to a payment only nearby: ten blocks later the mint is unpaid."""
    tape = Tape()
    tape.tx(t(USDC, 100 * U, LENDER, X))
    tape.next_block()
    tape.tx(t(USDC, 100 * U, X, MINTER))
    for _ in range(10):
        tape.next_block()
    tape.tx(minted(ALPHA, 100 * U, X))
    provenance = analyze(tape.events, designs_world(), audited="alpha").as_dict()["provenance"]
    assert [m["shares"]["unpaid"] for m in provenance["mints"]] == ["1"]


USDC_BRIDGE = addr(0xCB)  # a USDC bridge (lock/release on both sides): not labelled, the tracer pairs amounts


@pytest.mark.parametrize("cash_bridge", ["lock_release", "burn_mint"])
def test_cash_that_crosses_chains_keeps_its_history(cash_bridge: str) -> None:
    """USDC borrowed on arbitrum against bridged ALPHA is bridged home to ethereum, mints ALPHA there, and the ALPHA
    goes back to arbitrum as collateral: one loop across two chains, every loop mint paid with borrowed money.
    Without pairing the cash, its arrival on ethereum would read as new outside money."""
    lab = world(("arbitrum", "ethereum"))
    lab.addresses[token_key("ethereum", ESCROW_A)] = NodeLabel(ESCROW, "ALPHA escrow", "alpha")
    lab.tokens[token_key("arbitrum", BRIDGED_ALPHA)] = TokenLabel("ALPHA", 6, "alpha", bridged=True)
    del lab.tokens[token_key("arbitrum", ALPHA)]
    eth, arb = Tape("ethereum"), Tape("arbitrum", block=5000)
    eth.tx(t(USDC, 1000 * U, LENDER, X))
    amount, borrowed = 1000 * U, []
    for turn in range(3):
        eth.tx(*deposit(ALPHA, amount, X))
        eth.tx(("bridge_lock", ALPHA, amount, X, ESCROW_A))
        eth.next_block()
        arb.tx(("bridge_mint", BRIDGED_ALPHA, amount, ZERO_ADDRESS, X))
        arb.tx(*post(market("arbitrum", "ba"), BRIDGED_ALPHA, amount, X))
        amount = amount * 4 // 5
        arb.tx(*borrow(market("arbitrum", "ba"), amount, X))
        borrowed.append(amount)
        if turn == 2:
            break
        away = (ZERO_ADDRESS if cash_bridge == "burn_mint" else USDC_BRIDGE)
        arb.tx(t(USDC, amount, X, away))  # the cash leaves arbitrum ...
        arb.next_block()
        eth.tx(t(USDC, amount, away, X))  # ... and arrives on ethereum
    report = analyze(eth.events + arb.events, lab, audited="alpha")
    (loop,) = report.loops
    data = loop.as_dict()
    assert data["chains"] == ["arbitrum", "ethereum"]
    assert [i["borrowed"]["raw"] for i in data["iterations"]] == [str(b) for b in borrowed]
    assert units(data["external_in_units"]) == 1000
    mints = report.as_dict()["provenance"]["mints"]
    assert [(m["raw"], m["shares"]["external"], m["shares"]["borrowed"]) for m in mints] == [
        (str(1000 * U), "1", "0"), (str(borrowed[0]), "0", "1"), (str(borrowed[1]), "0", "1")]


def test_cash_arriving_without_a_matching_departure_is_outside_money() -> None:
    lab = world(("arbitrum", "ethereum"))
    eth, arb = Tape("ethereum"), Tape("arbitrum", block=5000)
    arb.tx(t(USDC, 500 * U, X, USDC_BRIDGE))
    eth.tx(t(USDC, 499 * U, USDC_BRIDGE, X))  # not the same amount: not the same money
    eth.tx(*deposit(ALPHA, 499 * U, X))
    (mint,) = analyze(eth.events + arb.events, lab, audited="alpha").as_dict()["provenance"]["mints"]
    assert mint["shares"]["external"] == "1"


def test_an_outsider_paying_a_separate_minter_mints_with_outside_money() -> None:
    tape = Tape()
    tape.tx(t(USDC, 40 * U, USER, MINTER), minted(ALPHA, 40 * U, USER))
    (mint,) = analyze(tape.events, designs_world(), audited="alpha").as_dict()["provenance"]["mints"]
    assert (mint["shares"]["external"], mint["paid"][0]["payer_address"]) == ("1", USER)


def test_oft_to_oft_hop_keeps_the_history_and_closes_the_loop() -> None:
    """ALPHA locked on ethereum is minted on arbitrum, burnt there and credited on base (LayerZero OFT to OFT),
    posted on base; the USDC borrowed on base comes home and mints ALPHA again: one loop over three chains."""
    chains = ("arbitrum", "base", "ethereum")
    lab = world(chains)
    lab.addresses[token_key("ethereum", ESCROW_A)] = NodeLabel(ESCROW, "ALPHA adapter", "alpha")
    for other in ("arbitrum", "base"):
        lab.tokens[token_key(other, BRIDGED_ALPHA)] = TokenLabel("ALPHA", 6, "alpha", bridged=True)
        del lab.tokens[token_key(other, ALPHA)]
    eth, arb, base = Tape("ethereum"), Tape("arbitrum", block=5000), Tape("base", block=9000)
    eth.tx(t(USDC, 1000 * U, LENDER, X))
    amount, borrowed = 1000 * U, []
    for _turn in range(2):
        eth.tx(*deposit(ALPHA, amount, X))
        eth.tx(("bridge_lock", ALPHA, amount, X, ESCROW_A))
        eth.next_block()
        arb.tx(("bridge_mint", BRIDGED_ALPHA, amount, ZERO_ADDRESS, X))
        arb.tx(("burn", BRIDGED_ALPHA, amount, X, ZERO_ADDRESS))  # OFT debit on arbitrum ...
        arb.next_block()
        base.tx(("bridge_mint", BRIDGED_ALPHA, amount, ZERO_ADDRESS, X))  # ... credit on base
        base.tx(*post(market("base", "ba"), BRIDGED_ALPHA, amount, X))
        amount = amount * 4 // 5
        base.tx(*borrow(market("base", "ba"), amount, X))
        borrowed.append(amount)
        base.tx(t(USDC, amount, X, USDC_BRIDGE))
        base.next_block()
        eth.tx(t(USDC, amount, USDC_BRIDGE, X))
    eth.tx(*deposit(ALPHA, amount, X))
    report = analyze(eth.events + arb.events + base.events, lab, audited="alpha")
    (loop,) = report.loops
    data = loop.as_dict()
    assert data["chains"] == list(chains)  # the hop through arbitrum is part of every turn
    assert [i["borrowed"]["raw"] for i in data["iterations"]] == [str(b) for b in borrowed]
    assert not any("no matching lock" in note for note in report.notes)
    mints = report.as_dict()["provenance"]["mints"]
    assert [(m["shares"]["external"], m["shares"]["borrowed"]) for m in mints] == [("1", "0"), ("0", "1"), ("0", "1")]
