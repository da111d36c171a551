"""`auditor serve` (read-only HTTP API) and `auditor mcp` (Model Context Protocol server over stdio)."""

from __future__ import annotations

import click


@click.command()
def serve() -> None:
    """Serve audits over a read-only HTTP API (not built yet)."""
    raise click.ClickException("auditor serve is not built yet")


@click.command()
def mcp() -> None:
    """Answer agents over the Model Context Protocol on stdio (not built yet)."""
    raise click.ClickException("auditor mcp is not built yet")
