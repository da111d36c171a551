"""Peer: cryo (Rust, paradigmxyz) collecting Transfer logs from the node into a DataFrame, rows iterated in Python.

Runs in the bench-only venv (.venv-bench, `make bench-env`):

    .venv-bench/bin/python benchmarks/peers/cryo_logs.py URL CONTRACT TOPIC0 FROM_BLOCK TO_BLOCK

Prints one JSON line when ready, then answers each request line on stdin with
{"seconds", "collect_seconds", "logs", "digest"}. Timed: `cryo.collect("logs", ...)` over the block range (its
own requests, its own defaults for concurrency and request size) into a polars DataFrame, then every row
iterated in Python with its `value` taken from the data column (int.from_bytes, summed: the digest checked
against the logs emitted) and its `to` topic touched, the least a consumer of the events does.
`collect_seconds` is the DataFrame alone.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from typing import Any


def main() -> None:
    url, contract, topic0, first, last = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    try:
        import cryo  # type: ignore[import-not-found,unused-ignore]
    except Exception as exc:
        print(json.dumps({"error": f"cryo cannot be imported: {type(exc).__name__}: {exc}"}), flush=True)
        return
    print(json.dumps({"ready": True, "versions": {name: version(name) for name in ("cryo", "polars")}}), flush=True)
    for _line in sys.stdin:
        try:
            start = time.perf_counter()
            frame = cryo.collect("logs", blocks=[f"{first}:{last + 1}"], rpc=url, contract=[contract],
                                 topic0=[topic0], verbose=False, output_format="polars")
            collected = time.perf_counter() - start
            logs = total = width = 0
            for to, data in frame.select("topic2", "data").iter_rows():
                total += int.from_bytes(data, "big")
                width += len(to)
                logs += 1
            seconds = time.perf_counter() - start
            reply: dict[str, Any] = {"seconds": seconds, "collect_seconds": collected, "logs": logs, "digest": total}
        except Exception as exc:
            reply = {"error": f"cryo.collect failed: {type(exc).__name__}: {str(exc)[:500]}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
