"""LayerZero's own OFTAdapter and OFT (@layerzerolabs/oft-evm) on three anvil chains: the mesh is found from the one
OApp a spec names, the copies' supply is read on every chain and reconciled with what the adapter locks at home;
every figure below is computed from the transfers the test makes."""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from auditor.audit import AuditRequest, run_audit
from auditor.chain.reader import ConnectOptions
from auditor.findings import AuditResult
from auditor.lab.deploy import Contract, accounts, deploy_lab_token, install_multicall3
from auditor.lab.layerzero import OftLab, deploy_oft, relay, send, word
from auditor.lab.node import Anvil, rpc, start_anvil
from auditor.spec import load_registry, load_spec

UNIT = 10**6  # xUSD has 6 decimals, as Stream's did
CHAINS = {"ethereum": (1, 30101), "plume": (98866, 30370), "avalanche": (43114, 30106)}  # chain id, LayerZero eid


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Anvil], OftLab, Contract, Path]]:
    nodes: dict[str, Anvil] = {}
    try:
        for name, (chain_id, _eid) in CHAINS.items():
            nodes[name] = start_anvil(chain_id)
            install_multicall3(nodes[name].url)
        owner = accounts(nodes["ethereum"].url)[0]
        xusd = deploy_lab_token(nodes["ethereum"].url, "Stream xUSD", "xUSD", 6)
        usdc = deploy_lab_token(nodes["ethereum"].url, "USD Coin", "USDC", 6)
        lab = deploy_oft(xusd, "ethereum", {n: (nodes[n].url, eid) for n, (_c, eid) in CHAINS.items()}, owner)
        folder = tmp_path_factory.mktemp("layerzero")
        treasury = accounts(nodes["ethereum"].url)[3]
        usdc.transact("mint", treasury, 1_000 * UNIT)  # what backs the token
        (folder / "registry.yaml").write_text(
            "chains:\n" + "".join(f"  {n}: {{chain_id: {c}, lz_eid: {e}}}\n" for n, (c, e) in CHAINS.items())
            + f"assets:\n  ethereum:\n    USDC: {{address: \"{usdc.address}\", decimals: 6, price: par}}\n")
        (folder / "stream-xusd.yaml").write_text(
            "id: stream-xusd\nname: xUSD\ntoken:\n  symbol: xUSD\n  deployments:\n"
            f"    - {{chain: ethereum, address: \"{xusd.address}\"}}\n"
            f"  layerzero: {{chain: ethereum, address: \"{lab.adapter.address}\"}}\n"
            f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
        yield nodes, lab, xusd, folder
    finally:
        for node in nodes.values():
            node.stop()


def _audit(nodes: dict[str, Anvil], folder: Path) -> AuditResult:
    registry = load_registry(folder / "registry.yaml")
    spec = load_spec(folder / "stream-xusd.yaml", registry)
    pins: dict[str, str | int] = {n: int(rpc(node.url, "eth_blockNumber"), 16) for n, node in nodes.items()}
    options = ConnectOptions(rpc={n: node.url for n, node in nodes.items()}, blocks=pins, use_cache=False)
    return run_audit(AuditRequest(spec, registry, options))


def _mesh(result: AuditResult) -> dict[str, Any]:
    [found] = result.document["layerzero"]
    return found  # type: ignore[no-any-return]


def test_the_mesh_is_found_from_one_oapp_and_its_supply_reconciled(
        mesh: tuple[dict[str, Anvil], OftLab, Contract, Path]) -> None:
    nodes, lab, xusd, folder = mesh
    holder, plume_user, avalanche_user = (accounts(nodes["ethereum"].url)[i] for i in (5, 6, 7))
    xusd.transact("mint", holder, 1_000 * UNIT)
    send(lab, "ethereum", "plume", holder, plume_user, 300 * UNIT)
    send(lab, "ethereum", "avalanche", holder, avalanche_user, 200 * UNIT)

    result = _audit(nodes, folder)
    assert result.complete, result.gaps
    found = _mesh(result)
    assert {r["chain"] for r in found["remotes"]} == {"plume", "avalanche"}
    assert (found["locked"], found["remote_supply"], found["excess"]) == (500 * UNIT, 500 * UNIT, 0)
    figures = result.backing.issuers["stream-xusd"]
    # 1,000 minted at home, 500 of them locked for the 500 copies: 1,000 xUSD in all, once
    assert figures.supply_tokens == Decimal(1000) and figures.backing_ratio == Decimal(1)
    assert not [f for f in result.flags if f.id == "oft-supply"]

    # 50 more leave home but are not delivered yet: locked above the copies (in flight, low)
    send(lab, "ethereum", "plume", holder, plume_user, 50 * UNIT, deliver=False)
    in_flight = _audit(nodes, folder)
    assert _mesh(in_flight)["excess"] == -50 * UNIT
    [low] = [f for f in in_flight.flags if f.id == "oft-supply"]
    assert low.severity == "low" and "in flight" in low.message
    assert in_flight.backing.issuers["stream-xusd"].supply_tokens == Decimal(950)  # in flight is in no supply

    # delivered, then 100 copies minted on avalanche with nothing locked: the copies exceed the lock
    relay(lab)
    # (LayerZero's OFT copies have 18 decimals; 6 are shared across chains)
    lab.chains["avalanche"].oapp.transact("mintUnbacked", avalanche_user, 100 * 10**18, sender=lab.owner)
    unbacked = _audit(nodes, folder)
    assert (_mesh(unbacked)["locked"], _mesh(unbacked)["remote_supply"]) == (550 * UNIT, 650 * UNIT)
    [high] = [f for f in unbacked.flags if f.id == "oft-supply"]
    assert high.severity == "high" and high.evidence["excess"] == 100 * UNIT
    figures = unbacked.backing.issuers["stream-xusd"]
    assert figures.supply_tokens == Decimal(1100)  # the unbacked copies are supply: backing 1,000 of 1,100
    assert figures.backing_ratio is not None
    assert abs(figures.backing_ratio - Decimal(1000) / Decimal(1100)) < Decimal("1e-27")


def test_a_peer_on_an_endpoint_no_registry_chain_has_is_a_gap(
        mesh: tuple[dict[str, Anvil], OftLab, Contract, Path]) -> None:
    nodes, lab, _xusd, folder = mesh
    snapshot = rpc(nodes["ethereum"].url, "evm_snapshot")
    try:
        lab.adapter.transact("setPeer", 30999, word("0x" + "77" * 20), sender=lab.owner)
        result = _audit(nodes, folder)
    finally:
        rpc(nodes["ethereum"].url, "evm_revert", [snapshot])
    assert not result.reads_complete
    assert any("eid 30999" in gap.what for gap in result.gaps)
    assert _mesh(result)["unknown_eids"] == [30999]


def _draw_traffic(seed: int) -> list[tuple[str, ...]]:
    """Sends between the three chains (some left in flight), relays, forged mints: a seed's order of them."""
    rng = random.Random(seed)
    held = {"ethereum": 2_000, "plume": 0, "avalanche": 0}  # whole xUSD the holder has on each chain
    ops: list[tuple[str, ...]] = []
    pending: list[tuple[str, int]] = []
    for _ in range(rng.randint(5, 12)):
        kind = rng.choices(["send", "relay", "forge"], weights=(6, 2, 1))[0]
        if kind == "send":
            src = rng.choice([c for c, amount in held.items() if amount > 0])
            dst = rng.choice([c for c in CHAINS if c != src])
            amount = rng.randint(1, held[src])
            held[src] -= amount
            deliver = rng.random() < 0.7
            ops.append(("send", src, dst, str(amount), "deliver" if deliver else "hold"))
            if deliver:
                for chain, queued in pending:  # the relayer delivers in order: what waited arrives first
                    held[chain] += queued
                pending = []
                held[dst] += amount
            else:
                pending.append((dst, amount))
        elif kind == "relay":
            for chain, queued in pending:
                held[chain] += queued
            pending = []
            ops.append(("relay",))
        else:
            ops.append(("forge", rng.choice(["plume", "avalanche"]), str(rng.randint(1, 500))))
    return ops


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_traffic_reconciles_to_its_construction(seed: int, mesh: tuple[dict[str, Anvil], OftLab, Contract,
                                                                               Path]) -> None:
    nodes, lab, xusd, folder = mesh
    snapshots = {name: rpc(node.url, "evm_snapshot") for name, node in nodes.items()}
    holder = accounts(nodes["ethereum"].url)[8]
    minted = int(rpc(nodes["ethereum"].url, "eth_call", [{"to": xusd.address, "data": "0x18160ddd"}, "latest"]), 16)
    try:
        xusd.transact("mint", holder, 2_000 * UNIT)
        locked = int(lab.token.call("balanceOf", lab.adapter.address))  # what earlier tests left locked
        remote = {c: int(lab.chains[c].oapp.call("totalSupply")) // 10**12 for c in ("plume", "avalanche")}
        queued: list[tuple[str, str, int]] = []
        for op in _draw_traffic(seed):
            if op[0] == "send":
                _kind, src, dst, amount, mode = op
                raw = int(amount) * (UNIT if src == "ethereum" else 10**18)
                send(lab, src, dst, holder, holder, raw, deliver=mode == "deliver")
                # at the send: locked at home (from home) or burnt (from a copy)
                locked, remote = _sent(locked, remote, src, int(amount))
                queued.append((src, dst, int(amount)))
                if mode == "deliver":
                    for _src, q_dst, q_amount in queued:
                        locked, remote = _arrived(locked, remote, q_dst, q_amount)
                    queued = []
            elif op[0] == "relay":
                relay(lab)
                for _src, q_dst, q_amount in queued:
                    locked, remote = _arrived(locked, remote, q_dst, q_amount)
                queued = []
            else:
                _kind, chain, amount = op
                lab.chains[chain].oapp.transact("mintUnbacked", holder, int(amount) * 10**18, sender=lab.owner)
                remote[chain] += int(amount) * UNIT
        result = _audit(nodes, folder)
        found = _mesh(result)
        assert found["locked"] == locked
        assert found["remote_supply"] == sum(remote.values())
        assert found["excess"] == sum(remote.values()) - locked
        supply = result.backing.issuers["stream-xusd"].supply_tokens
        assert supply == Decimal(minted + 2_000 * UNIT - locked + sum(remote.values())) / UNIT
        flags = [f for f in result.flags if f.id == "oft-supply"]
        expected = "high" if found["excess"] > 0 else ("low" if found["excess"] < 0 else None)
        assert [f.severity for f in flags] == ([expected] if expected else [])
    finally:
        lab.in_flight.clear()
        for name, node in nodes.items():
            rpc(node.url, "evm_revert", [snapshots[name]])


def _sent(locked: int, remote: dict[str, int], src: str, amount: int) -> tuple[int, dict[str, int]]:
    if src == "ethereum":
        return locked + amount * UNIT, remote
    return locked, {**remote, src: remote[src] - amount * UNIT}


def _arrived(locked: int, remote: dict[str, int], dst: str, amount: int) -> tuple[int, dict[str, int]]:
    if dst == "ethereum":
        return locked - amount * UNIT, remote
    return locked, {**remote, dst: remote[dst] + amount * UNIT}


def test_the_mesh_is_in_the_terminal_and_the_report(mesh: tuple[dict[str, Anvil], OftLab, Contract, Path]) -> None:
    import json

    from auditor import numbers
    from auditor.audit import summary_lines
    from auditor.report.render import render_report
    from auditor.report.sign import canonical_json

    nodes, _lab, _xusd, folder = mesh
    result = _audit(nodes, folder)
    found = _mesh(result)
    unit = Decimal(10) ** found["decimals"]
    line = next(line for line in summary_lines(result) if "LayerZero copies" in line)
    copies, locked = Decimal(found["remote_supply"]) / unit, Decimal(found["locked"]) / unit
    assert f"{numbers.tokens(copies)} against {numbers.tokens(locked)} locked at home" in line
    canonical = canonical_json(result.document)
    html = render_report(json.loads(canonical), findings_json=canonical, signature=None)
    assert "Copies across chains (LayerZero)" in html and "adapter (locks at home)" in html
    for oapp in [found["home"], *found["remotes"]]:
        assert oapp["address"] in html


def test_a_native_oft_locks_nothing_and_counts_every_copy_once(
        mesh: tuple[dict[str, Anvil], OftLab, Contract, Path], tmp_path: Path) -> None:
    nodes, _lab, _xusd, folder = mesh
    snapshots = {name: rpc(node.url, "evm_snapshot") for name, node in nodes.items()}
    try:
        owner = accounts(nodes["ethereum"].url)[0]
        holder = accounts(nodes["ethereum"].url)[9]
        native = deploy_oft(None, "ethereum", {n: (nodes[n].url, eid) for n, (_c, eid) in CHAINS.items()}, owner,
                            symbol="nUSD")
        home = native.chains["ethereum"].oapp
        home.transact("mintUnbacked", holder, 1_000 * 10**18, sender=owner)  # a native OFT mints where it likes
        send(native, "ethereum", "plume", holder, holder, 400 * 10**18)
        (tmp_path / "registry.yaml").write_text((folder / "registry.yaml").read_text())
        (tmp_path / "native.yaml").write_text(
            "id: native\nname: native\ntoken:\n  symbol: nUSD\n  deployments:\n"
            f"    - {{chain: ethereum, address: \"{home.address}\"}}\n"
            f"  layerzero: {{chain: ethereum, address: \"{home.address}\"}}\n")
        registry = load_registry(tmp_path / "registry.yaml")
        spec = load_spec(tmp_path / "native.yaml", registry)
        pins: dict[str, str | int] = {n: int(rpc(node.url, "eth_blockNumber"), 16) for n, node in nodes.items()}
        result = run_audit(AuditRequest(spec, registry, ConnectOptions(
            rpc={n: node.url for n, node in nodes.items()}, blocks=pins, use_cache=False)))
    finally:
        for name, node in nodes.items():
            rpc(node.url, "evm_revert", [snapshots[name]])
    found = _mesh(result)
    assert found["model"] == "native OFT (nothing locked)" and found["excess"] == 0
    assert result.backing.issuers["native"].supply_tokens == Decimal(1000)  # 600 at home, 400 on plume: once
    assert not [f for f in result.flags if f.id == "oft-supply"]
