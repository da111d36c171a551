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
    rows = measure()
    lines = [
        "# HTTP requests per chain per audit",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/requests_bench.py` "
        f"on {platform.machine()}, Python {platform.python_version()}: the demo's reconstruction audited at each "
        "pin with no cache. `audit` counts the requests of the audit's own client (connect, the planned rounds, "
        "the pin check); `rounds` the rounds the plans needed on that chain; `samples` the requests of the "
        "optional checks at past blocks (oracle and share-price windows). Budget: rounds + 2.",
        "",
        "| pin | chain | reads | rounds | audit HTTP requests | budget (rounds + 2) | within | samples HTTP requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage, chain, stats in rows:
        budget = stats.get("rounds", 0) + 2
        lines.append(f"| {stage} | {chain} | {stats['reads']} | {stats.get('rounds', '-')} | {stats['http_requests']} | "
                     f"{budget} | {'yes' if stats['http_requests'] <= budget else 'NO'} | "
                     f"{stats.get('sample_http_requests', 0)} |")
    lines += ["", f"Run time {time.time() - started:.1f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
