"""The flow tracer on anvil with real Morpho Blue: clean issuers, single and two-issuer loops, a cross-chain loop."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from auditor.adapters.morpho_blue import market_key
from auditor.chain.reader import ChainClient, ConnectOptions, connect
from auditor.chain.rpc import ConfigError
from auditor.lab.deploy import Contract, deploy_lab_token, install_multicall3
from auditor.lab.morpho import MarketParams, MorphoLab, deploy_morpho, oracle_price
from auditor.lab.node import rpc, start_anvil
from auditor.spec import Registry, Spec, load_registry, load_spec
from auditor.trace import run_trace, summary_lines
from tests.conftest import Lab

USDC = 10**6
E18 = 10**18
PLUME_ID = 98866


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path / "cache"))


# ------------------------------------------------------------------ inputs written as a user would


def spec_yaml(spec_id: str, symbol: str, deployments: Sequence[tuple[str, str, bool]],
              accounts: Sequence[tuple[str, str, str]], escrow: Sequence[tuple[str, str]] = (),
              depends_on: Sequence[str] = ()) -> str:
    text = f"id: {spec_id}\nname: {spec_id} (lab)\ntoken:\n  symbol: {symbol}\n  deployments:\n"
    for chain, address, bridged in deployments:
        text += f"    - {{chain: {chain}, address: \"{address}\"{', bridged: true' if bridged else ''}}}\n"
    if escrow:
        text += "  escrow:\n" + "".join(f"    - {{chain: {c}, address: \"{a}\", label: {symbol} escrow}}\n"
                                        for c, a in escrow)
    if accounts:
        text += "accounts:\n" + "".join(f"  - {{chain: {c}, address: \"{a}\", label: {label}}}\n"
                                        for c, a, label in accounts)
    if depends_on:
        text += f"depends_on: [{', '.join(depends_on)}]\n"
    return text


def write_inputs(folder: Path, chains: Mapping[str, int], usdc: Mapping[str, str], morpho: Mapping[str, str],
                 specs: Mapping[str, str]) -> tuple[Registry, dict[str, Spec]]:
    text = "chains:\n" + "".join(f"  {c}: {{chain_id: {i}}}\n" for c, i in chains.items())
    text += "assets:\n" + "".join(f"  {c}:\n    USDC: {{address: \"{a}\", decimals: 6, price: par}}\n"
                                  for c, a in usdc.items())
    text += "venues:\n  morpho_blue:\n" + "".join(f"    {c}: {{address: \"{a}\", from_block: 0}}\n"
                                                 for c, a in morpho.items())
    (folder / "registry.yaml").write_text(text)
    registry = load_registry(folder / "registry.yaml")
    for spec_id, body in specs.items():
        (folder / f"{spec_id}.yaml").write_text(body)
    return registry, {i: load_spec(folder / f"{i}.yaml", registry, frozenset(specs)) for i in specs}


def clients(registry: Registry, urls: Mapping[str, str]) -> dict[str, ChainClient]:
    return connect({c: registry.chains[c] for c in urls}, ConnectOptions(rpc=dict(urls)))


def head(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


# ------------------------------------------------------------------ actions


def deposit(vault: Contract, asset: Contract, amount: int, sender: str) -> dict[str, Any]:
    asset.transact("approve", vault.address, amount, sender=sender)
    return vault.transact("deposit", amount, sender, sender=sender)


def market(morpho: MorphoLab, loan: Contract, collateral: Contract, lltv: int, loan_decimals: int,
           collateral_decimals: int) -> MarketParams:
    oracle = morpho.deploy_oracle(oracle_price(1, loan_decimals, collateral_decimals))
    params = morpho.market_params(loan.address, collateral.address, lltv, oracle.address)
    morpho.create_market(params)
    return params


def fund_market(morpho: MorphoLab, loan: Contract, params: MarketParams, lender: str, amount: int) -> None:
    loan.transact("mint", lender, amount)
    morpho.supply(params, amount, lender)


@dataclass
class Turn:
    borrow_tx: str
    borrowed: int
    minted: int


def loop_once(morpho: MorphoLab, params: MarketParams, collateral: int, borrow: int, vault: Contract,
              usdc: Contract, who: str) -> Turn:
    morpho.supply_collateral(params, collateral, who)
    receipt = morpho.borrow(params, borrow, who)
    deposit(vault, usdc, borrow, who)
    return Turn(receipt["transactionHash"], borrow, borrow)


def issuer_vault(lab: Lab, url: str, asset: Contract, symbol: str, decimals: int, operator: str) -> Contract:
    return Contract.deploy(url, lab.lab_contracts["IssuerVault"], asset.address, f"{symbol} (lab)", symbol, decimals,
                           6, sender=operator)


# ------------------------------------------------------------------ (a) a clean issuer


def test_clean_issuer_no_loop_all_mints_external(chain: Lab, tmp_path: Path) -> None:
    treasury = chain.accounts[3]
    alpha = issuer_vault(chain, chain.url, chain.usdc, "ALPHA", 6, treasury)
    start = head(chain.url) + 1
    users = [chain.lender, chain.borrower, chain.accounts[4]]
    for n, user in enumerate(users, 1):
        chain.usdc.transact("mint", user, n * 100 * USDC)
        deposit(alpha, chain.usdc, n * 100 * USDC, user)
    alpha.transact("transfer", chain.lender, 25 * USDC, sender=chain.borrower)
    registry, specs = write_inputs(
        tmp_path, {"ethereum": 1}, {"ethereum": chain.usdc.address}, {"ethereum": chain.morpho.morpho.address},
        {"alpha": spec_yaml("alpha", "ALPHA", [("ethereum", alpha.address, False)],
                            [("ethereum", treasury, "alpha treasury")])})
    seen: list[tuple[str, int, int]] = []
    findings = run_trace("alpha", specs, registry, clients(registry, {"ethereum": chain.url}),
                         {"ethereum": (start, head(chain.url))}, progress=lambda *report: seen.append(report))
    assert seen and all(done <= total for _what, done, total in seen)
    assert {what for what, _d, _t in seen} >= {"ethereum: Transfer logs (1/2)", "ethereum: Transfer logs (2/2)"}
    assert findings["loops"] == []
    provenance = findings["provenance"]
    assert [m["raw"] for m in provenance["mints"]] == [str(n * 100 * USDC) for n in (1, 2, 3)]
    assert all(m["shares"]["external"] == "1" for m in provenance["mints"])
    assert provenance["totals"]["external_share"] == "1"
    assert provenance["totals"]["borrowed_share"] == "0"
    assert Decimal(provenance["totals"]["minted_units"]) == 600
    assert [m["recipient"] for m in provenance["mints"]] == users
    text = "\n".join(summary_lines(findings))
    assert "recursive borrow loops: none found" in text
    assert "100.0%" in text


# ------------------------------------------------------------------ (b) a single loop of k iterations


@pytest.mark.parametrize("k", [3])
def test_single_issuer_loop_of_k_iterations(chain: Lab, tmp_path: Path, k: int) -> None:
    treasury = chain.accounts[3]
    morpho = chain.morpho
    alpha = issuer_vault(chain, chain.url, chain.usdc, "ALPHA", 6, treasury)
    params = market(morpho, chain.usdc, alpha, chain.lltv, 6, 6)
    fund_market(morpho, chain.usdc, params, chain.lender, 10_000 * USDC)
    chain.usdc.transact("mint", chain.lender, 1_000 * USDC)
    start = head(chain.url) + 1

    seed = 1_000 * USDC
    chain.usdc.transact("transfer", treasury, seed, sender=chain.lender)  # the only outside money
    deposit(alpha, chain.usdc, seed, treasury)
    turns = []
    collateral = seed
    for turn in range(k):
        if turn == 1:  # an outside user minting in the middle of the loop is not part of it
            chain.usdc.transact("mint", chain.borrower, 50 * USDC)
            deposit(alpha, chain.usdc, 50 * USDC, chain.borrower)
        borrow = collateral * 4 // 5
        turns.append(loop_once(morpho, params, collateral, borrow, alpha, chain.usdc, treasury))
        collateral = borrow
    registry, specs = write_inputs(
        tmp_path, {"ethereum": 1}, {"ethereum": chain.usdc.address}, {"ethereum": morpho.morpho.address},
        {"alpha": spec_yaml("alpha", "ALPHA", [("ethereum", alpha.address, False)],
                            [("ethereum", treasury, "looping wallet")])})
    findings = run_trace("alpha", specs, registry, clients(registry, {"ethereum": chain.url}),
                         {"ethereum": (start, head(chain.url))})

    (loop,) = findings["loops"]
    assert loop["iteration_count"] == k
    assert [i["tx"] for i in loop["iterations"]] == [t.borrow_tx for t in turns]
    assert [int(i["borrowed"]["raw"]) for i in loop["iterations"]] == [800 * USDC, 640 * USDC, 512 * USDC]
    assert [[int(m["raw"]) for m in i["minted"]] for i in loop["iterations"]] == [[t.minted] for t in turns]
    assert [[int(c["raw"]) for c in i["collateral"]] for i in loop["iterations"]] == [
        [1_000 * USDC], [800 * USDC], [640 * USDC]]
    assert all(i["market"] == market_key("ethereum", params.id) for i in loop["iterations"])
    assert loop["issuers"] == ["alpha"] and loop["venues"] == ["morpho_blue"]
    assert Decimal(loop["total_minted_units"]) == 2_952
    assert Decimal(loop["external_in_units"]) == 1_000
    assert Decimal(loop["leverage"]) == Decimal("2.952")

    provenance = findings["provenance"]
    assert [(m["raw"], m["shares"]["borrowed"]) for m in provenance["mints"]] == [
        (str(1_000 * USDC), "0"), (str(800 * USDC), "1"), (str(50 * USDC), "0"), (str(640 * USDC), "1"),
        (str(512 * USDC), "1")]
    assert Decimal(provenance["totals"]["by_source_units"]["borrowed"]) == 1_952
    assert Decimal(provenance["totals"]["by_source_units"]["external"]) == 1_050
    assert findings["events"]["by_kind"]["borrow"] == k
    assert findings["scanned"]["ethereum"]["lending_logs"] == 2 * k  # SupplyCollateral + Borrow per turn
    text = "\n".join(summary_lines(findings))
    assert "loop-1: 3 iteration(s) through alpha" in text and "leverage 3.0x" in text


# ------------------------------------------------------------------ (c) a loop through two issuers


@pytest.mark.parametrize("get_beta", ["mint", "buy"])
def test_two_issuer_loop_is_one_loop(chain: Lab, tmp_path: Path, get_beta: str) -> None:
    """A mints, posts A in B's market, borrows, mints (or buys from a pool) B, posts B, borrows, mints A."""
    a_wallet, b_wallet = chain.accounts[3], chain.accounts[5]
    morpho = chain.morpho
    alpha = issuer_vault(chain, chain.url, chain.usdc, "ALPHA", 6, a_wallet)
    beta = issuer_vault(chain, chain.url, chain.usdc, "BETA", 18, b_wallet)  # 18 decimals against 6-decimal USDC
    market_a = market(morpho, chain.usdc, alpha, chain.lltv, 6, 6)
    market_b = market(morpho, chain.usdc, beta, chain.lltv, 6, 18)
    fund_market(morpho, chain.usdc, market_b, chain.lender, 5_000 * USDC)
    chain.usdc.transact("mint", chain.lender, 6_000 * USDC)
    pool = Contract.deploy(chain.url, chain.lab_contracts["ConstantSumPool"], chain.usdc.address, beta.address, E18)
    chain.usdc.transact("mint", chain.borrower, 1_000 * USDC)
    deposit(beta, chain.usdc, 1_000 * USDC, chain.borrower)
    beta.transact("transfer", pool.address, 1_000 * E18, sender=chain.borrower)  # the pool's BETA to sell
    start = head(chain.url) + 1

    chain.usdc.transact("transfer", b_wallet, 5_000 * USDC, sender=chain.lender)
    morpho.supply(market_a, 5_000 * USDC, b_wallet)  # beta lends its money against ALPHA
    chain.usdc.transact("transfer", a_wallet, 1_000 * USDC, sender=chain.lender)
    deposit(alpha, chain.usdc, 1_000 * USDC, a_wallet)
    if get_beta == "mint":
        first = loop_once(morpho, market_a, 1_000 * USDC, 800 * USDC, beta, chain.usdc, a_wallet)
    else:
        morpho.supply_collateral(market_a, 1_000 * USDC, a_wallet)
        first = Turn(morpho.borrow(market_a, 800 * USDC, a_wallet)["transactionHash"], 800 * USDC, 0)
        chain.usdc.transact("approve", pool.address, 800 * USDC, sender=a_wallet)
        pool.transact("swap", chain.usdc.address, 800 * USDC, a_wallet, sender=a_wallet)
    second = loop_once(morpho, market_b, 800 * E18, 640 * USDC, alpha, chain.usdc, a_wallet)
    registry, specs = write_inputs(
        tmp_path, {"ethereum": 1}, {"ethereum": chain.usdc.address}, {"ethereum": morpho.morpho.address},
        {"alpha": spec_yaml("alpha", "ALPHA", [("ethereum", alpha.address, False)],
                            [("ethereum", a_wallet, "alpha wallet")], depends_on=["beta"]),
         "beta": spec_yaml("beta", "BETA", [("ethereum", beta.address, False)],
                           [("ethereum", b_wallet, "beta treasury")])})
    findings = run_trace("alpha", specs, registry, clients(registry, {"ethereum": chain.url}),
                         {"ethereum": (start, head(chain.url))})
    assert findings["issuers"] == ["alpha", "beta"]
    (loop,) = findings["loops"]
    assert loop["issuers"] == ["alpha", "beta"]
    assert loop["markets"] == sorted([market_key("ethereum", market_a.id), market_key("ethereum", market_b.id)])
    assert [i["tx"] for i in loop["iterations"]] == [first.borrow_tx, second.borrow_tx]
    if get_beta == "buy":
        assert [[(m["symbol"], m["raw"]) for m in i["minted"]] for i in loop["iterations"]] == [
            [], [("ALPHA", str(640 * USDC))]]
        assert any(stage.startswith("swap into BETA") for stage in loop["path"])
        assert Decimal(loop["leverage"]) == Decimal("1.64")  # only ALPHA was minted on the loop
        return
    assert [[(m["symbol"], m["raw"]) for m in i["minted"]] for i in loop["iterations"]] == [
        [("BETA", str(800 * E18))], [("ALPHA", str(640 * USDC))]]
    assert Decimal(loop["total_minted_units"]) == 2_440
    assert Decimal(loop["leverage"]) == Decimal("2.44")
    assert {m["symbol"]: m["leverage"] for m in loop["minted_by_token"]} == {"ALPHA": "1.64", "BETA": "0.8"}


# ------------------------------------------------------------------ (d) a loop across two chains


@pytest.fixture
def second_chain(lab: Lab) -> Iterator[tuple[str, MorphoLab]]:
    node = start_anvil(PLUME_ID)
    try:
        install_multicall3(node.url)
        # the session's build: this test's private AUDITOR_CACHE_DIR would otherwise make solc-js compile again
        morpho = deploy_morpho(node.url, lab.deployer, compiled=lab.morpho.compiled)
        morpho.enable_irm()
        morpho.enable_lltv(lab.lltv)
        yield node.url, morpho
    finally:
        node.stop()


def test_loop_across_two_chains_through_lock_and_mint_bridges(
    chain: Lab, second_chain: tuple[str, MorphoLab], tmp_path: Path
) -> None:
    """ALPHA (ethereum) is locked and minted on plume, posted, borrowed against; the USDC mints BETA on plume,
    which is locked and minted back on ethereum, posted, borrowed against, and mints ALPHA again."""
    plume_url, plume_morpho = second_chain
    built, relayer = chain.lab_contracts, chain.deployer
    wallet, beta_treasury = chain.accounts[3], chain.accounts[5]
    eth_morpho = chain.morpho
    # ethereum: ALPHA's vault and escrow, bridged BETA, a USDC market against bridged BETA
    alpha = issuer_vault(chain, chain.url, chain.usdc, "ALPHA", 6, wallet)
    escrow_a = Contract.deploy(chain.url, built["BridgeEscrow"], sender=relayer)
    beta_copy = Contract.deploy(chain.url, built["BridgedToken"], "BETA (bridged)", "BETA", 18, sender=relayer)
    eth_market = market(eth_morpho, chain.usdc, beta_copy, chain.lltv, 6, 18)
    fund_market(eth_morpho, chain.usdc, eth_market, chain.lender, 5_000 * USDC)
    # plume: its USDC, BETA's vault and escrow, bridged ALPHA, a USDC market against bridged ALPHA
    usdc2 = deploy_lab_token(plume_url, "USD Coin (plume)", "USDC", 6, sender=relayer, compiled=built)
    beta = issuer_vault(chain, plume_url, usdc2, "BETA", 18, beta_treasury)
    escrow_b = Contract.deploy(plume_url, built["BridgeEscrow"], sender=relayer)
    alpha_copy = Contract.deploy(plume_url, built["BridgedToken"], "ALPHA (bridged)", "ALPHA", 6, sender=relayer)
    plume_market = market(plume_morpho, usdc2, alpha_copy, chain.lltv, 6, 6)
    fund_market(plume_morpho, usdc2, plume_market, chain.lender, 5_000 * USDC)
    chain.usdc.transact("mint", chain.lender, 1_000 * USDC)
    start_eth, start_plume = head(chain.url) + 1, head(plume_url) + 1

    chain.usdc.transact("transfer", wallet, 1_000 * USDC, sender=chain.lender)
    deposit(alpha, chain.usdc, 1_000 * USDC, wallet)
    alpha.transact("approve", escrow_a.address, 1_000 * USDC, sender=wallet)
    escrow_a.transact("lock", alpha.address, 1_000 * USDC, wallet, sender=wallet)
    alpha_copy.transact("relayMint", wallet, 1_000 * USDC, 0, sender=relayer)
    on_plume = loop_once(plume_morpho, plume_market, 1_000 * USDC, 800 * USDC, beta, usdc2, wallet)
    beta.transact("approve", escrow_b.address, 800 * E18, sender=wallet)
    escrow_b.transact("lock", beta.address, 800 * E18, wallet, sender=wallet)
    beta_copy.transact("relayMint", wallet, 800 * E18, 0, sender=relayer)
    on_eth = loop_once(eth_morpho, eth_market, 800 * E18, 640 * USDC, alpha, chain.usdc, wallet)

    registry, specs = write_inputs(
        tmp_path, {"ethereum": 1, "plume": PLUME_ID}, {"ethereum": chain.usdc.address, "plume": usdc2.address},
        {"ethereum": eth_morpho.morpho.address, "plume": plume_morpho.morpho.address},
        {"alpha": spec_yaml("alpha", "ALPHA", [("ethereum", alpha.address, False), ("plume", alpha_copy.address, True)],
                            [("ethereum", wallet, "looping wallet"), ("plume", wallet, "looping wallet (plume)")],
                            escrow=[("ethereum", escrow_a.address)], depends_on=["beta"]),
         "beta": spec_yaml("beta", "BETA", [("plume", beta.address, False), ("ethereum", beta_copy.address, True)],
                           [("plume", beta_treasury, "beta treasury")], escrow=[("plume", escrow_b.address)])})
    urls = {"ethereum": chain.url, "plume": plume_url}
    findings = run_trace("alpha", specs, registry, clients(registry, urls),
                         {"ethereum": (start_eth, head(chain.url)), "plume": (start_plume, head(plume_url))})
    (loop,) = findings["loops"]
    assert loop["chains"] == ["ethereum", "plume"]
    assert loop["issuers"] == ["alpha", "beta"]
    assert [(i["chain"], i["tx"]) for i in loop["iterations"]] == [("plume", on_plume.borrow_tx),
                                                                   ("ethereum", on_eth.borrow_tx)]
    assert Decimal(loop["total_minted_units"]) == 2_440
    assert Decimal(loop["leverage"]) == Decimal("2.44")
    assert any("bridge escrow" in stage for stage in loop["path"])
    assert [(m["issuer"], m["units"], m["leverage"]) for m in loop["minted_by_issuer"]] == [
        ("alpha", "1640", "1.64"), ("beta", "800", "0.8")]
    assert "leverage 2.4x (ALPHA 1.6x, BETA 0.8x)" in "\n".join(summary_lines(findings))
    assert findings["events"]["by_kind"]["bridge_lock"] == 2 and findings["events"]["by_kind"]["bridge_mint"] == 2
    assert [m["shares"]["borrowed"] for m in findings["provenance"]["mints"]] == ["0", "1"]


# ------------------------------------------------------------------ bad input


@pytest.fixture
def simple_world(chain: Lab, tmp_path: Path) -> tuple[Registry, dict[str, Spec], dict[str, ChainClient], int]:
    alpha = issuer_vault(chain, chain.url, chain.usdc, "ALPHA", 6, chain.accounts[3])
    registry, specs = write_inputs(
        tmp_path, {"ethereum": 1}, {"ethereum": chain.usdc.address}, {"ethereum": chain.morpho.morpho.address},
        {"alpha": spec_yaml("alpha", "ALPHA", [("ethereum", alpha.address, False)],
                            [("ethereum", chain.accounts[3], "treasury")]),
         "bare": spec_yaml("bare", "BARE", [("ethereum", alpha.address, False)], [])})
    return registry, specs, clients(registry, {"ethereum": chain.url}), head(chain.url)


@pytest.mark.parametrize(("spec_id", "windows", "message"), [
    ("alpha", {}, "empty window"),
    ("alpha", {"ethereum": (10, 5)}, "ethereum: the window 10..5 is empty: from-block 10 is after to-block 5"),
    ("alpha", {"ethereum": (1, 10**9)}, "ends beyond the chain head"),
    ("alpha", {"ethereum": (-1, 3)}, "cannot be negative"),
    ("bare", {"ethereum": (1, 2)}, "bare lists no accounts"),
    ("nope", {"ethereum": (1, 2)}, "unknown spec 'nope'"),
])
def test_bad_input_is_a_clear_config_error(
    simple_world: tuple[Registry, dict[str, Spec], dict[str, ChainClient], int], spec_id: str,
    windows: dict[str, tuple[int, int]], message: str,
) -> None:
    registry, specs, connected, _head = simple_world
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")) as caught:
        run_trace(spec_id, specs, registry, connected, windows)
    assert caught.value.exit_code == 2


def test_window_for_a_chain_the_trace_does_not_touch(
    simple_world: tuple[Registry, dict[str, Spec], dict[str, ChainClient], int],
) -> None:
    registry, specs, connected, _head = simple_world
    with pytest.raises(ConfigError, match="no accounts or tokens on plume"):
        run_trace("alpha", specs, registry, connected, {"plume": (1, 2)})


# ------------------------------------------------------------------ a loop through Aave v3 (issue 15)


def test_loop_through_aave_is_found_from_its_own_events(chain: Lab, tmp_path: Path) -> None:
    """supply ALPHA -> borrow USDC -> deposit into ALPHA -> supply, three times, on a real Aave v3 pool: Aave's own
    Supply and Borrow events, read by its venue module, make the loop; every loop mint is borrowed money."""
    from auditor.lab.aave import deploy_aave

    treasury = chain.accounts[3]
    alpha = issuer_vault(chain, chain.url, chain.usdc, "ALPHA", 6, treasury)
    aave = deploy_aave(chain.url, chain.deployer, [chain.usdc, alpha], [1, 1])
    chain.usdc.transact("mint", chain.lender, 10_000 * USDC)
    aave.supply(chain.usdc, 10_000 * USDC, chain.lender)  # the pool's cash
    start = head(chain.url) + 1
    chain.usdc.transact("mint", treasury, 1_000 * USDC)  # outside money (a mint of USDC from nowhere)
    deposit(alpha, chain.usdc, 1_000 * USDC, treasury)
    collateral, borrows = 1_000 * USDC, []
    for _ in range(3):
        aave.supply(alpha, collateral, treasury)
        amount = collateral * 3 // 4
        borrows.append(aave.borrow(chain.usdc, amount, treasury)["transactionHash"])
        deposit(alpha, chain.usdc, amount, treasury)
        collateral = amount
    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{chain.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  aave_v3:\n    ethereum: {{address: \"{aave.pool.address}\", from_block: 0}}\n")
    (tmp_path / "alpha.yaml").write_text(spec_yaml("alpha", "ALPHA", [("ethereum", alpha.address, False)],
                                                   [("ethereum", treasury, "looping wallet")]))
    registry = load_registry(tmp_path / "registry.yaml")
    specs = {"alpha": load_spec(tmp_path / "alpha.yaml", registry, frozenset({"alpha"}))}
    findings = run_trace("alpha", specs, registry, clients(registry, {"ethereum": chain.url}),
                         {"ethereum": (start, head(chain.url))})

    (loop,) = findings["loops"]
    assert loop["venues"] == ["aave_v3"] and loop["iteration_count"] == 3
    assert [i["tx"] for i in loop["iterations"]] == borrows
    assert [int(i["borrowed"]["raw"]) for i in loop["iterations"]] == [750 * USDC, 562_500_000, 421_875_000]
    assert [(m["shares"]["external"], m["shares"]["borrowed"]) for m in findings["provenance"]["mints"]] == [
        ("1", "0"), ("0", "1"), ("0", "1"), ("0", "1")]
    # Aave's Transfer logs of the same moves (to and from the aToken) were merged into its events.
    assert findings["events"]["by_kind"]["supply_collateral"] == 3 and findings["events"]["by_kind"]["borrow"] == 3
