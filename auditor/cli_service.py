"""`auditor serve` (read-only HTTP API) and `auditor mcp` (Model Context Protocol server over stdio).

Starlette, uvicorn and the MCP SDK are imported inside the commands: `auditor --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from auditor.api import Service

specs_option = click.option("--specs", "specs_dir", type=click.Path(file_okay=False), default="protocols",
                            show_default=True, help="Folder of specs served (one token per spec; ids are file names).")
registry_option = click.option("--registry", "registry_path", type=click.Path(dir_okay=False), default=None,
                               envvar="AUDITOR_REGISTRY",
                               help="Registry (env AUDITOR_REGISTRY; default: registry.yaml in --specs).")
rpc_option = click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
key_option = click.option("--key", type=click.Path(dir_okay=False),
                          help="Keystore signing the reports (else AUDITOR_PRIVATE_KEY, else this machine's key).")
no_cache_option = click.option("--no-cache", is_flag=True,
                               help="Do not read or write the on-disk cache of pinned reads.")
timeout_option = click.option("--timeout", "timeout_s", type=click.FloatRange(1, 3600), default=120, show_default=True,
                              help="Seconds a request waits for its audit (which still finishes and is kept).")


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit 2 (bad input), as the other commands say it."""
    from auditor.text import inert

    click.echo(f"error: {inert(message)}", err=True)
    sys.exit(2)


def _service(specs_dir: str, registry_path: str | None, rpc: tuple[str, ...], key: str | None, no_cache: bool,
             **settings: Any) -> Service:
    """The shared service, or one clear line and exit 2 on a bad spec, registry, key or --rpc."""
    from auditor.api import Service, Settings
    from auditor.audit import parse_pairs
    from auditor.chain.rpc import ConfigError
    from auditor.report.sign import resolve_signing_key
    from auditor.spec import SpecError

    folder = Path(specs_dir)
    try:
        if not folder.is_dir():
            raise ConfigError(f"--specs {specs_dir}: no such folder")
        prompt = (lambda text: str(click.prompt(text, hide_input=True, err=True))) if sys.stdin.isatty() else None
        signing = resolve_signing_key(key, prompt)
        click.echo(f"reports are signed with {signing[1]}", err=True)
        return Service(Settings(specs_dir=folder, registry_path=Path(registry_path or folder / "registry.yaml"),
                                rpc=parse_pairs(rpc, "--rpc"), signing=signing, use_cache=not no_cache, **settings))
    except (SpecError, ConfigError) as exc:
        _fail(str(exc))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free one).")
@specs_option
@registry_option
@rpc_option
@click.option("--policies", "policies_dir", type=click.Path(file_okay=False), default="examples", show_default=True,
              help="Folder of named policies for /v1/check (NAME.yaml).")
@key_option
@no_cache_option
@click.option("--rate", "rate_per_minute", type=click.IntRange(1, 100_000), default=60, show_default=True,
              help="Requests a minute per client address (then 429 with Retry-After).")
@click.option("--max-audits", "max_parallel", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Audits run at once; identical requests share one.")
@timeout_option
@click.option("--json", "as_json", is_flag=True, help="Say where it listens as one JSON line on stdout.")
def serve(host: str, port: int, specs_dir: str, registry_path: str | None, rpc: tuple[str, ...], policies_dir: str,
          key: str | None, no_cache: bool, rate_per_minute: int, max_parallel: int, timeout_s: float,
          as_json: bool) -> None:
    """Serve audits over a read-only HTTP API (JSON; reports as signed HTML).

    \b
    GET /v1/tokens                        the specs served
    GET /v1/audit/ID?block=CHAIN:N&at=T   the same JSON as `auditor audit --json`
    GET /v1/check/ID?policy=NAME          `auditor check --format json` with --policies/NAME.yaml
    GET /v1/reports/ID                    the signed HTML report (`auditor verify` checks it)
    GET /healthz, GET /openapi.json       liveness; the OpenAPI schema

    Audits pinned at block numbers are kept in memory; identical requests in flight share one
    audit. It fails closed: a failed read or an unreachable node is a 503 with the reason, never
    partial figures; bad input is a 4xx JSON error. Errors are {"error": {status, code, message}}.

    \b
    Examples:
      auditor serve --rpc ethereum=$ETH_RPC_URL --rpc plume=https://rpc.plume.org
      auditor serve --port 0 --json        # {"url": "http://127.0.0.1:41234", ...} once listening
      curl 'http://127.0.0.1:8080/v1/audit/stream-xusd?block=ethereum:23700000'
    """
    import uvicorn

    from auditor.api import create_app

    service = _service(specs_dir, registry_path, rpc, key, no_cache, policies_dir=Path(policies_dir),
                       rate_per_minute=rate_per_minute, max_parallel=max_parallel, max_queue=8 * max_parallel,
                       timeout_s=timeout_s)
    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            """Once listening (the port is known, also for --port 0), say where."""
            await super().startup(sockets)
            if self.should_exit:
                return
            bound = self.servers[0].sockets[0].getsockname()[1]
            url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
            if as_json:
                click.echo(json.dumps({"url": url, "openapi": f"{url}/openapi.json", "specs": sorted(service.specs)}))
            else:
                click.echo(f"serving {len(service.specs)} spec(s) from {specs_dir} at {url} "
                           f"(OpenAPI: {url}/openapi.json)")
            sys.stdout.flush()

    config = uvicorn.Config(create_app(service), host=host, port=port, log_level="warning", proxy_headers=False,
                            server_header=False, limit_concurrency=256, timeout_keep_alive=5,
                            h11_max_incomplete_event_size=16 * 1024)
    server = Server(config)
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        _fail(f"cannot listen on {host}:{port} (the reason is the line above)")
    finally:
        service.close()


@click.command()
@specs_option
@registry_option
@rpc_option
@key_option
@no_cache_option
@timeout_option
def mcp(specs_dir: str, registry_path: str | None, rpc: tuple[str, ...], key: str | None, no_cache: bool,
        timeout_s: float) -> None:
    """Answer agents over the Model Context Protocol on stdio (official MCP SDK).

    \b
    Tools (each returns structured content):
      is_backed(token)       backed or not, backing ratio, expansion, coverage, the report's signer and digest
      audit(token, at?)      the same JSON as `auditor audit --json` (also block=["CHAIN:N"])
      exposure(token, chain) who lends against the token and what is at risk
      explain_flag(flag_id)  what a flag means, with its severity

    A token is a spec id or its symbol. A failed read or an unreachable node is a tool error with
    the reason, never partial figures. Only the protocol is written to stdout.

    \b
    Example (an MCP client's server entry):
      {"command": "auditor", "args": ["mcp", "--rpc", "ethereum=https://eth.example"]}
    """
    from auditor.mcp_server import build_server

    service = _service(specs_dir, registry_path, rpc, key, no_cache, timeout_s=timeout_s)
    try:
        build_server(service).run("stdio")
    finally:
        service.close()
