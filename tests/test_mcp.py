"""Issue 21: `auditor mcp` as a subprocess, driven by the MCP SDK's own client over stdio on the lab chain."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.test_gate import world  # noqa: F401 (the fixture: alpha 60% backed, markets lending on it)

KEY = "0x" + "42" * 32


def params(world: dict[str, Any], tmp_path: Path) -> StdioServerParameters:  # noqa: F811
    folder = world["folder"]
    env = {"AUDITOR_PRIVATE_KEY": KEY, "AUDITOR_CACHE_DIR": str(tmp_path / "mcp-cache"), "AUDITOR_RPC_RETRIES": "1",
           "PYTHONPATH": os.getcwd()}
    return StdioServerParameters(command=sys.executable, env=env, cwd=os.getcwd(),
                                 args=["-m", "auditor.cli", "mcp", "--specs", str(folder),
                                       "--rpc", f"ethereum={world['url']}"])


async def session_calls(server: StdioServerParameters, block: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with open(os.devnull, "w") as quiet:  # the server's own log lines (stderr)
        async with stdio_client(server, errlog=quiet) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            out["tools"] = {tool.name: tool for tool in listed.tools}
            out["is_backed"] = await session.call_tool("is_backed", {"token": "alpha"})
            out["audit"] = await session.call_tool("audit", {"token": "ALPHA", "block": [f"ethereum:{block}"]})
            out["exposure"] = await session.call_tool("exposure", {"token": "alpha", "chain": "ethereum"})
            out["explain_flag"] = await session.call_tool("explain_flag", {"flag_id": "circular-dependency"})
            out["unknown_flag"] = await session.call_tool("explain_flag", {"flag_id": "circular-dependence"})
            out["unknown_token"] = await session.call_tool("audit", {"token": "../registry"})
            out["bad_chain"] = await session.call_tool("exposure", {"token": "alpha", "chain": "mars"})
    return out


def test_an_mcp_client_lists_and_calls_every_tool(world: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    from eth_account import Account

    got = asyncio.run(session_calls(params(world, tmp_path), world["block"]))
    tools = got["tools"]
    assert set(tools) == {"is_backed", "audit", "exposure", "explain_flag"}
    assert all(tool.output_schema is not None for tool in tools.values())  # every tool answers structured content

    backed = got["is_backed"]
    assert not backed.is_error, backed.content
    verdict = backed.structured_content
    assert verdict["spec"] == "alpha" and verdict["backed"] is False and verdict["complete"] is True
    assert verdict["backing_ratio"] == "0.6" and verdict["supply_usd"] == "1000"
    assert verdict["report"]["signer"] == Account.from_key(KEY).address
    assert verdict["report"]["digest"].startswith("sha256:") and verdict["coverage"] is not None

    audited = got["audit"]
    assert not audited.is_error, audited.content
    document = audited.structured_content
    assert document["pins"]["ethereum"]["number"] == world["block"]
    assert document["backing"]["issuers"]["alpha"]["verifiable_backing_usd"] == "600"
    assert document["inputs"]["spec"].endswith("alpha.yaml") and "requests" in document

    exposure = got["exposure"]
    assert not exposure.is_error, exposure.content
    mapped = exposure.structured_content
    assert mapped["token"]["chain"] == "ethereum" and mapped["totals"]["markets"] == 1 and mapped["suppliers"]

    flag = got["explain_flag"].structured_content
    assert flag["id"] == "circular-dependency" and flag["help"]
    assert flag["severity"] in {"high", "medium", "low", "info"}

    for name, says in (("unknown_flag", "did you mean 'circular-dependency'"), ("unknown_token", "token id"),
                       ("bad_chain", "not in the registry")):
        error = got[name]
        assert error.is_error, name
        assert says in error.content[0].text, (name, error.content[0].text)
