"""`auditor mcp`: the audits as Model Context Protocol tools over stdio, on the official `mcp` SDK.

Every tool answers structured content (a JSON object with an output schema) from the same `Service` as the HTTP
API: the same specs, the same audits, kept at fixed pins and shared while in flight. A tool that cannot answer
(unknown token, a failed read, an unreachable node) is a tool error with the reason, never partial figures.
Nothing but the protocol is written to stdout.
"""

from __future__ import annotations

import asyncio
import difflib
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from auditor import __version__
from auditor.api import Pins, Service, ServiceError, backing_summary, then
from auditor.audit_output import audit_json

INSTRUCTIONS = (
    "reserve-auditor reads what a yield-bearing token's issuer really holds and owes on chain, values it at "
    "look-through (backing that exists only because tokens hold each other counts as zero) and signs the result. "
    "Ask is_backed before trusting a token's claim; audit for every figure; exposure for who lends against it; "
    "explain_flag for what a flag means. Tokens are spec ids or symbols (see the audit tool's errors for the list)."
)


def explain(flag_id: str) -> dict[str, Any]:
    """A flag's id, severity and plain-language help; a did-you-mean for an unknown id."""
    from auditor.flags import all_detectors

    detectors = {d.ID: d for d in all_detectors()}
    detector = detectors.get(flag_id.strip().lower())
    if detector is None:
        near = difflib.get_close_matches(flag_id, list(detectors), n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ServiceError(404, "unknown-flag",
                           f"no flag {flag_id[:60]!r}; {hint}known: {', '.join(sorted(detectors))}")
    return {"id": detector.ID, "severity": detector.SEVERITY.value, "help": detector.HELP}


def build_server(service: Service) -> MCPServer:
    """The MCP server: four tools over `service`."""
    server: MCPServer = MCPServer("reserve-auditor", instructions=INSTRUCTIONS, version=__version__)

    async def wait(future: Any) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), service.settings.timeout_s)
        except TimeoutError:
            raise ToolError(f"the audit took more than {service.settings.timeout_s:g} s; ask again shortly") from None
        except ServiceError as exc:
            raise ToolError(exc.message) from None

    def pins(token: str, at: str | None = None, block: list[str] | None = None) -> tuple[Any, Pins]:
        try:
            spec = service.spec(token, by_symbol=True)
            return spec, service.pins(spec, block or (), at)
        except ServiceError as exc:
            raise ToolError(exc.message) from None

    @server.tool()
    async def is_backed(token: str) -> dict[str, Any]:
        """Is this token backed, by how much, and who says so? Audits it at the latest blocks.

        Answers: backed (true only when every read answered and verifiable backing covers the supply),
        backing_ratio and expansion_ratio (exact decimal strings), coverage, supply and verifiable backing in USD,
        flags, the pinned blocks, and the signed report's signer and digest (verify with `auditor verify`).
        token: a spec id (e.g. stream-xusd) or the token's symbol.
        """
        spec, pinned = pins(token)
        audited, _source = service.audit(spec, pinned)
        result = await wait(audited)
        signed, _ = service.report(spec, pinned)
        _html, signature = await wait(signed)
        return {**backing_summary(result),
                "report": {k: signature[k] for k in ("signer", "digest", "scheme")}}

    @server.tool()
    async def audit(token: str, at: str | None = None, block: list[str] | None = None) -> dict[str, Any]:
        """Every figure of an audit: the same JSON as `auditor audit --json` (balance sheets, look-through
        backing, markets, flags, exposure, coverage, pins), or an error when a read failed.

        token: a spec id or symbol. at: an ISO time (every chain at its last block at or before it).
        block: pins such as ["ethereum:23700000"] (default: latest).
        """
        spec, pinned = pins(token, at, block)
        audited, _source = service.audit(spec, pinned)
        shaped = then(audited, audit_json)
        document: dict[str, Any] = await wait(shaped)
        return document

    @server.tool()
    async def exposure(token: str, chain: str) -> dict[str, Any]:
        """Who lends against a token on a chain: every lending market taking it (or a token holding it) as
        collateral, its suppliers and vaults, and what each has at risk, at the chain's latest block.

        token: an address (0x...), a spec id or a symbol. chain: a registry chain name.
        """
        try:
            return await asyncio.to_thread(service.exposure, token, chain)
        except ServiceError as exc:
            raise ToolError(exc.message) from None

    @server.tool()
    def explain_flag(flag_id: str) -> dict[str, Any]:
        """What a flag means, in plain language, with its severity (flag ids as in audit results)."""
        try:
            return explain(flag_id)
        except ServiceError as exc:
            raise ToolError(exc.message) from None

    return server
