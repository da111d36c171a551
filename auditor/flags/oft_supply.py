"""OFT supply: a LayerZero token's copies on other chains exceed what its adapter locks at home, or its mesh does
not point back home."""

from __future__ import annotations

from decimal import Decimal

from auditor.findings import Finding
from auditor.flags.base import HIGH, LOW, MEDIUM, Detector, FlagContext
from auditor.numbers import tokens


class OftSupply(Detector):
    ID = "oft-supply"
    SEVERITY = HIGH
    HELP = ("A LayerZero OFT's copies on other chains exceed the tokens its adapter locks on the home chain (minted "
            "without a lock: high), fall short of them (in flight: low), or a copy's peer is not the home OApp. A "
            "native OFT (no adapter) locks nothing: its copies are all supply, with nothing to reconcile.")

    def detect(self, context: FlagContext) -> list[Finding]:
        findings = []
        for mesh in context.universe.bridges:
            unit = Decimal(10) ** mesh.home.decimals
            evidence = {"locked": mesh.locked, "remote_supply": mesh.remote_supply, "excess": mesh.excess,
                        "decimals": mesh.home.decimals, "adapter": mesh.home.address, "home": mesh.home.chain,
                        "remotes": {r.chain: r.supply for r in mesh.remotes}}
            where = ", ".join(f"{r.chain} {tokens(Decimal(r.supply) / Decimal(10) ** r.decimals)}"
                              for r in mesh.remotes) or "none"
            if mesh.excess > 0:  # (0 for a native OFT: it locks nothing, there is nothing to reconcile)
                findings.append(Finding(self.ID, HIGH, mesh.issuer,
                    f"{mesh.issuer}: its OFT copies ({where}) exceed the {tokens(Decimal(mesh.locked) / unit)} "
                    f"tokens locked in {mesh.home.address} on {mesh.home.chain} by "
                    f"{tokens(Decimal(mesh.excess) / unit)}: minted without a lock", evidence))
            elif mesh.excess < 0:
                findings.append(Finding(self.ID, LOW, mesh.issuer,
                    f"{mesh.issuer}: {tokens(Decimal(-mesh.excess) / unit)} tokens locked on {mesh.home.chain} have "
                    f"no copy yet ({where}): in flight, or sent to a chain the mesh does not reach", evidence))
            for problem in mesh.mismatched:
                findings.append(Finding(self.ID, MEDIUM, mesh.issuer,
                                        f"{mesh.issuer}: OFT peer mismatch: {problem}", evidence))
        return findings
