"""The Stream/Elixir collapse rebuilt on two local chains from real contracts, transaction by transaction.

Ethereum (chain id 1) holds USDC, USDT, a USDC/USDT pool, Stream's xUSD vault, Elixir's deUSD minting
vault and a lock-and-mint bridge escrow. The lending chain (Plume, 98866) holds bridged USDC and deUSD,
Stream's second xUSD vault, real Morpho Blue markets with fixed-price oracles, and an xUSD/USDC pool.
The script replays the mechanism of the public post-mortems in three stages and records a pin (block
per chain) after each: the loop built with outside lenders' money (late October), Elixir lending its
reserves to Stream against xUSD (early November), and the loss (after 4 November).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from auditor.lab import LabError
from auditor.lab.compile import compile_lab_contracts, compile_morpho
from auditor.lab.deploy import Contract, accounts, install_multicall3
from auditor.lab.morpho import MarketParams, MorphoLab, deploy_morpho, oracle_price
from auditor.lab.node import Anvil, rpc, start_anvil
from auditor.spec import Field, Number, Obj, Seq, SpecError, Text, load_document

PARAMS_FILE = Path(__file__).with_name("stream_elixir.yaml")
PLUME_CHAIN_ID = 98866  # Plume mainnet (viem plumeMainnet)
WAD = 10**18
USERS = 3  # outside depositors, each depositing a third of users_usdc
STAGES = ("late-october", "early-november", "after-loss")
PIN_TIMES = {  # when an analyst would have looked
    "late-october": "2025-10-28T12:00:00Z",
    "early-november": "2025-11-03T12:00:00Z",
    "after-loss": "2025-11-05T12:00:00Z",
}

Say = Callable[[str], None]

_POSITIVE = Number(minimum=0)
_RATIO = Number(minimum=0, maximum=1)
_MARKET = Obj({"lltv": Field(_RATIO, required=True), "borrow_ltv": Field(_RATIO, required=True),
               "oracle_price": Field(_POSITIVE, required=True)})
PARAMS_FORMAT = Obj({
    "start_time": Field(Text("ISO time of the first block"), required=True),
    "timeline": Field(Obj({"block_seconds": Field(Number(minimum=1, maximum=3600, integer=True), required=True),
                           "deposits_every_days": Field(Number(minimum=1, maximum=60, integer=True), required=True),
                           "loop": Field(Text("ISO time"), required=True),
                           "loop_every_hours": Field(Number(minimum=1, maximum=24, integer=True), required=True),
                           "early_november": Field(Text("ISO time"), required=True),
                           "loss": Field(Text("ISO time"), required=True)}), required=True),
    "history": Field(Obj({"from": Field(Text("ISO time of the first point"), required=True),
                          "every": Field(Text("a step such as 1d or 12h"), required=True)}), required=True),
    "users_usdc": Field(_POSITIVE, required=True),
    "target_xusd_supply": Field(_POSITIVE, required=True),
    "other_deusd_holders": Field(_POSITIVE, required=True),
    "elixir_lent_share": Field(Number(minimum=0, maximum=0.95), required=True),
    "elixir_rounds": Field(Number(minimum=1, maximum=50, integer=True), required=True),
    "markets": Field(Obj({name: Field(_MARKET, required=True)
                          for name in ("deusd_usdc", "xusd_usdc", "elixir_xusd")}), required=True),
    "borrow_apr": Field(_RATIO, required=True),
    "outside_lenders": Field(Seq(Obj({"label": Field(Text(), required=True),
                                      "xusd_usdc": Field(_POSITIVE, default=0),
                                      "deusd_usdc": Field(_POSITIVE, default=0)}), min_items=1), required=True),
    "loss": Field(Obj({"moved_to_external_manager": Field(_POSITIVE, required=True),
                       "xusd_market_price": Field(_POSITIVE, required=True)}), required=True),
    "claims": Field(Obj({"assets_usd": Field(_POSITIVE, required=True),
                         "apy": Field(_POSITIVE, required=True)}), required=True),
})


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    """The demo's parameters, validated like a spec: errors name file, line and field."""
    values: dict[str, Any] = load_document(path, PARAMS_FORMAT)
    events = schedule(values, str(path))
    # Block times only move forward: each stage must start after the previous pin and before its own.
    for (before, earlier), (after, later) in itertools.pairwise(events):
        if later <= earlier:
            raise SpecError(str(path), 1, after, f"{utc_text(later)} is not after {before} ({utc_text(earlier)})")
    return values


def schedule(params: dict[str, Any], source: str = "parameters") -> list[tuple[str, int]]:
    """Every fixed time of the reconstruction in chain order: stage starts (parameters) and pins."""
    def at(field_path: str, text: str) -> int:
        try:
            return timestamp(text)
        except ValueError:
            raise SpecError(source, 1, field_path,
                            "expected an ISO time with its zone, such as 2025-10-27T00:00:00Z") from None

    timeline = params["timeline"]
    start = at("start_time", params["start_time"])
    last_deposit = start + USERS * timeline["deposits_every_days"] * 86_400
    return [("start_time", start),
            ("the last user deposit (start_time + 3 x timeline.deposits_every_days)", last_deposit),
            ("timeline.loop", at("timeline.loop", timeline["loop"])),
            ("late-october pin", timestamp(PIN_TIMES["late-october"])),
            ("timeline.early_november", at("timeline.early_november", timeline["early_november"])),
            ("early-november pin", timestamp(PIN_TIMES["early-november"])),
            ("timeline.loss", at("timeline.loss", timeline["loss"])),
            ("after-loss pin", timestamp(PIN_TIMES["after-loss"]))]


def usd(amount: Any, decimals: int = 6) -> int:
    return int(Decimal(str(amount)) * 10**decimals)


def timestamp(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # a naive time would silently take the machine's zone
        raise ValueError(f"{text!r} has no time zone")
    return int(moment.timestamp())


def utc_text(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


class DemoError(Exception):
    """A set-up step failed: says which, why, and how to fix it."""


@contextmanager
def step(name: str, fix: str = "") -> Iterator[None]:
    try:
        yield
    except DemoError:
        raise
    except (LabError, OSError) as exc:
        hint = f" Fix: {fix}" if fix else ""
        raise DemoError(f"step '{name}' failed: {exc}.{hint}") from exc


@dataclass
class World:
    """Everything deployed, with the actors' addresses and the pins taken after each stage."""

    eth: Anvil
    plume: Anvil
    actors: dict[str, str]
    eth_contracts: dict[str, Contract] = field(default_factory=dict)
    plume_contracts: dict[str, Contract] = field(default_factory=dict)
    markets: dict[str, MarketParams] = field(default_factory=dict)
    morpho: MorphoLab | None = None
    pins: dict[str, dict[str, int]] = field(default_factory=dict)
    relay_nonce: int = 0

    def stop(self) -> None:
        for node in (self.eth, self.plume):
            node.stop()


def start_nodes(params: dict[str, Any]) -> tuple[Anvil, Anvil]:
    # A fixed genesis time and block interval: the chains, their hashes and Morpho's interest are the same
    # on every run, whatever the wall clock and however long each step takes.
    start, interval = timestamp(params["start_time"]), params["timeline"]["block_seconds"]
    fix = "run `npm ci` (installs anvil), check that loopback ports are free, see the anvil log named above"
    with step("start the ethereum node (anvil, chain id 1)", fix):
        eth = start_anvil(1, timestamp=start, block_interval=interval, accounts=12)
    try:
        with step(f"start the lending-chain node (anvil, chain id {PLUME_CHAIN_ID})", fix):
            plume = start_anvil(PLUME_CHAIN_ID, timestamp=start, block_interval=interval, accounts=12)
    except DemoError:
        eth.stop()
        raise
    return eth, plume


def build(params: dict[str, Any], say: Say, eth: Anvil, plume: Anvil) -> World:
    """Deploy both chains and replay the three stages; returns the world with its pins."""
    names = ["relayer", "user1", "user2", "user3", "stream", "elixir", "deusd_holder", "external_manager",
             "lender1", "lender2", "lender3"]
    with step("read the node's dev accounts"):
        dev = accounts(eth.url)
    if len(dev) < len(names):
        raise DemoError(f"step 'read dev accounts' failed: anvil offers {len(dev)} accounts, need {len(names)}")
    world = World(eth, plume, dict(zip(names, dev, strict=False)))
    deploy(world, params, say)
    stage_late_october(world, params, say)
    pin(world, "late-october", say)
    next_block_at(world, timestamp(params["timeline"]["early_november"]), "start early November")
    stage_early_november(world, params, say)
    pin(world, "early-november", say)
    next_block_at(world, timestamp(params["timeline"]["loss"]), "start the loss")
    stage_loss(world, params, say)
    pin(world, "after-loss", say)
    return world


def next_block_at(world: World, when: int, what: str) -> None:
    """Stamp the next block of both chains `when`; blocks after it follow at the fixed interval."""
    for chain, node in (("ethereum", world.eth), ("plume", world.plume)):
        with step(what):
            latest = int(rpc(node.url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
            if latest >= when:  # anvil would refuse; say which stage ran long instead
                raise DemoError(f"step '{what}' failed: the {chain} chain already reached {utc_text(latest)}, not "
                                f"before {utc_text(when)}; lower timeline.block_seconds or move the times apart")
            rpc(node.url, "evm_setNextBlockTimestamp", [when])


def deploy(world: World, params: dict[str, Any], say: Say) -> None:
    a = world.actors
    with step("compile contracts (solc-js)", "run `npm ci`; the first compile takes ~10 s, later ones are cached"):
        lab = compile_lab_contracts()
        morpho_build = compile_morpho()
    say("deploying tokens, vaults, bridge and pool on ethereum")
    with step("deploy on ethereum"):
        eth = world.eth.url
        install_multicall3(eth)
        c = world.eth_contracts
        c["usdc"] = Contract.deploy(eth, lab["LabToken"], "USD Coin", "USDC", 6, sender=a["relayer"])
        c["usdt"] = Contract.deploy(eth, lab["LabToken"], "Tether USD", "USDT", 6, sender=a["relayer"])
        c["pool"] = Contract.deploy(eth, lab["ConstantSumPool"], c["usdc"].address, c["usdt"].address, WAD,
                                    sender=a["relayer"])
        c["usdc"].transact("mint", c["pool"].address, usd(100_000_000))
        c["usdt"].transact("mint", c["pool"].address, usd(100_000_000))
        c["xusd"] = Contract.deploy(eth, lab["IssuerVault"], c["usdc"].address, "Stream xUSD", "xUSD", 6, 6,
                                    sender=a["stream"])
        c["deusd"] = Contract.deploy(eth, lab["IssuerVault"], c["usdt"].address, "Elixir deUSD", "deUSD", 18, 6,
                                     sender=a["elixir"])
        c["escrow"] = Contract.deploy(eth, lab["BridgeEscrow"], sender=a["relayer"])
    say("deploying Morpho Blue, bridged tokens, Stream's second vault and oracles on the lending chain")
    with step("deploy on the lending chain"):
        plume = world.plume.url
        install_multicall3(plume)
        p = world.plume_contracts
        morpho = deploy_morpho(plume, a["relayer"], compiled=morpho_build)
        world.morpho = morpho
        rate = int(Decimal(str(params["borrow_apr"])) * WAD) // (365 * 86_400)
        p["irm"] = Contract.deploy(plume, morpho_build["FixedRateIrm"], rate, sender=a["relayer"])
        morpho.enable_irm(p["irm"].address)
        for market in params["markets"].values():
            lltv = int(Decimal(str(market["lltv"])) * WAD)
            if not morpho.morpho.call("isLltvEnabled", lltv):
                morpho.enable_lltv(lltv)
        p["usdc"] = Contract.deploy(plume, lab["BridgedToken"], "USD Coin (bridged)", "USDC", 6, sender=a["relayer"])
        p["deusd"] = Contract.deploy(plume, lab["BridgedToken"], "Elixir deUSD (bridged)", "deUSD", 18,
                                     sender=a["relayer"])
        p["xusd"] = Contract.deploy(plume, lab["IssuerVault"], p["usdc"].address, "Stream xUSD", "xUSD", 6, 6,
                                    sender=a["stream"])
        p["pool"] = Contract.deploy(plume, lab["ConstantSumPool"], p["xusd"].address, p["usdc"].address, WAD,
                                    sender=a["relayer"])
        collateral = {"deusd_usdc": (p["deusd"], 18), "xusd_usdc": (p["xusd"], 6), "elixir_xusd": (p["xusd"], 6)}
        for name, market in params["markets"].items():
            token, decimals = collateral[name]
            oracle = morpho.deploy_oracle(oracle_price(Decimal(str(market["oracle_price"])), 6, decimals))
            p[f"oracle_{name}"] = oracle
            world.markets[name] = MarketParams(p["usdc"].address, token.address, oracle.address, p["irm"].address,
                                               int(Decimal(str(market["lltv"])) * WAD))
            morpho.create_market(world.markets[name])


def bridge_out(world: World, token: str, amount: int, sender: str, recipient: str) -> None:
    """Lock on ethereum, relay a mint on the lending chain (the demo plays the relayer)."""
    e, p = world.eth_contracts, world.plume_contracts
    e[token].transact("approve", e["escrow"].address, amount, sender=sender)
    e["escrow"].transact("lock", e[token].address, amount, recipient, sender=sender)
    p[token].transact("relayMint", recipient, amount, world.relay_nonce, sender=world.actors["relayer"])
    world.relay_nonce += 1


def bridge_back(world: World, token: str, amount: int, sender: str, recipient: str) -> None:
    """Burn on the lending chain, release the locked originals on ethereum."""
    e, p = world.eth_contracts, world.plume_contracts
    p[token].transact("burnToExit", amount, recipient, sender=sender)
    e["escrow"].transact("release", e[token].address, recipient, amount, sender=world.actors["relayer"])


def swap(world: World, token_in: str, amount: int, sender: str) -> None:
    e = world.eth_contracts
    e[token_in].transact("approve", e["pool"].address, amount, sender=sender)
    e["pool"].transact("swap", e[token_in].address, amount, sender, sender=sender)


def deposit(vault: Contract, asset: Contract, amount: int, sender: str) -> None:
    asset.transact("approve", vault.address, amount, sender=sender)
    vault.transact("deposit", amount, sender, sender=sender)


def stage_late_october(world: World, params: dict[str, Any], say: Say) -> None:
    a, e, p = world.actors, world.eth_contracts, world.plume_contracts
    morpho = world.morpho
    assert morpho is not None
    every = params["timeline"]["deposits_every_days"] * 86_400
    say(f"outside users deposit ${params['users_usdc']:,} USDC into Stream's vault, one every "
        f"{params['timeline']['deposits_every_days']} days; others mint deUSD")
    users = [a["user1"], a["user2"], a["user3"]]
    total = usd(params["users_usdc"])
    for index, user in enumerate(users):
        next_block_at(world, timestamp(params["start_time"]) + (index + 1) * every, f"deposit of user {index + 1}")
        with step("outside deposits"):
            share = total // USERS + (total % USERS if index == 0 else 0)
            e["usdc"].transact("mint", user, share)
            deposit(e["xusd"], e["usdc"], share, user)
    with step("outside deposits"):
        holder = usd(params["other_deusd_holders"])
        e["usdt"].transact("mint", a["deusd_holder"], holder)
        deposit(e["deusd"], e["usdt"], holder, a["deusd_holder"])
    say("outside lenders bridge USDC to the lending chain and fund the deUSD and xUSD markets")
    with step("outside lenders fund the markets"):
        for index, lender in enumerate(params["outside_lenders"]):
            address = a[f"lender{index + 1}"]
            amount = usd(lender["xusd_usdc"]) + usd(lender["deusd_usdc"])
            e["usdc"].transact("mint", address, amount)
            bridge_out(world, "usdc", amount, address, address)
            for market in ("xusd_usdc", "deusd_usdc"):
                if lender[market]:
                    morpho.supply(world.markets[market], usd(lender[market]), address)
    stream = a["stream"]
    loop_start = timestamp(params["timeline"]["loop"])
    spacing = params["timeline"]["loop_every_hours"] * 3600
    next_block_at(world, loop_start, "start the loop")
    say("Stream takes the deposits, swaps to USDT, mints deUSD and bridges it to the lending chain")
    with step("Stream mints and bridges deUSD"):
        taken = usd(params["users_usdc"])
        e["xusd"].transact("moveFunds", stream, taken, sender=stream)
        swap(world, "usdc", taken, stream)
        deposit(e["deusd"], e["usdt"], taken, stream)
        bridge_out(world, "deusd", taken * 10**12, stream, stream)
    deusd_market = params["markets"]["deusd_usdc"]
    xusd_market = params["markets"]["xusd_usdc"]
    with step("Stream posts deUSD and loops xUSD"):
        morpho.supply_collateral(world.markets["deusd_usdc"], taken * 10**12, stream)
        borrowed = int(Decimal(taken) * Decimal(str(deusd_market["borrow_ltv"])) * Decimal(str(
            deusd_market["oracle_price"])))
        morpho.borrow(world.markets["deusd_usdc"], borrowed, stream)
        supply = e["xusd"].call("totalSupply")
        target = usd(params["target_xusd_supply"])
        per_xusd = Decimal(str(xusd_market["borrow_ltv"])) * Decimal(str(xusd_market["oracle_price"]))
        iteration = 0
        while supply < target:
            iteration += 1
            if iteration > 1:
                next_block_at(world, loop_start + (iteration - 1) * spacing, f"loop iteration {iteration}")
            minted = min(p["usdc"].call("balanceOf", stream), target - supply)
            deposit(p["xusd"], p["usdc"], minted, stream)
            morpho.supply_collateral(world.markets["xusd_usdc"], minted, stream)
            supply += minted
            say(f"  loop iteration {iteration}: minted {minted / 1e6:,.0f} xUSD, xUSD supply {supply / 1e6:,.0f}")
            if supply < target:
                morpho.borrow(world.markets["xusd_usdc"], int(Decimal(minted) * per_xusd), stream)
            if iteration > 200:
                raise DemoError("the loop does not reach the target supply: raise borrow_ltv or oracle_price")


def stage_early_november(world: World, params: dict[str, Any], say: Say) -> None:
    a, e, p = world.actors, world.eth_contracts, world.plume_contracts
    morpho = world.morpho
    assert morpho is not None
    elixir, stream = a["elixir"], a["stream"]
    reserves = e["usdt"].call("balanceOf", e["deusd"].address)
    share = Decimal(str(params["elixir_lent_share"]))
    to_lend = int(Decimal(reserves) * share / (1 - share))
    rounds = params["elixir_rounds"]
    market = params["markets"]["elixir_xusd"]
    per_xusd = Decimal(str(market["borrow_ltv"])) * Decimal(str(market["oracle_price"]))
    say(f"Elixir lends {to_lend / 1e6:,.0f} USDC of deUSD reserves to Stream against xUSD, in {rounds} rounds")
    with step("Elixir lends to Stream, Stream buys deUSD"):
        for index in range(rounds):
            tranche = to_lend // rounds + (to_lend % rounds if index == rounds - 1 else 0)
            e["deusd"].transact("moveFunds", elixir, tranche, sender=elixir)
            swap(world, "usdt", tranche, elixir)
            bridge_out(world, "usdc", tranche, elixir, elixir)
            morpho.supply(world.markets["elixir_xusd"], tranche, elixir)
            collateral = int(Decimal(tranche) / per_xusd) + 1
            p["xusd"].transact("operatorMint", stream, collateral, sender=stream)
            morpho.supply_collateral(world.markets["elixir_xusd"], collateral, stream)
            morpho.borrow(world.markets["elixir_xusd"], tranche, stream)
            bridge_back(world, "usdc", tranche, stream, stream)
            swap(world, "usdc", tranche, stream)
            deposit(e["deusd"], e["usdt"], tranche, stream)
            say(f"  round {index + 1}: Elixir lent {tranche / 1e6:,.0f}, Stream minted {collateral / 1e6:,.0f} "
                f"xUSD as collateral and bought {tranche / 1e6:,.0f} deUSD")


def stage_loss(world: World, params: dict[str, Any], say: Say) -> None:
    a, p = world.actors, world.plume_contracts
    moved = usd(params["loss"]["moved_to_external_manager"])
    price = Decimal(str(params["loss"]["xusd_market_price"]))
    say(f"Stream moves {moved / 1e6:,.0f} USDC to an 'external manager'; xUSD trades at ${price}; oracles stay put")
    with step("the loss"):
        p["xusd"].transact("moveFunds", a["external_manager"], moved, sender=a["stream"])
        p["pool"].transact("setPrice", int(price * WAD), sender=a["relayer"])


def pin(world: World, stage: str, say: Say) -> None:
    """Move both chains to the stage's analysis time and record the block each audit reads at."""
    next_block_at(world, timestamp(PIN_TIMES[stage]), f"pin {stage}")
    blocks = {}
    for chain, node in (("ethereum", world.eth), ("plume", world.plume)):
        with step(f"pin {stage}"):
            rpc(node.url, "evm_mine", [])
            blocks[chain] = int(rpc(node.url, "eth_blockNumber"), 16)
    world.pins[stage] = blocks
    say(f"pinned {stage}: ethereum block {blocks['ethereum']}, lending chain block {blocks['plume']}")


def write_inputs(world: World, params: dict[str, Any], folder: Path) -> dict[str, Path]:
    """The reconstruction's registry and specs: the same format as protocols/, other addresses."""
    folder.mkdir(parents=True, exist_ok=True)
    a, e, p = world.actors, world.eth_contracts, world.plume_contracts
    assert world.morpho is not None
    registry = folder / "registry.yaml"
    registry.write_text(
        "# Registry of the local reconstruction (written by `auditor demo`).\n"
        f"chains:\n  ethereum: {{chain_id: 1}}\n  plume: {{chain_id: {PLUME_CHAIN_ID}}}\n"
        "assets:\n"
        f"  ethereum:\n    USDC: {{address: \"{e['usdc'].address}\", decimals: 6, price: par}}\n"
        f"    USDT: {{address: \"{e['usdt'].address}\", decimals: 6, price: par}}\n"
        "  plume:\n    # bridged USDC, backed 1:1 by USDC locked in the ethereum escrow\n"
        f"    USDC: {{address: \"{p['usdc'].address}\", decimals: 6, price: par}}\n"
        "venues:\n  morpho_blue:\n"
        f"    plume: {{address: \"{world.morpho.morpho.address}\", from_block: 0}}\n"
        "pools:\n  plume:\n"
        f"    xUSD-USDC: {{address: \"{p['pool'].address}\", kind: constant_price, base: \"{p['xusd'].address}\", "
        f"quote: \"{p['usdc'].address}\"}}\n"
    )
    stream = folder / "stream-xusd.yaml"
    stream.write_text(
        "# Stream Finance xUSD, as rebuilt by `auditor demo`.\n"
        "id: stream-xusd\nname: Stream Finance xUSD (reconstruction)\n"
        "token:\n  symbol: xUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{e['xusd'].address}\"}}\n"
        f"    - {{chain: plume, address: \"{p['xusd'].address}\"}}\n"
        "accounts:\n"
        f"  - {{chain: ethereum, address: \"{a['stream']}\", label: looping wallet}}\n"
        f"  - {{chain: plume, address: \"{a['stream']}\", label: looping wallet (plume)}}\n"
        f"  - {{chain: ethereum, address: \"{e['xusd'].address}\", label: StreamVault}}\n"
        f"  - {{chain: plume, address: \"{p['xusd'].address}\", label: StreamVault (plume)}}\n"
        f"claims:\n  as_of: 2025-11-01\n  assets_usd: {params['claims']['assets_usd']}\n"
        f"  apy: {params['claims']['apy']}\n"
        "  strategies: [delta-neutral trading, hedged liquidity providing]\n"
        "offchain:\n"
        f"  - {{label: external fund manager, usd: {params['loss']['moved_to_external_manager']}}}\n"
        "depends_on: [elixir-deusd]\n"
    )
    elixir = folder / "elixir-deusd.yaml"
    elixir.write_text(
        "# Elixir deUSD, as rebuilt by `auditor demo`.\n"
        "id: elixir-deusd\nname: Elixir deUSD (reconstruction)\n"
        "token:\n  symbol: deUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{e['deusd'].address}\"}}\n"
        f"    - {{chain: plume, address: \"{p['deusd'].address}\", bridged: true}}\n"
        f"  escrow:\n    - {{chain: ethereum, address: \"{e['escrow'].address}\", label: bridge escrow}}\n"
        "accounts:\n"
        f"  - {{chain: ethereum, address: \"{e['deusd'].address}\", label: deUSD minting (reserves)}}\n"
        f"  - {{chain: ethereum, address: \"{a['elixir']}\", label: Elixir treasury}}\n"
        f"  - {{chain: plume, address: \"{a['elixir']}\", label: Elixir treasury (plume)}}\n"
        "depends_on: [stream-xusd]\n"
    )
    return {"registry": registry, "stream-xusd": stream, "elixir-deusd": elixir}
