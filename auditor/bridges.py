"""Cross-chain copies of issued tokens, found before the balance sheets are read: a spec that names one LayerZero
OApp (`token.layerzero`) gets every copy of its token as a bridged deployment and its adapter as an escrow, so
supply is counted once on every chain the mesh reaches; what could not be read is a gap, never a zero."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from auditor.adapters.layerzero_oft import Mesh, read_oapp
from auditor.addresses import to_checksum
from auditor.chain.plan import optional, run_plans
from auditor.chain.rpc import ConfigError
from auditor.model import Gap
from auditor.spec import Deployment, Holder, Registry, Spec


def oft_meshes(specs: Mapping[str, Spec], issuers: Sequence[str], registry: Registry,
               clients: MutableMapping[str, Any], connect_more: Any) -> tuple[dict[str, Spec], list[Mesh], list[Gap]]:
    """Read the OFT mesh of every issuer whose spec names an OApp; return the specs with the copies and the adapter
    added, the meshes and the gaps. `connect_more(names)` connects chains the mesh reaches that the audit had not."""
    chain_of = {c.lz_eid: name for name, c in registry.chains.items() if c.lz_eid is not None}
    gaps: list[Gap] = []
    homes: dict[str, Holder] = {}
    plans: dict[tuple[str, ...], Any] = {}
    for issuer in issuers:
        named = specs[issuer].token.layerzero
        if named is None:
            continue
        eid = registry.chains[named.chain].lz_eid
        client = clients[named.chain]
        if eid is None:
            gaps.append(Gap(named.chain, client.pinned.number, f"LayerZero mesh of {issuer}",
                            f"the registry gives {named.chain} no lz_eid: the token's copies cannot be found"))
            continue
        homes[issuer] = named
        plans[(issuer,)] = (client, optional(read_oapp(named.chain, client.pinned.number, named.address,
                                                       sorted(e for e in chain_of if e != eid),
                                                       since=min(registry.chains[named.chain].discover_from,
                                                                 client.pinned.number))))
    meshes: dict[str, Mesh] = {}
    for (issuer,), (found, error) in run_plans(plans).items():
        named = homes[issuer]
        if error is not None or found is None:
            gaps.append(Gap(named.chain, clients[named.chain].pinned.number, f"LayerZero OApp of {issuer}",
                            str(error)))
        elif isinstance(found, str):
            gaps.append(Gap(named.chain, clients[named.chain].pinned.number, f"LayerZero OApp of {issuer}", found))
        else:
            meshes[issuer] = Mesh(issuer, found)
    remote_plans: dict[tuple[str, ...], Any] = {}
    for issuer, mesh in meshes.items():
        home_eid = registry.chains[mesh.home.chain].lz_eid
        assert home_eid is not None
        for eid, peer in sorted(mesh.home.peers.items()):
            chain = chain_of.get(eid)
            if chain is None:
                mesh.unknown_eids.append(eid)
                gaps.append(Gap(mesh.home.chain, clients[mesh.home.chain].pinned.number,
                                f"LayerZero peer {peer} of {issuer} on eid {eid}",
                                "no registry chain has that lz_eid: the copies there cannot be read"))
                continue
            if chain not in clients:
                try:
                    clients.update(connect_more([chain]))
                except ConfigError as exc:
                    mesh.unread.append(f"{chain}: {exc}")
                    gaps.append(Gap(chain, 0, f"LayerZero peer {peer} of {issuer}", str(exc)))
                    continue
            remote_plans[(issuer, chain)] = (clients[chain], read_oapp(chain, clients[chain].pinned.number, peer,
                                                                       [home_eid]))
    for (issuer, chain), found in sorted(run_plans(remote_plans).items()):
        mesh = meshes[issuer]
        if isinstance(found, str):
            mesh.unread.append(f"{chain}: {found}")
            gaps.append(Gap(chain, clients[chain].pinned.number, f"LayerZero peer of {issuer}", found))
            continue
        mesh.remotes.append(found)
        home_eid = registry.chains[mesh.home.chain].lz_eid
        if home_eid is None or found.peers.get(home_eid) != mesh.home.address:
            mesh.mismatched.append(f"{chain}: {found.address} points home to "
                                   f"{found.peers.get(home_eid or 0, 'nothing')}, not {mesh.home.address}")
    out = dict(specs)
    for issuer, mesh in meshes.items():
        out[issuer] = _with_mesh(specs[issuer], mesh)
    return out, [meshes[i] for i in sorted(meshes)], gaps


def _with_mesh(spec: Spec, mesh: Mesh) -> Spec:
    """The spec with every copy as a bridged deployment and the adapter as an escrow (those listed stay as they
    are: a deployment or escrow the spec names already is not added twice)."""
    listed = {(d.chain, d.address.lower()) for d in spec.token.deployments}
    deployments = list(spec.token.deployments)
    for remote in mesh.remotes:
        if (remote.chain, remote.token) not in listed and not remote.adapter:
            deployments.append(Deployment(remote.chain, to_checksum(remote.token), bridged=True))
    escrows = list(spec.token.escrow)
    home = mesh.home
    if home.adapter and (home.chain, home.address) not in {(e.chain, e.address.lower()) for e in escrows}:
        escrows.append(Holder(home.chain, to_checksum(home.address), "LayerZero OFT adapter"))
    if home.adapter and (home.chain, home.token) not in listed:
        deployments.append(Deployment(home.chain, to_checksum(home.token)))
    token = dataclasses.replace(spec.token, deployments=tuple(deployments), escrow=tuple(escrows))
    return dataclasses.replace(spec, token=token)
