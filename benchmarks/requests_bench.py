"""HTTP requests per chain per audit against the dependency floor: the demo's three pins, measured end to end.

    python benchmarks/requests_bench.py [--out benchmarks/requests.md]

Builds the Stream/Elixir reconstruction on two local anvil nodes and audits it at each pin with no cache, so
every read goes over the wire. For each chain it reports the HTTP requests of the audit's own client (the
balance sheets, the supplies, the feeds and pools, the exposure map: everything planned in rounds), the rounds
that plan needed, the requests of the optional samples at past blocks, and the budget the issue sets:
dependent rounds + 2 (connect: chain id, pin; the pin check at the end).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auditor.audit import AuditRequest, run_audit  # noqa: E402
from auditor.chain.reader import ConnectOptions  # noqa: E402
from auditor.lab import reconstruction  # noqa: E402
from auditor.spec import load_registry, load_spec  # noqa: E402


def healthy_case() -> list[tuple[str, str, dict[str, int]]]:
    """One issuer, fully backed by USDC in its treasury, whose token is lent against in one Morpho market."""
    from auditor.lab.compile import compile_lab_contracts
    from auditor.lab.deploy import Contract, accounts, deploy_lab_token, install_multicall3
    from auditor.lab.morpho import deploy_morpho, oracle_price
    from auditor.lab.node import start_anvil

    unit, lltv = 10**6, 860_000_000_000_000_000
    node = start_anvil(1)
    try:
        url = node.url
        actors = accounts(url)
        deployer, lender, borrower, treasury = actors[0], actors[1], actors[2], actors[3]
        install_multicall3(url)
        built = compile_lab_contracts()
        morpho = deploy_morpho(url, deployer)
        morpho.enable_irm()
        morpho.enable_lltv(lltv)
        usdc = deploy_lab_token(url, "USD Coin (lab)", "USDC", 6, sender=deployer, compiled=built)
        token = Contract.deploy(url, built["LabToken"], "Healthy", "HLTY", 6)
        token.transact("mint", borrower, 1_000 * unit)
        usdc.transact("mint", treasury, 1_000 * unit)
        usdc.transact("mint", lender, 1_000 * unit)
        params = morpho.market_params(usdc.address, token.address, lltv,
                                      morpho.deploy_oracle(oracle_price("1", 6, 6)).address)
        morpho.create_market(params)
        blue = morpho.morpho
        usdc.transact("approve", blue.address, 1_000 * unit, sender=lender)
        token.transact("approve", blue.address, 1_000 * unit, sender=borrower)
        blue.transact("supply", params.as_tuple(), 1_000 * unit, 0, lender, b"", sender=lender)
        blue.transact("supplyCollateral", params.as_tuple(), 500 * unit, borrower, b"", sender=borrower)
        blue.transact("borrow", params.as_tuple(), 400 * unit, 0, borrower, borrower, sender=borrower)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "registry.yaml").write_text(
                "chains:\n  ethereum: {chain_id: 1}\n"
                f"assets:\n  ethereum:\n    USDC: {{address: \"{usdc.address}\", decimals: 6, price: par}}\n"
                f"venues:\n  morpho_blue:\n    ethereum: {{address: \"{blue.address}\", from_block: 0}}\n")
            (Path(folder) / "healthy.yaml").write_text(
                "id: healthy\nname: Healthy\ntoken:\n  symbol: HLTY\n  deployments:\n"
                f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
                f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
            registry = load_registry(Path(folder) / "registry.yaml")
            spec = load_spec(Path(folder) / "healthy.yaml", registry)
            result = run_audit(AuditRequest(spec, registry, ConnectOptions(rpc={"ethereum": url}, use_cache=False)))
        return [("healthy one-market case", chain, stats) for chain, stats in sorted(result.requests.items())]
    finally:
        node.stop()


def measure() -> list[tuple[str, str, dict[str, int]]]:
    params = reconstruction.load_params(reconstruction.PARAMS_FILE)
    eth, plume = reconstruction.start_nodes(params)
    rows = []
    try:
        world = reconstruction.build(params, lambda _line: None, eth, plume)
        with tempfile.TemporaryDirectory() as folder:
            inputs = reconstruction.write_inputs(world, params, Path(folder) / "inputs")
            registry = load_registry(inputs["registry"])
            spec = load_spec(inputs["stream-xusd"], registry)
            rpc = {"ethereum": eth.url, "plume": plume.url}
            for stage in reconstruction.STAGES:
                options = ConnectOptions(rpc=rpc, blocks=world.pins[stage], use_cache=False)
                result = run_audit(AuditRequest(spec, registry, options))
                for chain, stats in sorted(result.requests.items()):
                    rows.append((stage, chain, stats))
    finally:
        eth.stop()
        plume.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "requests.md")
    args = parser.parse_args()
    started = time.time()
    rows = measure() + healthy_case()
    lines = [
        "# HTTP requests per chain per audit",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/requests_bench.py` "
        f"on {platform.machine()}, Python {platform.python_version()}: the demo's reconstruction audited at each "
        "pin with no cache, and a healthy one-market case (an issuer fully backed by USDC, its token lent against "
        "in one Morpho Blue market). `audit` counts the requests of the audit's own client (connect, the planned "
        "rounds, the optional checks' samples at past blocks (oracle and share-price windows), the pin check): "
        "everything the audit sent to that chain; `rounds` the dependent rounds the plans needed on that chain, "
        "samples included. Budget: rounds + 2.",
        "",
        "| pin | chain | reads | rounds | audit HTTP requests | budget (rounds + 2) | within |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, chain, stats in rows:
        budget = stats.get("rounds", 0) + 2
        lines.append(f"| {stage} | {chain} | {stats['reads']} | {stats.get('rounds', '-')} | "
                     f"{stats['http_requests']} | {budget} | {'yes' if stats['http_requests'] <= budget else 'NO'} |")
    lines += ["", f"Run time {time.time() - started:.1f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
