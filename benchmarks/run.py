"""The chain client against the true floors and the best peers, on a local anvil, contenders interleaved.

    python benchmarks/run.py [--write] [--reps 5] [--sections reads,logs,scaling,trace]

Sections: bulk reads (benchmarks/reads_bench.py), log scans (logs_bench.py), scaling of the client alone
(scaling_bench.py) and the flow tracer end to end (trace_bench.py). Peers (dank_mids, cryo, orjson) run in the
bench-only venv `.venv-bench` (`make bench-env`, pinned by benchmarks/peers/requirements.txt); without it they
are reported as not measured. A header and progress go to stderr; the markdown goes to stdout, or to
benchmarks/results.md with --write (what `make bench` does), so a plain run leaves the tree clean.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auditor.lab.deploy import install_multicall3  # noqa: E402
from auditor.lab.node import rpc, start_anvil  # noqa: E402
from benchmarks.common import bench_python, progress, versions  # noqa: E402
from benchmarks.logs_bench import bench_logs  # noqa: E402
from benchmarks.reads_bench import bench_reads  # noqa: E402
from benchmarks.scaling_bench import bench_scaling  # noqa: E402
from benchmarks.trace_bench import bench_trace  # noqa: E402

RESULTS = Path(__file__).with_name("results.md")
SECTIONS = ("reads", "logs", "scaling", "trace")


def machine() -> str:
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return f"{platform.platform()} ({platform.machine()}), {cores} cores ({usable} usable by this process)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)} (else stdout)")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions per contender (default 5)")
    parser.add_argument("--naive-reps-10k", type=int, default=1,
                        help="repetitions of naive web3 at N=10,000 (about 30 s each; default 1)")
    parser.add_argument("--markets", type=int, default=200, help="Morpho markets in the scaling table")
    parser.add_argument("--logs", type=int, default=100_000, help="Transfer logs to scan")
    parser.add_argument("--range-blocks", type=int, default=10_000,
                        help="widest log-scan range of the scaling table (empty blocks mined first)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000], help="N of the bulk-read rows")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {', '.join(SECTIONS)} (a subset prints; --write needs all)")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    sections = [part.strip() for part in args.sections.split(",") if part.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    if args.write and set(sections) != set(SECTIONS):
        parser.error("--write rewrites benchmarks/results.md whole: run every section (omit --sections)")

    bench_env = bench_python()
    progress(f"reserve-auditor benchmark: {args.reps} interleaved repetitions per contender on {machine()}, "
             f"Python {sys.version.split()[0]}; peers from "
             f"{bench_env.parent.parent.name if bench_env else 'nowhere (no .venv-bench: `make bench-env`)'}; "
             f"results to {'benchmarks/results.md' if args.write else 'stdout'}")
    lines = [
        "# Benchmarks",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/run.py --write` (what `make bench` "
        f"runs) on {machine()}, Python {sys.version.split()[0]}, against one local anvil on loopback (sharing those "
        "cores with the benchmark and the peers, and with whatever else the machine ran). Every figure comes from this "
        f"run. Contenders are interleaved: in each of the {args.reps} repetitions every contender runs once, "
        "in an order shuffled afresh for each repetition (seeded: the same orders every run); tables give medians. "
        "In-process contenders: "
        f"{versions('web3', 'eth-abi', 'requests')}. Peers run as subprocesses of the bench-only venv "
        "`.venv-bench` (`make bench-env`, pinned by `benchmarks/peers/requirements.txt`, never a project "
        "dependency), set up once and timed inside the peer around the same work.",
        "",
    ]
    notes: list[str] = []
    node = start_anvil(1)
    try:
        install_multicall3(node.url)
        progress(f"anvil {rpc(node.url, 'web3_clientVersion')} at {node.url}")
        if "reads" in sections:
            bench_reads(node.url, lines, notes, args.reps, args.sizes, args.naive_reps_10k)
        if "logs" in sections or "scaling" in sections:
            world = bench_logs(node.url, lines if "logs" in sections else [], notes, args.reps,
                               target_logs=args.logs, empty_blocks=args.range_blocks)
            if "scaling" in sections:
                bench_scaling(node.url, lines, world, markets=args.markets, spans=(10, 1_000, args.range_blocks))
        if "trace" in sections:
            progress("flow trace")
            with contextlib.redirect_stdout(sys.stderr):  # it prints its row: progress, not the results
                bench_trace(node.url, lines, target_logs=args.logs)
    finally:
        node.stop()
    lines += ["## Not measured", "", *(notes or ["- nothing: every contender ran."]), ""]
    # `make soak`: the tracer and the audit against generated truth
    for name, title in (("scenarios.md", "Generated scenarios (the last `make soak`"),
                        ("scenarios-topologies.md", "Generated scenarios (the last `make soak`"),
                        ("completeness.md", "Generated scenarios (the last `make soak`"),
                        ("scale.md", "Serial against Dask (the last `make bench-scale`")):
        lines += embedded(name, title)
    text = "\n".join(lines)
    if args.write:
        RESULTS.write_text(text)
        progress(f"written {RESULTS}")
    else:
        print(text)


def embedded(name: str, title: str) -> list[str]:
    """Another target's results file (without its own title) under a heading that says where it comes from."""
    other = RESULTS.with_name(name)
    if not other.exists():
        return []
    return [f"## {title}, from benchmarks/{name})", "", *other.read_text().splitlines()[1:], ""]


if __name__ == "__main__":
    main()
