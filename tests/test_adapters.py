"""Balance sheets on anvil: ERC-20 and ERC-4626 holdings, Morpho Blue positions and borrowers, supply with escrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditor.adapters.morpho_blue import MarketState, market_key
from auditor.chain.plan import run_plan
from auditor.chain.reader import ChainClient, ConnectOptions, connect
from auditor.chain.rpc import HttpTransport, RetryPolicy, Stats
from auditor.lab.deploy import Contract
from auditor.lab.morpho import MarketParams, oracle_price
from auditor.lab.node import rpc, start_anvil
from auditor.ledger import build_universe
from auditor.model import BALANCE, COLLATERAL, DEBT, SUPPLY, VAULT_SHARE, Position
from auditor.spec import Registry, Spec, load_registry, load_spec
from tests.conftest import Lab
from tests.support import same_block

USDC = 10**6
WETH = 10**18


def write_world(folder: Path, lab: Lab, alpha: Contract, alpha_account: str, extra_spec: str = "",
                registry_extra: str = "") -> tuple[Registry, dict[str, Spec]]:
    (folder / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n" + registry_extra +
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{lab.morpho.morpho.address}\", from_block: 0}}\n"
    )
    (folder / "alpha.yaml").write_text(
        "id: alpha\nname: Alpha\ntoken:\n  symbol: ALPHA\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{alpha.address}\"}}\n" + extra_spec +
        f"accounts:\n  - {{chain: ethereum, address: \"{alpha_account}\", label: alpha treasury}}\n"
    )
    registry = load_registry(folder / "registry.yaml")
    return registry, {"alpha": load_spec(folder / "alpha.yaml", registry)}


def pinned_client(url: str, block: int | None = None, chain: str = "ethereum", chain_id: int = 1) -> ChainClient:
    stats = Stats()
    client = ChainClient(chain, chain_id, HttpTransport(chain, url, stats, RetryPolicy(attempts=2)), stats)
    client.check_chain_id()
    client.pin(block)
    return client


def by_kind(positions: list[Position], kind: str) -> list[Position]:
    return [p for p in positions if p.kind == kind]


def test_erc20_balances_and_nested_vaults(chain: Lab, tmp_path: Path) -> None:
    treasury = chain.accounts[3]
    built = chain.lab_contracts
    alpha = Contract.deploy(chain.url, built["LabToken"], "Alpha", "ALPHA", 6)
    vault = Contract.deploy(chain.url, built["LabVault"], chain.usdc.address, "Vault USDC", "vUSDC")
    vault2 = Contract.deploy(chain.url, built["LabVault"], vault.address, "Vault of vault", "vvUSDC")
    chain.usdc.transact("mint", treasury, 1_200 * USDC)
    alpha.transact("mint", treasury, 50 * USDC)
    chain.usdc.transact("approve", vault.address, 200 * USDC, sender=treasury)
    vault.transact("deposit", 200 * USDC, treasury, sender=treasury)  # first deposit: 200e6 shares
    vault.transact("approve", vault2.address, 200 * USDC, sender=treasury)
    vault2.transact("deposit", 200 * USDC, treasury, sender=treasury)  # 200e6 shares of the vault's shares
    chain.usdc.transact("mint", vault.address, 20 * USDC)  # yield: the vault now holds 220 USDC for 200e6 shares

    holdings = f"holdings:\n  - {{chain: ethereum, address: \"{vault2.address}\", label: vault of vault}}\n"
    registry, specs = write_world(tmp_path, chain, alpha, treasury, holdings)
    universe, notes = build_universe("alpha", specs, registry, {"ethereum": pinned_client(chain.url)})
    sheet = universe.sheets["alpha"]
    balances = {p.symbol: p for p in by_kind(sheet.positions, BALANCE)}
    assert balances["USDC"].amount == 1_000 * USDC
    assert balances["ALPHA"].amount == 50 * USDC  # self-held: listed, valued by the engine as 0
    (share,) = by_kind(sheet.positions, VAULT_SHARE)
    # OpenZeppelin 4626 (offset 0): assets = shares * (totalAssets + 1) / (supply + 1), rounded down,
    # = 200e6 * (220e6 + 1) // (200e6 + 1) for the inner vault; the outer vault holds its shares 1:1.
    assert share.amount == 200 * USDC * (220 * USDC + 1) // (200 * USDC + 1) == 219_999_999
    assert share.token == chain.usdc.address
    assert share.details["vault_path"] == [vault2.address, vault.address]
    assert share.details["shares"] == 200 * USDC
    assert notes == []
    assert sheet.supply.deployments[0].total_supply == 50 * USDC

    # with a depth limit of 1 the inner vault is left as an unknown token, and a note says so
    from auditor.adapters import Account, Scope
    from auditor.adapters.erc4626 import unwrap_vaults
    from auditor.ledger import tokens_on

    scope = Scope("ethereum", pinned_client(chain.url), registry, [Account("alpha", treasury, "t")],
                  tokens_on("ethereum", registry, specs, ["alpha"]), vault_depth=1)
    start = Position("ethereum", treasury, "erc20", BALANCE, vault2.address, 200 * USDC, 6)
    (partial,), depth_notes = run_plan(scope.client, unwrap_vaults(scope, [start]))
    assert partial.token == vault.address and partial.amount == 200 * USDC
    assert "deeper than 1" in depth_notes[0]


def morpho_world(lab: Lab, treasury: str) -> tuple[Contract, MarketParams, MarketParams, int]:
    """Alpha's treasury lends 300 USDC in a WETH market and borrows 10 USDC against 40 ALPHA, all in one block."""
    morpho = lab.morpho
    alpha = Contract.deploy(lab.url, lab.lab_contracts["LabToken"], "Alpha", "ALPHA", 6)
    weth_oracle = morpho.deploy_oracle(oracle_price(2000, 6, 18))
    alpha_oracle = morpho.deploy_oracle(oracle_price("1.26", 6, 6))  # a frozen price, as Stream's markets had
    weth_market = morpho.market_params(lab.usdc.address, lab.weth.address, lab.lltv, weth_oracle.address)
    alpha_market = morpho.market_params(lab.usdc.address, alpha.address, lab.lltv, alpha_oracle.address)
    morpho.create_market(weth_market)
    morpho.create_market(alpha_market)
    lender, borrower = lab.lender, lab.borrower
    lab.usdc.transact("mint", treasury, 300 * USDC)
    lab.usdc.transact("mint", lender, 500 * USDC)
    lab.weth.transact("mint", borrower, 1 * WETH)
    alpha.transact("mint", treasury, 40 * USDC)
    m = morpho.morpho.address
    lab.usdc.transact("approve", m, 300 * USDC, sender=treasury)
    lab.usdc.transact("approve", m, 500 * USDC, sender=lender)
    lab.weth.transact("approve", m, WETH, sender=borrower)
    alpha.transact("approve", m, 40 * USDC, sender=treasury)
    block = same_block(lab.url, [
        (morpho.morpho, "supply", (weth_market.as_tuple(), 300 * USDC, 0, treasury, b""), treasury),
        (morpho.morpho, "supplyCollateral", (weth_market.as_tuple(), WETH, borrower, b""), borrower),
        (morpho.morpho, "borrow", (weth_market.as_tuple(), 100 * USDC, 0, borrower, borrower), borrower),
        (morpho.morpho, "supply", (alpha_market.as_tuple(), 500 * USDC, 0, lender, b""), lender),
        (morpho.morpho, "supplyCollateral", (alpha_market.as_tuple(), 40 * USDC, treasury, b""), treasury),
        (morpho.morpho, "borrow", (alpha_market.as_tuple(), 10 * USDC, 0, treasury, treasury), treasury),
    ])
    return alpha, weth_market, alpha_market, block


def test_morpho_positions_markets_and_borrowers_exact(chain: Lab, tmp_path: Path) -> None:
    treasury = chain.accounts[3]
    alpha, weth_market, alpha_market, block = morpho_world(chain, treasury)
    registry, specs = write_world(tmp_path, chain, alpha, treasury)
    universe, _notes = build_universe("alpha", specs, registry, {"ethereum": pinned_client(chain.url, block)})
    positions = universe.sheets["alpha"].positions
    (supply,) = by_kind(positions, SUPPLY)
    (collateral,) = by_kind(positions, COLLATERAL)
    (debt,) = by_kind(positions, DEBT)
    # Same block, so no interest: Morpho's virtual shares make these exact (shares = assets * 1e6).
    assert (supply.token, supply.amount, supply.details["supply_shares"]) == (chain.usdc.address, 300 * USDC,
                                                                             300 * USDC * 10**6)
    assert (collateral.token, collateral.amount) == (alpha.address, 40 * USDC)
    assert (debt.token, debt.amount, debt.details["borrow_shares"]) == (chain.usdc.address, 10 * USDC,
                                                                       10 * USDC * 10**6)
    assert supply.details["market"] == market_key("ethereum", weth_market.id)
    market = universe.markets[supply.details["market"]]
    assert (market.total_supply_assets, market.total_borrow_assets, market.idle) == (300 * USDC, 100 * USDC,
                                                                                      200 * USDC)
    assert [(b.address, b.debt, b.collateral) for b in market.borrowers] == [(chain.borrower, 100 * USDC, WETH)]
    assert market.oracle_price == oracle_price(2000, 6, 18)
    alpha_side = universe.markets[market_key("ethereum", alpha_market.id)]
    assert [(b.address, b.debt, b.collateral) for b in alpha_side.borrowers] == [(treasury, 10 * USDC, 40 * USDC)]
    assert alpha_side.oracle_price == 126 * 10**34  # 1.26 * 1e36 * 1e6 / 1e6
    assert all(e.block == block for p in positions for e in p.evidence)


def test_interest_accrual_matches_morpho_exactly(chain: Lab, tmp_path: Path) -> None:
    treasury = chain.accounts[3]
    _alpha, weth_market, _alpha_market, _block = morpho_world(chain, treasury)
    rpc(chain.url, "evm_increaseTime", [30 * 86_400])
    rpc(chain.url, "evm_mine", [])
    client = pinned_client(chain.url)
    from auditor.adapters import Scope
    from auditor.adapters.morpho_blue import read_markets

    venue = load_registry_venue(chain, tmp_path)
    reading = run_plan(client, read_markets(Scope("ethereum", client, venue[0], [], {}, venue=venue[1]),
                                            [weth_market.id]))[
        weth_market.id]
    assert reading.borrow_rate > 0
    later = client.pinned.timestamp + 7
    predicted = reading.stored.accrued(reading.borrow_rate, later)
    rpc(chain.url, "anvil_setNextBlockTimestamp", [later])
    chain.morpho.morpho.transact("accrueInterest", weth_market.as_tuple())
    actual = MarketState(*chain.morpho.morpho.call("market", weth_market.id))
    assert actual == predicted
    assert predicted.total_borrow_assets > 100 * USDC


def load_registry_venue(lab: Lab, folder: Path) -> tuple[Registry, Any]:
    (folder / "r.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{lab.morpho.morpho.address}\", from_block: 0}}\n")
    registry = load_registry(folder / "r.yaml")
    return registry, registry.venues["morpho_blue"]["ethereum"]


def test_supply_across_chains_subtracts_escrow(chain: Lab, tmp_path: Path) -> None:
    """A canonical token on the lab chain, its bridged copy on a second chain: escrowed tokens count once."""
    other = start_anvil(98866)
    try:
        built = chain.lab_contracts
        canonical = Contract.deploy(chain.url, built["LabToken"], "Alpha", "ALPHA", 6)
        bridged = Contract.deploy(other.url, built["LabToken"], "Alpha (plume)", "ALPHA", 6)
        escrow = chain.accounts[5]
        canonical.transact("mint", chain.accounts[4], 700 * USDC)  # held by users on ethereum
        canonical.transact("mint", escrow, 300 * USDC)  # locked to back the bridged copy
        bridged.transact("mint", chain.accounts[6], 300 * USDC)
        (tmp_path / "registry.yaml").write_text(
            "chains:\n  ethereum: {chain_id: 1}\n  plume: {chain_id: 98866}\n")
        (tmp_path / "alpha.yaml").write_text(
            "id: alpha\nname: Alpha\ntoken:\n  symbol: ALPHA\n  deployments:\n"
            f"    - {{chain: ethereum, address: \"{canonical.address}\"}}\n"
            f"    - {{chain: plume, address: \"{bridged.address}\", bridged: true}}\n"
            f"  escrow:\n    - {{chain: ethereum, address: \"{escrow}\", label: bridge}}\n")
        registry = load_registry(tmp_path / "registry.yaml")
        specs = {"alpha": load_spec(tmp_path / "alpha.yaml", registry)}
        clients = connect(registry.chains, ConnectOptions(rpc={"ethereum": chain.url, "plume": other.url}))
        universe, _ = build_universe("alpha", specs, registry, clients)
        supply = universe.sheets["alpha"].supply
        assert [(d.chain, d.total_supply, d.escrowed) for d in supply.deployments] == [
            ("ethereum", 1_000 * USDC, 300 * USDC), ("plume", 300 * USDC, 0)]
        assert supply.tokens == 1_000
    finally:
        other.stop()
