"""LayerZero OFT on lab chains: the lab's minimal endpoint on each chain, LayerZero's own OFTAdapter locking the
canonical token at home and LayerZero's OFT copies elsewhere (compiled from @layerzerolabs/oft-evm), peers set
both ways, and a relayer that hands each sent message to the destination chain's endpoint, as LayerZero's
executors do. Endpoint ids are LayerZero V2's (auditor.adapters.layerzero_oft)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eth_abi.abi import decode

from auditor.chain.abi import event_topic
from auditor.lab import LabError
from auditor.lab.compile import compile_layerzero
from auditor.lab.deploy import Contract

SENT_TOPIC = event_topic("Sent(address,uint32,bytes32,uint64,bytes32,bytes)")


def word(address: str) -> bytes:
    """An address as LayerZero's bytes32 peer (left-padded)."""
    return bytes(12) + bytes.fromhex(address[2:])


@dataclass
class OftChain:
    name: str
    url: str
    eid: int
    endpoint: Contract
    oapp: Contract  # the OFTAdapter at home, an OFT elsewhere


@dataclass
class OftLab:
    token: Contract | None  # the canonical token on the home chain (None: a native OFT)
    home: str
    owner: str
    chains: dict[str, OftChain] = field(default_factory=dict)
    in_flight: list[tuple[str, str, tuple[int, bytes, int], bytes, bytes]] = field(default_factory=list)

    @property
    def adapter(self) -> Contract:
        return self.chains[self.home].oapp


def deploy_oft(token: Contract | None, home: str, chains: Mapping[str, tuple[str, int]], owner: str,
               symbol: str = "xUSD") -> OftLab:
    """An OFT mesh over `chains` (name -> (url, eid)): the adapter on `home` (where `token` lives), OFTs on the
    others, every pair of them peers. With no `token`, a native OFT: an OFT on `home` too, and nothing locked."""
    compiled = compile_layerzero()
    lab = OftLab(token, home, owner)
    for name, (url, eid) in chains.items():
        endpoint = Contract.deploy(url, compiled["LabEndpoint"], eid, sender=owner)
        if name == home and token is not None:
            oapp = Contract.deploy(url, compiled["LabOFTAdapter"], token.address, endpoint.address, owner,
                                   sender=owner)
        else:
            oapp = Contract.deploy(url, compiled["LabOFT"], f"{symbol} (OFT)", symbol, endpoint.address, owner,
                                   sender=owner)
        lab.chains[name] = OftChain(name, url, eid, endpoint, oapp)
    for one in lab.chains.values():
        for other in lab.chains.values():
            if other is not one:
                one.oapp.transact("setPeer", other.eid, word(other.oapp.address), sender=owner)
    return lab


def send(lab: OftLab, src: str, dst: str, sender: str, to: str, amount: int, *, deliver: bool = True) -> None:
    """Send `amount` (local decimals, no dust below 6 shared decimals) from `sender` on `src` to `to` on `dst`;
    the relayer delivers it unless `deliver` is False (then it is in flight: `relay` delivers it later)."""
    source, target = lab.chains[src], lab.chains[dst]
    if src == lab.home and lab.token is not None:
        lab.token.transact("approve", source.oapp.address, amount, sender=sender)
    params = (target.eid, word(to), amount, amount, b"", b"", b"")
    receipt = source.oapp.transact("send", params, (0, 0), sender, sender=sender)
    sent = [log for log in receipt.get("logs", []) if log["address"].lower() == source.endpoint.address.lower()
            and log["topics"] and _hex(log["topics"][0]) == SENT_TOPIC]
    if len(sent) != 1:
        raise LabError(f"OFT send {src} -> {dst}: expected one Sent event from the endpoint, got {len(sent)}")
    dst_eid, _receiver, nonce, guid, message = decode(
        ["uint32", "bytes32", "uint64", "bytes32", "bytes"], bytes.fromhex(_hex(sent[0]["data"])[2:]))
    if dst_eid != target.eid:
        raise LabError(f"OFT send {src} -> {dst}: the endpoint sent to eid {dst_eid}, not {target.eid}")
    lab.in_flight.append((src, dst, (source.eid, word(source.oapp.address), nonce), guid, message))
    if deliver:
        relay(lab)


def relay(lab: OftLab) -> int:
    """Deliver every message in flight, in order; returns how many."""
    delivered = 0
    while lab.in_flight:
        _src, dst, origin, guid, message = lab.in_flight.pop(0)
        target = lab.chains[dst]
        target.endpoint.transact("deliver", origin, target.oapp.address, guid, message, sender=lab.owner)
        delivered += 1
    return delivered


def _hex(value: object) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    return text if text.startswith("0x") else "0x" + text
