"""Peer: dank_mids (async web3 with its batching middleware) reading N balanceOf at a pinned block.

Runs in the bench-only venv (.venv-bench, `make bench-env`), never in the project's:

    .venv-bench/bin/python benchmarks/peers/dank_reads.py URL TOKEN PIN HOLDERS_JSON

Prints one JSON line when ready, then answers each request line {"n": N} on stdin with one JSON line:
{"seconds", "requests", "digest"}. Timed: gathering N `balanceOf(holder).call(block_identifier=PIN)` coroutines
through dank_mids' Web3, nothing else (imports, connection and the contract object are set up once). HTTP
requests are counted at aiohttp's ClientSession, which dank_mids sends through.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import threading
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

ERC20_ABI = [{"type": "function", "name": "balanceOf", "stateMutability": "view",
              "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]


WARM_UP = 20  # reads in the untimed warm-up gather


def digest(values: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()


def main() -> None:
    url, token, pin, holders_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    try:
        import aiohttp

        lock = threading.Lock()
        counter = {"requests": 0}
        original = aiohttp.ClientSession._request

        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:  # dank_mids sends from its own requester thread
                counter["requests"] += 1
            return await original(self, *args, **kwargs)

        aiohttp.ClientSession._request = counted  # type: ignore[method-assign]

        from dank_mids.helpers import setup_dank_w3_from_sync  # type: ignore[import-not-found,unused-ignore]
        from web3 import Web3

        holders = [Web3.to_checksum_address(h) for h in json.loads(Path(holders_path).read_text())]
        dank_w3 = setup_dank_w3_from_sync(Web3(Web3.HTTPProvider(url)))
        contract = dank_w3.eth.contract(address=Web3.to_checksum_address(token), abi=ERC20_ABI)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    except Exception as exc:
        print(json.dumps({"error": f"setup failed: {type(exc).__name__}: {exc}"}), flush=True)
        return

    async def read(owners: Sequence[str]) -> list[int]:
        return list(await asyncio.gather(*(contract.functions.balanceOf(o).call(block_identifier=pin)
                                           for o in owners)))

    # Warm-up, untimed: in a fresh process dank_mids' first batch comes back unusable and it falls back to one
    # eth_call per read (rate-limited to its default 50 requests/s); the batches after that are multicalls.
    try:
        before = counter["requests"]
        start = time.perf_counter()
        loop.run_until_complete(read(holders[:WARM_UP]))
        warm_up = {"reads": WARM_UP, "seconds": time.perf_counter() - start, "requests": counter["requests"] - before}
    except Exception as exc:
        print(json.dumps({"error": f"warm-up failed: {type(exc).__name__}: {str(exc)[:500]}"}), flush=True)
        return
    print(json.dumps({"ready": True, "warm_up": warm_up,
                      "versions": {name: version(name) for name in ("dank-mids", "web3")}}), flush=True)

    for line in sys.stdin:
        request = json.loads(line)
        owners = holders[: request["n"]]
        try:
            before = counter["requests"]
            start = time.perf_counter()
            values = loop.run_until_complete(read(owners))
            seconds = time.perf_counter() - start
            reply = {"seconds": seconds, "requests": counter["requests"] - before, "digest": digest(values)}
        except Exception as exc:
            reply = {"error": f"run failed: {type(exc).__name__}: {str(exc)[:500]}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
