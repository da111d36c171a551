"""Peer: orjson.loads of the same raw eth_getLogs responses the chain client received (pre-fetched bytes).

Runs in the bench-only venv (.venv-bench, `make bench-env`):

    .venv-bench/bin/python benchmarks/peers/orjson_logs.py BODIES_DIR

Reads every body (files 0000.json, 0001.json, ... in order) into memory, prints one JSON line when ready, then
answers each request line on stdin with {"seconds", "logs"}. Timed: orjson.loads of every body, one after the
other (each parsed answer dropped before the next, as a scan holds one window), nothing else.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path


def main() -> None:
    try:
        import orjson  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        print(json.dumps({"error": f"orjson is not installed in the bench venv: {exc}"}), flush=True)
        return
    bodies = [path.read_bytes() for path in sorted(Path(sys.argv[1]).glob("*.json"))]
    print(json.dumps({"ready": True, "versions": {"orjson": version("orjson")}}), flush=True)
    loads = orjson.loads
    for _line in sys.stdin:
        logs = 0
        start = time.perf_counter()
        for body in bodies:
            logs += len(loads(body)["result"])
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "logs": logs}), flush=True)


if __name__ == "__main__":
    main()
