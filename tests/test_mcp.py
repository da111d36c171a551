"""Issue 21: `auditor mcp` as a subprocess, driven by the MCP SDK's own client over stdio, on the demo chains
(the Stream/Elixir reconstruction rebuilt on two local anvils)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from auditor.cli import main
from auditor.lab import reconstruction

KEY = "0x" + "42" * 32


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The reconstruction's chains, its registry and specs, and its pins (nodes stopped afterwards)."""
    params = reconstruction.load_params()
    eth, plume = reconstruction.start_nodes(params)
    try:
        world = reconstruction.build(params, lambda _line: None, eth, plume)
        folder = tmp_path_factory.mktemp("demo-inputs")
        reconstruction.write_inputs(world, params, folder)
        yield {"folder": folder, "rpc": {"ethereum": eth.url, "plume": plume.url}, "pins": world.pins}
    finally:
        eth.stop()
        plume.stop()


def server(demo: dict[str, Any], tmp_path: Path) -> StdioServerParameters:
    env = {"AUDITOR_PRIVATE_KEY": KEY, "AUDITOR_CACHE_DIR": str(tmp_path / "mcp-cache"), "AUDITOR_RPC_RETRIES": "1",
           "PYTHONPATH": os.getcwd()}
    rpc = [part for chain, url in demo["rpc"].items() for part in ("--rpc", f"{chain}={url}")]
    return StdioServerParameters(command=sys.executable, env=env, cwd=os.getcwd(),
                                 args=["-m", "auditor.cli", "mcp", "--specs", str(demo["folder"]), *rpc])


async def calls(params: StdioServerParameters, pins: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    block = [f"{chain}:{number}" for chain, number in sorted(pins.items())]
    with open(os.devnull, "w") as quiet:  # the server's own log lines (stderr)
        async with stdio_client(params, errlog=quiet) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            out["tools"] = {tool.name: tool for tool in (await session.list_tools()).tools}
            out["is_backed"] = await session.call_tool("is_backed", {"token": "xUSD"})
            out["audit"] = await session.call_tool("audit", {"token": "stream-xusd", "block": block})
            out["exposure"] = await session.call_tool("exposure", {"token": "xUSD", "chain": "plume"})
            out["explain_flag"] = await session.call_tool("explain_flag", {"flag_id": "circular-dependency"})
            out["unknown_flag"] = await session.call_tool("explain_flag", {"flag_id": "circular-dependence"})
            out["unknown_token"] = await session.call_tool("audit", {"token": "../registry"})
            out["bad_chain"] = await session.call_tool("exposure", {"token": "xUSD", "chain": "mars"})
    return out


def test_an_mcp_client_lists_and_calls_every_tool(demo: dict[str, Any], tmp_path: Path) -> None:
    from eth_account import Account

    late_october = demo["pins"]["late-october"]
    got = asyncio.run(calls(server(demo, tmp_path), late_october))
    tools = got["tools"]
    assert set(tools) == {"is_backed", "audit", "exposure", "explain_flag"}
    assert all(tool.output_schema is not None for tool in tools.values())  # every tool answers structured content

    backed = got["is_backed"]  # at the latest blocks: after the loss, nothing verifiable is left behind xUSD
    assert not backed.is_error, backed.content
    verdict = backed.structured_content
    assert verdict["spec"] == "stream-xusd" and verdict["token"] == "xUSD" and verdict["complete"] is True
    assert verdict["backed"] is False and Decimal(verdict["verifiable_backing_usd"]) == 0
    assert verdict["report"]["signer"] == Account.from_key(KEY).address
    assert verdict["report"]["digest"].startswith("sha256:") and verdict["flags"]

    audited = got["audit"]  # late October, pinned: the figures of `auditor audit --json` on the same pins
    assert not audited.is_error, audited.content
    document = audited.structured_content
    assert {name: pin["number"] for name, pin in document["pins"].items()} == late_october
    xusd = document["backing"]["issuers"]["stream-xusd"]
    assert abs(Decimal(xusd["expansion_ratio"]) / Decimal("7.6") - 1) < Decimal("0.01")
    folder, out = demo["folder"], tmp_path / "cli.json"
    args = ["audit", str(folder / "stream-xusd.yaml"), "--registry", str(folder / "registry.yaml"), "--json", str(out)]
    args += [part for chain, url in demo["rpc"].items() for part in ("--rpc", f"{chain}={url}")]
    args += [part for chain, n in late_october.items() for part in ("--block", f"{chain}={n}")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cli = json.loads(out.read_text())
    assert {k: v for k, v in document.items() if k != "requests"} == {k: v for k, v in cli.items() if k != "requests"}

    exposure = got["exposure"]
    assert not exposure.is_error, exposure.content
    mapped = exposure.structured_content
    assert mapped["token"]["chain"] == "plume" and mapped["totals"]["markets"] >= 1 and mapped["suppliers"]

    flag = got["explain_flag"].structured_content
    assert flag["id"] == "circular-dependency" and flag["help"]
    assert flag["severity"] in {"high", "medium", "low", "info"}

    for name, says in (("unknown_flag", "did you mean 'circular-dependency'"), ("unknown_token", "token id"),
                       ("bad_chain", "not in the registry")):
        error = got[name]
        assert error.is_error, name
        assert says in error.content[0].text, (name, error.content[0].text)
