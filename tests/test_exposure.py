"""Exposure map on anvil: markets lending against a token (direct, private, look-through), suppliers, Aave listing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from auditor.adapters.morpho_blue import market_key
from auditor.chain.reader import ChainClient
from auditor.chain.rpc import ConfigError, HttpTransport, RetryPolicy, Stats
from auditor.exposure import run_exposure, summary_lines
from auditor.lab.aave import deploy_aave
from auditor.lab.deploy import Contract
from auditor.lab.morpho import MarketParams, oracle_price
from auditor.model import token_key
from auditor.spec import Registry, load_registry
from tests.conftest import Lab
from tests.support import same_block

USDC = 10**6
WETH = 10**18


def write_registry(folder: Path, lab: Lab, aave_pool: str | None = None) -> Registry:
    aave = f"  aave_v3:\n    ethereum: {{address: \"{aave_pool}\", from_block: 0}}\n" if aave_pool else ""
    (folder / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{lab.usdc.address}\", decimals: 6, price: par}}\n"
        f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{lab.morpho.morpho.address}\", from_block: 0}}\n"
        + aave
    )
    return load_registry(folder / "registry.yaml")


def num(figure: Any) -> Decimal:
    """A figure as the JSON carries it (an exact string), read back as the number it spells."""
    assert isinstance(figure, str), figure
    return Decimal(figure)


def pinned_client(url: str, block: int | None = None) -> ChainClient:
    stats = Stats()
    client = ChainClient("ethereum", 1, HttpTransport("ethereum", url, stats, RetryPolicy(attempts=2)), stats)
    client.check_chain_id()
    client.pin(block)
    return client


@dataclass
class World:
    xusd: Contract
    wxusd: Contract  # ERC-4626 whose asset is xUSD
    sxusd: Contract  # a token said (by the caller) to hold xUSD, with no asset() of its own
    vault: Contract  # MetaVault lending USDC in three markets
    owner: str
    curator: str
    direct: MarketParams  # USDC against xUSD: the vault and a second lender
    weth: MarketParams  # the vault's other markets: not exposed to xUSD
    wsteth: MarketParams
    wrapped: MarketParams  # USDC against wxUSD: look-through
    private: MarketParams  # USDC against xUSD, created by an outsider, never used
    held: MarketParams  # USDC against sxUSD, never used
    block: int


def build_world(lab: Lab) -> World:
    """The vault lends 1000/300/200 USDC in the xUSD, WETH and wstETH markets; all positions in one block.

    xUSD market: 1500 supplied (vault 1000, lender 500), 600 borrowed against 2000 xUSD, so a third of every
    supplied dollar is lent out: the vault has 400 at risk, the lender 200. wxUSD market: the lender's 100
    against 100 wxUSD, 50 borrowed, 50 at risk.
    """
    morpho, built, url = lab.morpho, lab.lab_contracts, lab.url
    owner, curator, borrower2, outsider = lab.accounts[4], lab.accounts[5], lab.accounts[3], lab.accounts[6]
    xusd = Contract.deploy(url, built["LabToken"], "xUSD-like", "xUSD", 6)
    wxusd = Contract.deploy(url, built["LabVault"], xusd.address, "Wrapped xUSD", "wxUSD")
    sxusd = Contract.deploy(url, built["LabToken"], "Staked xUSD", "sxUSD", 6)
    # A hostile name: terminal escapes and a bidi override must never reach the summary.
    vault = Contract.deploy(url, built["MetaVault"], morpho.morpho.address, lab.usdc.address,
                            "Meta \x1b[31mUSDC\u202e Prime", "mUSDC", curator, sender=owner)

    def market(collateral: str, price: int, sender: str | None = None) -> MarketParams:
        params = morpho.market_params(lab.usdc.address, collateral, lab.lltv, morpho.deploy_oracle(price).address)
        morpho.create_market(params, sender=sender)
        return params

    direct = market(xusd.address, oracle_price("1.26", 6, 6))
    weth = market(lab.weth.address, oracle_price(2000, 6, 18))
    wsteth = market(lab.wsteth.address, oracle_price(2300, 6, 18))
    wrapped = market(wxusd.address, oracle_price("1.26", 6, 6))
    private = market(xusd.address, oracle_price(1, 6, 6), sender=outsider)
    held = market(sxusd.address, oracle_price(1, 6, 6))

    blue = morpho.morpho
    lab.usdc.transact("mint", vault.address, 1_500 * USDC)
    lab.usdc.transact("mint", lab.lender, 600 * USDC)
    lab.usdc.transact("approve", blue.address, 600 * USDC, sender=lab.lender)
    xusd.transact("mint", lab.borrower, 2_000 * USDC)
    xusd.transact("approve", blue.address, 2_000 * USDC, sender=lab.borrower)
    lab.weth.transact("mint", lab.borrower, WETH)
    lab.weth.transact("approve", blue.address, WETH, sender=lab.borrower)
    xusd.transact("mint", borrower2, 100 * USDC)
    xusd.transact("approve", wxusd.address, 100 * USDC, sender=borrower2)
    wxusd.transact("deposit", 100 * USDC, borrower2, sender=borrower2)  # first deposit: 100e6 shares
    wxusd.transact("approve", blue.address, 100 * USDC, sender=borrower2)
    b = lab.borrower
    block = same_block(url, [
        (vault, "allocate", (direct.as_tuple(), 1_000 * USDC), owner),
        (vault, "allocate", (weth.as_tuple(), 300 * USDC), curator),
        (vault, "allocate", (wsteth.as_tuple(), 200 * USDC), owner),
        (blue, "supply", (direct.as_tuple(), 500 * USDC, 0, lab.lender, b""), lab.lender),
        (blue, "supplyCollateral", (direct.as_tuple(), 2_000 * USDC, b, b""), b),
        (blue, "borrow", (direct.as_tuple(), 600 * USDC, 0, b, b), b),
        (blue, "supplyCollateral", (weth.as_tuple(), WETH, b, b""), b),
        (blue, "borrow", (weth.as_tuple(), 100 * USDC, 0, b, b), b),
        (blue, "supply", (wrapped.as_tuple(), 100 * USDC, 0, lab.lender, b""), lab.lender),
        (blue, "supplyCollateral", (wrapped.as_tuple(), 100 * USDC, borrower2, b""), borrower2),
        (blue, "borrow", (wrapped.as_tuple(), 50 * USDC, 0, borrower2, borrower2), borrower2),
    ])
    return World(xusd, wxusd, sxusd, vault, owner, curator, direct, weth, wsteth, wrapped, private, held, block)


def key(params: MarketParams) -> str:
    return market_key("ethereum", params.id)


def only(items: list[dict[str, Any]], field: str, value: Any) -> dict[str, Any]:
    found = [item for item in items if item[field] == value]
    assert len(found) == 1, (value, [item[field] for item in items])
    return found[0]


def test_exposure_map_exact(chain: Lab, tmp_path: Path) -> None:
    world = build_world(chain)
    registry = write_registry(tmp_path, chain)
    xusd_key, wxusd_key = token_key("ethereum", world.xusd.address), token_key("ethereum", world.wxusd.address)
    client = pinned_client(chain.url, world.block)
    before = client.stats.calls.copy()
    exposure = run_exposure(
        world.xusd.address, "ethereum", registry, client,
        look_through={xusd_key: Decimal("0.23"), wxusd_key: Decimal("0.23")},
        holders_of={xusd_key: [world.sxusd.address]},
    )
    # Planned in rounds: 2 log scans (CreateMarket; Supply/Borrow/SupplyCollateral together) and 5 aggregate3
    # rounds (fee recipient; asset() look-through; market params+state; rates+oracles; positions, vault getters,
    # token metadata and feeds together).
    calls = client.stats.calls - before
    assert (calls["eth_getLogs"], calls["eth_call"]) == (2, 5)
    assert exposure["token"]["symbol"] == "xUSD" and exposure["pin"]["number"] == world.block
    markets = {m["key"]: m for m in exposure["markets"]}
    # The vault's WETH and wstETH markets do not take xUSD: they are not part of the map.
    assert set(markets) == {key(world.direct), key(world.wrapped), key(world.private), key(world.held)}

    direct = markets[key(world.direct)]
    assert direct["relation"] == "direct" and direct["collateral_symbol"] == "xUSD"
    assert (direct["total_supplied_raw"], direct["total_supplied"], num(direct["total_supplied_usd"])) == (
        str(1_500 * USDC), "1500", Decimal("1500"))
    assert (direct["total_borrowed_raw"], direct["total_borrowed"]) == (str(600 * USDC), "600")
    assert (direct["collateral_posted_raw"], direct["collateral_posted"]) == (str(2_000 * USDC), "2000")
    assert num(direct["collateral_value_usd"]) == Decimal("460")  # 2000 xUSD at the 0.23 look-through value
    assert num(direct["bad_debt_usd"]) == Decimal("140")  # 600 owed against 460 of collateral
    assert num(direct["lltv"]) == Decimal("0.86") and num(direct["utilization"]) == Decimal("0.4")
    assert direct["oracle"] == world.direct.oracle and direct["oracle_price"] == "1.26"
    assert direct["accrued_to"] == direct["last_update"]  # same block: nothing to accrue
    vault_position = only(direct["suppliers"], "address", world.vault.address)
    assert (vault_position["supplied_raw"], vault_position["at_risk_raw"]) == (str(1_000 * USDC), str(400 * USDC))
    assert (num(vault_position["supplied_usd"]), num(vault_position["at_risk_usd"])) == (
        Decimal("1000"), Decimal("400"))
    assert round(num(vault_position["look_through_loss_usd"]), 2) == Decimal("93.33")  # 140 * 1000 / 1500
    lender_position = only(direct["suppliers"], "address", chain.lender)
    assert (lender_position["supplied"], lender_position["at_risk"]) == ("500", "200")
    (borrower,) = direct["borrowers"]
    assert (borrower["address"], borrower["debt_raw"], borrower["collateral_raw"]) == (
        chain.borrower, str(600 * USDC), str(2_000 * USDC))

    # A market nobody uses, created by an outsider, is still found from its CreateMarket event.
    private = markets[key(world.private)]
    assert private["suppliers"] == [] and private["total_supplied_raw"] == "0"
    assert private["created_block"] < world.block

    # Look-through: an ERC-4626 over xUSD (found by its asset()) and a token the caller says holds xUSD.
    wrapped = markets[key(world.wrapped)]
    assert (wrapped["relation"], wrapped["collateral_path"]) == ("look-through", [world.xusd.address,
                                                                                   world.wxusd.address])
    assert (only(wrapped["suppliers"], "address", chain.lender)["at_risk"], num(wrapped["bad_debt_usd"])) == (
        "50", Decimal("27"))
    collaterals = {c["address"]: c for c in exposure["collaterals"]}
    assert collaterals[world.wxusd.address]["via"] == "asset()"
    assert collaterals[world.sxusd.address]["via"] == "holders_of"
    assert markets[key(world.held)]["relation"] == "look-through"

    # Per supplier, summed over every exposed market; the vault's identity read from its getters.
    suppliers = {s["address"]: s for s in exposure["suppliers"]}
    assert set(suppliers) == {world.vault.address, chain.lender}
    vault = suppliers[world.vault.address]
    assert (vault["kind"], vault["curator"], vault["owner"], vault["asset"]) == (
        "vault", world.curator, world.owner, chain.usdc.address)
    assert vault["name"] == "Meta [31mUSDC Prime" and vault["symbol"] == "mUSDC"
    assert (num(vault["supplied_usd"]), num(vault["at_risk_usd"]), len(vault["markets"])) == (
        Decimal("1000"), Decimal("400"), 1)
    lender = suppliers[chain.lender]
    assert (lender["kind"], lender["name"], lender["curator"], lender["owner"]) == ("account", None, None, None)
    lender_loss = round(num(lender["look_through_loss_usd"]), 2)  # 46.67 in the xUSD market + 27.00 in the wxUSD one
    assert (num(lender["supplied_usd"]), num(lender["at_risk_usd"]), lender_loss) == (
        Decimal("600"), Decimal("250"), Decimal("73.67"))
    (usdc_total,) = lender["by_loan_token"]
    assert (usdc_total["supplied_raw"], usdc_total["at_risk_raw"]) == (str(600 * USDC), str(250 * USDC))
    assert [s["address"] for s in exposure["suppliers"]] == [world.vault.address, chain.lender]  # by USD at risk
    assert num(exposure["totals"]["supplied_usd"]) == Decimal("1600")
    assert num(exposure["totals"]["borrowed_usd"]) == Decimal("650")
    # Only the venues the registry lists on the chain answer; each says how many of its markets lend against it.
    assert set(exposure["venues"]) == {"morpho_blue"}
    venue = exposure["venues"]["morpho_blue"]
    assert venue["markets"] == len(exposure["markets"]) == exposure["totals"]["markets"] == 4
    assert {m["venue"] for m in exposure["markets"]} == {"morpho_blue"}

    lines = summary_lines(exposure)
    text = "\n".join(lines)
    assert "\x1b" not in text and "\u202e" not in text
    assert "at risk $400.00 of $1,000.00 supplied" in text and f"curator {world.curator}" in text


def test_exposure_without_look_through_values_has_no_bad_debt_figure(chain: Lab, tmp_path: Path) -> None:
    world = build_world(chain)
    exposure = run_exposure(world.xusd.address, "ethereum", write_registry(tmp_path, chain),
                            pinned_client(chain.url, world.block))
    direct = only(exposure["markets"], "key", key(world.direct))
    assert direct["bad_debt_usd"] is None and direct["collateral_value_usd"] is None
    assert num(direct["total_borrowed_usd"]) == Decimal("600")  # the loan token is a par-priced hard asset
    assert {m["key"] for m in exposure["markets"]} == {key(world.direct), key(world.wrapped), key(world.private)}


def test_aave_reserve_listing_the_token(chain: Lab, tmp_path: Path) -> None:
    xusd = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], "xUSD-like", "xUSD", 6)
    aave = deploy_aave(chain.url, chain.deployer, [chain.usdc, xusd], [1, "1.26"])
    xusd.transact("mint", chain.borrower, 1_000 * USDC)
    chain.usdc.transact("mint", chain.lender, 5_000 * USDC)
    aave.supply(chain.usdc, 5_000 * USDC, chain.lender)
    supplied = aave.supply(xusd, 1_000 * USDC, chain.borrower)
    registry = write_registry(tmp_path, chain, aave.pool.address)
    exposure = run_exposure(xusd.address, "ethereum", registry,
                            pinned_client(chain.url, int(supplied["blockNumber"], 16)),
                            look_through={token_key("ethereum", xusd.address): Decimal("0.5")})
    (reserve,) = exposure["venues"]["aave_v3"]["listings"]
    assert (reserve["asset"], reserve["symbol"], reserve["ltv_bps"], reserve["liquidation_threshold_bps"]) == (
        xusd.address, "xUSD", 8000, 8250)
    assert reserve["collateral_enabled"] and reserve["active"] and not reserve["frozen"]
    assert (reserve["supplied_raw"], reserve["supplied"], num(reserve["supplied_value_usd"])) == (
        str(1_000 * USDC), "1000", Decimal("500"))
    assert reserve["borrowed_raw"] == "0"
    assert exposure["markets"] == []
    assert reserve["terms"] == {"LTV": "80%", "liquidation threshold": "82.5%"} and reserve["usable"]
    assert any("aave_v3" in line and "xUSD listed, LTV 80%" in line for line in summary_lines(exposure))


def test_bad_input_is_a_config_error(lab: Lab, tmp_path: Path) -> None:
    registry = write_registry(tmp_path, lab)
    client = pinned_client(lab.url)
    with pytest.raises(ConfigError, match=r"token '0x1234' is not an address"):
        run_exposure("0x1234", "ethereum", registry, client)
    with pytest.raises(ConfigError, match=r"no lending venue on chain 'plume' \(chains with one: ethereum\)"):
        run_exposure(lab.usdc.address, "plume", registry, client)
    mixed = lab.usdc.address[:2] + lab.usdc.address[2:].swapcase()
    if mixed != lab.usdc.address.lower() and mixed != "0x" + lab.usdc.address[2:].upper():
        with pytest.raises(ConfigError, match="checksum"):
            run_exposure(mixed, "ethereum", registry, client)
