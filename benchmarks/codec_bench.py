"""CPU cost of the chain client's codec per 1,000 reads: eth-abi against the hand-laid codec (issue 14).

    .venv/bin/python -m benchmarks.codec_bench [--runs 9] [--out benchmarks/codec.md]

Each row times one step of a read's hot path over 1,000 reads with time.process_time (CPU of this process),
eth-abi's way and the codec's way, on the same inputs, and checks that both give the same answer first.
Figures are medians of --runs runs (at least 5), interleaved so drift hits both sides alike. No node needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_abi.abi import decode, encode

from auditor.chain import abi as abi_module
from auditor.chain.abi import _checksummed, decode_values, encode_call, parse_signature
from auditor.chain.multicall import AGGREGATE3_SELECTOR, decode_aggregate3, encode_aggregate3

READS = 1000
TOKEN = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
HOLDERS = [abi_module.checksum_address((0xC0FFEE0000 + n * 7919).to_bytes(20, "big")) for n in range(READS)]
BALANCE_OF = "balanceOf(address)"


# eth-abi's way: what auditor/chain/abi.py and multicall.py did before the codec.

def eth_abi_encode_aggregate3(calls: list[tuple[str, bool, bytes]]) -> bytes:
    payload = [(target, bool(allow_failure), bytes(data)) for target, allow_failure, data in calls]
    return AGGREGATE3_SELECTOR + encode(["(address,bool,bytes)[]"], [payload])


def eth_abi_encode_call(signature: str, *args: Any) -> bytes:
    selector, types = parse_signature(signature)
    return selector + (encode(list(types), list(args)) if types else b"")


def eth_abi_decode_aggregate3(data: bytes) -> list[tuple[bool, bytes]]:
    (results,) = decode(["(bool,bytes)[]"], data)
    return [(bool(ok), bytes(raw)) for ok, raw in results]


def eth_abi_decode_values(types: tuple[str, ...], data: bytes) -> tuple[Any, ...]:
    return tuple(_checksummed(kind, value) for kind, value in zip(types, decode(list(types), data), strict=True))


def _cold_caches() -> None:
    # The codec caches address words by text; start each run cold so repeated runs do not flatter it.
    abi_module._address_text_word.cache_clear()


def _cpu_ms(step: Callable[[], Any]) -> float:
    _cold_caches()
    start = time.process_time()
    step()
    return (time.process_time() - start) * 1000


def measure(runs: int) -> list[tuple[str, float, float]]:
    calls = [(TOKEN, True, eth_abi_encode_call(BALANCE_OF, holder)) for holder in HOLDERS]
    aggregate_result = encode(["(bool,bytes)[]"], [[(True, (10**18 + n).to_bytes(32, "big")) for n in range(READS)]])
    uint_words = [(10**18 + n).to_bytes(32, "big") for n in range(READS)]
    triples = [encode(["(uint128,uint128,uint128)"], [(n, 2 * n, 3 * n)]) for n in range(READS)]
    uint256, triple = ("uint256",), ("(uint128,uint128,uint128)",)

    rows: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        ("encode_aggregate3 (1,000 balanceOf calls in one batch)",
         lambda: eth_abi_encode_aggregate3(calls), lambda: encode_aggregate3(calls)),
        ("encode_call `balanceOf(address)`, once per read",
         lambda: [eth_abi_encode_call(BALANCE_OF, h) for h in HOLDERS],
         lambda: [encode_call(BALANCE_OF, h) for h in HOLDERS]),
        ("decode_aggregate3 (1,000 results of one word)",
         lambda: eth_abi_decode_aggregate3(aggregate_result), lambda: decode_aggregate3(aggregate_result)),
        ("decode_values `uint256`, once per result",
         lambda: [eth_abi_decode_values(uint256, w) for w in uint_words],
         lambda: [decode_values(uint256, w) for w in uint_words]),
        ("decode_values `(uint128,uint128,uint128)`, once per result",
         lambda: [eth_abi_decode_values(triple, t) for t in triples],
         lambda: [decode_values(triple, t) for t in triples]),
    ]
    out = []
    for name, old, new in rows:
        if old() != new():
            raise SystemExit(f"{name}: eth-abi and the codec disagree")
        old_times: list[float] = []
        new_times: list[float] = []
        for _ in range(runs):
            old_times.append(_cpu_ms(old))
            new_times.append(_cpu_ms(new))
        out.append((name, statistics.median(old_times), statistics.median(new_times)))
    return out


def report(rows: list[tuple[str, float, float]], runs: int, command: str) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Codec: CPU per 1,000 reads",
        "",
        f"Measured {when} by `{command}` on {platform.machine()}, Python {platform.python_version()}: "
        f"CPU time of this process (time.process_time), median of {runs} interleaved runs per cell, address caches "
        "cleared before every run. eth-abi is how the chain client encoded and decoded before issue 14; both sides "
        "are checked to give the same answer before timing.",
        "",
        "| step, 1,000 reads | eth-abi (ms) | codec (ms) | eth-abi / codec |",
        "|---|---|---|---|",
    ]
    for name, old, new in rows:
        lines.append(f"| {name} | {old:.2f} | {new:.2f} | {old / new:.1f}x |")
    old_total, new_total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    ratio = old_total / new_total
    lines.append(f"| **all five steps** | **{old_total:.2f}** | **{new_total:.2f}** | **{ratio:.1f}x** |")
    lines += [
        "",
        "A read of a single `uint256` pays one encode_call, its share of encode_aggregate3 and decode_aggregate3, "
        "and one decode_values `uint256`: the first four rows.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="runs per cell, at least 5 (default 9)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    command = "python -m benchmarks.codec_bench"
    if args.runs != 9:
        command += f" --runs {args.runs}"
    if args.out is not None:
        command += f" --out {args.out}"
    text = report(measure(args.runs), args.runs, command)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
