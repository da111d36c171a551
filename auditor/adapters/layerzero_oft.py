"""LayerZero OFT: a token's copies across chains, found from one OApp's peers, and its supply reconciled.

xUSD was a LayerZero OFT: canonical tokens locked in an OFTAdapter on the home chain, OFT copies minted on other
chains. From the one OApp a spec names (`token.layerzero`), the audit reads `peers(eid)` for the LayerZero V2
endpoint id of every registry chain (`lz_eid`), then on each peer's chain what it moves (`token()`), whether it
is an adapter (`approvalRequired()`), its supply, and whether it points back. The copies join the token's
deployments (bridged) and the adapter its escrows, so supply is counted once; the reconciliation says whether
the copies exceed what is locked at home (minted without a lock) or fall short of it (in flight).

Endpoint ids (LayerZero V2 mainnet, docs.layerzero.network "Deployed Endpoints"): Ethereum 30101, Arbitrum
30110, Base 30184, Avalanche 30106, Plume 30370, Plasma 30383.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor.chain.abi import event_topic
from auditor.chain.plan import Plan, logs, reads
from auditor.chain.reader import Read, ReadResult
from auditor.model import Evidence

PEERS = "peers(uint32)"
PEER_SET_TOPIC = event_topic("PeerSet(uint32,bytes32)")  # oapp-evm IOAppCore: emitted by setPeer
ZERO_WORD = bytes(32)


@dataclass(frozen=True)
class OApp:
    """One OApp of the mesh as read at its chain's pin."""

    chain: str
    address: str
    token: str  # the ERC-20 it moves: itself for an OFT, the canonical token for an adapter
    adapter: bool
    supply: int  # totalSupply of `token`
    decimals: int
    locked: int  # for an adapter: the canonical tokens it holds; 0 for an OFT
    peers: Mapping[int, str]  # eid -> peer OApp address (lower case), the nonzero ones
    evidence: tuple[Evidence, ...] = ()


@dataclass
class Mesh:
    """An issuer's OFT mesh: the OApps found, and what could not be read or does not add up."""

    issuer: str
    home: OApp
    remotes: list[OApp] = field(default_factory=list)
    unknown_eids: list[int] = field(default_factory=list)  # peers on endpoints no registry chain has
    unread: list[str] = field(default_factory=list)  # chains whose OApp could not be read, with why
    mismatched: list[str] = field(default_factory=list)  # remotes whose peer back home is not the home OApp

    @property
    def locked(self) -> int:
        return self.home.locked if self.home.adapter else 0

    @property
    def remote_supply(self) -> int:
        """The copies' supply in the home token's units (OFTs share decimals down to 6; scaled exactly)."""
        return sum(r.supply * 10**self.home.decimals // 10**r.decimals for r in self.remotes if not r.adapter)

    @property
    def excess(self) -> int:
        """Copies beyond the lock (home units): minted without locking anything at home when positive. A native
        OFT (no adapter at home) locks nothing by design: 0, nothing to reconcile."""
        return self.remote_supply - self.locked if self.home.adapter else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "home": _oapp_dict(self.home),
            "remotes": [_oapp_dict(r) for r in self.remotes],
            "locked": self.locked,
            "remote_supply": self.remote_supply,
            "excess": self.excess,
            "model": "lock and mint (adapter at home)" if self.home.adapter else "native OFT (nothing locked)",
            "decimals": self.home.decimals,
            "unknown_eids": list(self.unknown_eids),
            "unread": list(self.unread),
            "mismatched": list(self.mismatched),
        }


def _oapp_dict(oapp: OApp) -> dict[str, Any]:
    return {"chain": oapp.chain, "address": oapp.address, "token": oapp.token, "adapter": oapp.adapter,
            "supply": oapp.supply, "decimals": oapp.decimals, "locked": oapp.locked,
            "peers": {str(eid): peer for eid, peer in sorted(oapp.peers.items())}}


def read_oapp(chain: str, block: int, address: str, eids: Sequence[int], since: int | None = None
              ) -> Plan[OApp | str]:
    """An OApp at the pin: what it moves, whether it is an adapter, its peers on `eids` (and, with `since`, on every
    endpoint its PeerSet events since that block name, so a peer on a chain the registry lacks is seen); then the
    token's supply, decimals and (for an adapter) what it holds. A string says why it is not a readable OApp."""
    if since is not None:
        set_events = yield from logs([address], [PEER_SET_TOPIC], since, block)
        named = set()
        for log in set_events:
            if len(log.data) >= 64:
                named.add(int.from_bytes(log.data[:32], "big"))
        eids = sorted(set(eids) | named)
    first = yield from reads([Read(address, "token()", returns=("address",)),
                              Read(address, "approvalRequired()", returns=("bool",)),
                              *(Read(address, PEERS, (eid,), returns=("bytes32",)) for eid in eids)])
    token, approval = first[0], first[1]
    if not (token.ok and approval.ok):
        failed = token if not token.ok else approval
        return f"{failed.read.describe()} at {address}: {failed.error}"
    unread = [r for r in first[2:] if not r.ok]
    if unread:
        return f"{unread[0].read.describe()}: {unread[0].error}"
    peers = {eid: "0x" + r.one[12:].hex() for eid, r in zip(eids, first[2:], strict=True) if r.one != ZERO_WORD}
    inner = token.one
    second = yield from reads([Read(inner, "totalSupply()"), Read(inner, "decimals()", returns=("uint8",)),
                               *([Read(inner, "balanceOf(address)", (address,))] if approval.one else [])])
    problems = [r for r in second if not r.ok]
    if problems:
        return f"{problems[0].read.describe()}: {problems[0].error}"
    evidence = tuple(_evidence(chain, block, r) for r in (*first, *second))
    return OApp(chain, address.lower(), inner.lower(), bool(approval.one), second[0].one, second[1].one,
                second[2].one if approval.one else 0, peers, evidence)


def _evidence(chain: str, block: int, result: ReadResult) -> Evidence:
    value = result.value[0] if len(result.value) == 1 else result.value
    text = ("0x" + value.hex()) if isinstance(value, bytes) else str(value)
    return Evidence(chain, block, result.read.target, result.read.describe(), text)
