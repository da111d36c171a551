"""The `auditor` command line: parse arguments, call the package, print; no logic of its own."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from auditor import __version__

DEFAULT_REGISTRY = "protocols/registry.yaml"
EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2

def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--engine, --scheduler and --workers: where the run's audits execute (auditor/engine.py)."""
    command = click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
                           help="Worker processes of the local Dask cluster (--engine dask, no --scheduler).")(command)
    command = click.option("--scheduler", metavar="tcp://HOST:PORT",
                           help="Run on this existing Dask cluster instead of a local one.")(command)
    return click.option("--engine", type=click.Choice(["serial", "dask"]), default="serial", show_default=True,
                        help="serial: one audit after another here; dask: as tasks on a Dask cluster.")(command)


registry_option = click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False),
    default=DEFAULT_REGISTRY,
    show_default=True,
    envvar="AUDITOR_REGISTRY",
    help="Registry of chains, hard assets and venues (env AUDITOR_REGISTRY). Point it at another file "
    "to run the same specs against a local chain whose contracts live elsewhere.",
)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    from auditor.text import inert

    click.echo(f"error: {inert(message)}", err=True)  # messages quote paths, URLs and chain text: never raw
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="auditor")
def main() -> None:
    """Audit DeFi yield-bearing tokens from chain state.

    Reads what an issuer really holds and owes at pinned blocks, follows the money through
    mints, bridges and lending markets, removes backing that exists only because tokens hold
    each other, and writes signed reports anyone can verify.

    Tokens are described by YAML specs in protocols/ (one per token) plus
    protocols/registry.yaml (chains, hard assets, venues). Start with:

    \b
      auditor validate                 check every spec in protocols/
      auditor schema > spec.schema.json   JSON Schema for editors
      auditor demo                     the Stream/Elixir reconstruction on local chains

    Exit codes: 0 clean, 1 a check failed (policy breached, audit incomplete), 2 bad input.
    """


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@registry_option
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write one record per file (ok, line, error) as JSON, for CI.")
def validate(paths: tuple[str, ...], registry_path: str, json_out: str | None) -> None:
    """Check specs and the registry; print one line per file.

    PATHS are spec files or folders (default: protocols/). Every problem is reported as
    FILE:LINE: FIELD: what was expected. Exit 2 if any file has an error.
    """
    from auditor.spec import SpecError, load_registry, load_spec, spec_ids_near, spec_paths
    from auditor.text import inert

    results: list[dict[str, Any]] = []

    def report(path: object, error: SpecError | None, line: str) -> None:
        click.echo(line)
        results.append({"file": str(path), "ok": error is None, "line": None if error is None else error.line,
                        "error": None if error is None else str(error)})

    def finish() -> None:
        if json_out:
            from auditor.output import write_json

            write_json(Path(json_out), {"files": results, "ok": all(r["ok"] for r in results)})

    try:
        registry = load_registry(registry_path)
    except SpecError as exc:
        report(registry_path, exc, f"error {exc}")
        finish()
        _fail("the registry is invalid; specs were not checked")
    report(registry_path, None,
           f"ok    {inert(registry_path)}  ({len(registry.chains)} chains, "
           f"{sum(len(a) for a in registry.assets.values())} hard assets, {len(registry.venues)} venues)")
    files = spec_paths(paths)
    if not files:
        finish()
        _fail(f"no spec files found in {', '.join(paths) or 'protocols/'}")
    known = spec_ids_near(files)
    for path in files:
        try:
            spec = load_spec(path, registry, known)
        except SpecError as exc:
            report(path, exc, f"error {exc}")
            continue
        chains = sorted({d.chain for d in spec.token.deployments})
        report(path, None, f"ok    {inert(path)}  ({inert(spec.token.symbol)} on {', '.join(chains)}; "
                           f"{len(spec.accounts)} account(s); depends on {', '.join(spec.depends_on) or 'nothing'})")
    finish()
    errors = sum(not r["ok"] for r in results)
    if errors:
        _fail(f"{errors} of {len(files)} spec file(s) invalid")


@main.command()
@click.option("--registry", "for_registry", is_flag=True, help="Print the registry's schema instead.")
def schema(for_registry: bool) -> None:
    """Print the JSON Schema of the spec format (or of the registry).

    Point your editor at it, e.g. add `# yaml-language-server: $schema=spec.schema.json`
    at the top of a spec.
    """
    from auditor.spec import REGISTRY_FORMAT, SPEC_FORMAT, json_schema

    document = json_schema(REGISTRY_FORMAT, "reserve-auditor registry") if for_registry else json_schema(SPEC_FORMAT)
    click.echo(json.dumps(document, indent=2, sort_keys=True))


@main.command()
@click.argument("spec", type=click.Path())
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
@click.option("--block", multiple=True, metavar="CHAIN=N", help="Pin a chain at block N or latest/finalized/safe.")
@click.option("--at", "at_time", metavar="ISO-TIME", help="Pin every chain at its last block at or before this time.")
@registry_option
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the findings as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False),
              help="Write a signed HTML report (key: --key, else AUDITOR_PRIVATE_KEY, else this machine's key).")
@click.option("--key", type=click.Path(dir_okay=False), help="Encrypted keystore used to sign the report.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the on-disk cache of pinned reads.")
@click.option("--record", type=click.Path(dir_okay=False), help="Write every request and answer to an evidence bundle.")
@click.option("--replay", type=click.Path(dir_okay=False), help="Answer every request from a bundle: no node.")
def audit(
    spec: str,
    rpc: tuple[str, ...],
    block: tuple[str, ...],
    at_time: str | None,
    registry_path: str,
    json_out: str | None,
    html_out: str | None,
    key: str | None,
    no_cache: bool,
    record: str | None,
    replay: str | None,
) -> None:
    """Audit SPEC at pinned blocks: supply, holdings and backing, with evidence for every number.

    Every chain the spec touches is pinned once (latest by default, or --block / --at) and
    every read happens at that block; the node's chain id must match the registry. Pinned
    reads are cached on disk (~/.cache/reserve-auditor), so a re-run costs no eth_call.

    \b
    Examples:
      auditor audit protocols/stream-xusd.yaml --block ethereum=23700000 --json out.json
      auditor audit protocols/stream-xusd.yaml --at 2025-10-28T00:00:00Z --record ev.json.gz
      auditor audit protocols/stream-xusd.yaml --replay ev.json.gz     # no node needed
    """
    if record and replay:
        _fail("--record and --replay cannot be used together")
    _run_guarded(lambda: _audit(spec, rpc, block, at_time, registry_path, json_out, no_cache, record, replay,
                                html_out, key))


def _run_guarded(action: Callable[[], None], chain_error_code: int = EXIT_CHECK_FAILED) -> None:
    """Turn the tool's own errors into one clear line and an exit code; never a traceback."""
    from auditor.chain.rpc import ChainError, ConfigError
    from auditor.spec import SpecError

    try:
        action()
    except SpecError as exc:
        _fail(str(exc))
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except ChainError as exc:
        _fail(f"{exc}; the audit is incomplete and no figures were written", chain_error_code)


def _audit(
    spec_path: str,
    rpc: tuple[str, ...],
    block: tuple[str, ...],
    at_time: str | None,
    registry_path: str,
    json_out: str | None,
    no_cache: bool,
    record: str | None,
    replay: str | None,
    html_out: str | None = None,
    key: str | None = None,
) -> None:
    from auditor.audit import load_bundle, parse_blocks, parse_pairs, parse_time, summary_lines
    from auditor.audit_output import audit_json, audit_with_inputs
    from auditor.chain.evidence import Bundle
    from auditor.chain.reader import ConnectOptions
    from auditor.output import write_json
    from auditor.spec import load_registry, load_spec

    registry = load_registry(registry_path)
    spec = load_spec(spec_path, registry)
    bundle = Bundle() if record else None
    options = ConnectOptions(
        rpc=parse_pairs(rpc, "--rpc"),
        blocks=parse_blocks(block),
        at=parse_time(at_time) if at_time else None,
        use_cache=not no_cache,
        record=bundle,
        replay=load_bundle(replay),
    )
    signing = _signing_key(key) if html_out else None
    result = audit_with_inputs(spec, registry, options, spec_path, registry_path)
    findings = result.document
    if bundle is not None and record:
        findings["evidence"] = {"digest": bundle.write(Path(record)), "file": Path(record).name}
    elif replay:
        findings["evidence"] = {"digest": Bundle.read(Path(replay))[1], "file": Path(replay).name}
    for line in summary_lines(result):
        click.echo(line)
    if json_out:
        write_json(Path(json_out), audit_json(result))
        click.echo(f"findings written to {json_out}" + ("" if result.complete else " (marked incomplete)"))
    if not result.complete:
        if html_out:
            click.echo(f"no report written to {html_out}: an incomplete audit is not signed", err=True)
        _fail(f"the audit is incomplete: {result.why_incomplete()}; its figures are bounds, not a result",
              EXIT_CHECK_FAILED)
    if html_out and signing is not None:
        from auditor.report.publish import write_report

        signing_key, source = signing
        signature = write_report(findings, Path(html_out), signing_key,
                                 findings.get("evidence", {}).get("digest"))
        assert signature is not None  # a key was given
        click.echo(f"report written to {html_out} (signed by {signature.signer} with {source})")


def _signing_key(keystore: str | None) -> tuple[bytes, str]:
    """--key keystore, else AUDITOR_PRIVATE_KEY, else this machine's key (every report is signed); never echoed."""
    from auditor.report.sign import resolve_signing_key

    prompt = (lambda text: str(click.prompt(text, hide_input=True))) if sys.stdin.isatty() else None
    return resolve_signing_key(keystore, prompt)


@main.command()
@click.argument("spec", type=click.Path())
@click.option("--from-block", type=int, help="First block of the window, on every chain of the trace.")
@click.option("--to-block", type=int, help="Last block of the window (default: the chain head); reads are pinned here.")
@click.option("--window", multiple=True, metavar="CHAIN=FROM:TO", help="A window for one chain (repeatable).")
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
@registry_option
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write flows, loops and provenance as JSON.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the on-disk cache of pinned reads.")
@click.option("--shards", type=click.IntRange(min=1), default=1, show_default=True,
              help="Scan each window as this many block ranges, one task each, merged in block order.")
@engine_options
def trace(
    spec: str,
    from_block: int | None,
    to_block: int | None,
    window: tuple[str, ...],
    rpc: tuple[str, ...],
    registry_path: str,
    json_out: str | None,
    no_cache: bool,
    shards: int,
    engine: str,
    scheduler: str | None,
    workers: int,
) -> None:
    """Trace token flows of SPEC over a block window: recursive borrow loops and mint provenance.

    Scans Transfer logs of the token, the tokens it depends on and the hard assets, and the
    lending events of the issuers' accounts (topic filters, so the node does the filtering),
    then finds repeated paths borrow -> deposit -> mint -> post as collateral -> borrow, across
    issuers and across chains through bridges, and for every mint the share paid with borrowed money.

    \b
    Examples:
      auditor trace protocols/stream-xusd.yaml --from-block 23500000 --to-block 23700000
      auditor trace spec.yaml --window ethereum=100:200 --window plume=5000:9000 --json trace.json
      auditor trace spec.yaml --from-block 18000000 --shards 16 --engine dask --workers 4   # years of logs
    """

    def action() -> None:
        from auditor.audit import known_specs, parse_pairs
        from auditor.chain.reader import ConnectOptions, connect
        from auditor.chain.rpc import ConfigError
        from auditor.ledger import chains_needed, issuers_in_audit
        from auditor.spec import load_registry, load_spec
        from auditor.trace import run_trace, summary_lines

        registry = load_registry(registry_path)
        root = load_spec(spec, registry)
        specs = known_specs(root, registry)
        chains = chains_needed(specs, issuers_in_audit(root.id, specs))
        windows: dict[str, tuple[int, int | None]] = {}
        for name, text in parse_pairs(window, "--window").items():
            start, sep, end = text.partition(":")
            if not sep or not start.isdigit() or not (end.isdigit() or end == ""):
                raise ConfigError(f"--window {name}={text}: expected FROM:TO block numbers, e.g. 100:200")
            windows[name] = (int(start), int(end) if end else None)
        if not windows:
            if from_block is None:
                raise ConfigError("give a window: --from-block N [--to-block M], or --window CHAIN=FROM:TO")
            windows = {name: (from_block, to_block) for name in chains}
        unknown = sorted(set(windows) - set(registry.chains))
        if unknown:
            raise ConfigError(f"--window names chains not in the registry: {', '.join(unknown)}")
        blocks = {name: end for name, (_start, end) in windows.items() if end is not None}
        clients = connect({n: registry.chains[n] for n in windows},
                          ConnectOptions(rpc=parse_pairs(rpc, "--rpc"), blocks=blocks, use_cache=not no_cache))
        resolved = {name: (start, end if end is not None else clients[name].pinned.number)
                    for name, (start, end) in windows.items()}
        if engine == "serial" and shards == 1:
            findings = run_trace(root.id, specs, registry, clients, resolved, progress=_progress())
        else:
            from auditor.trace_shards import run_sharded

            def shard_progress(done: int, failed: int, total: int) -> None:
                click.echo(f"[{done}/{total}] shard(s) scanned, {failed} failed", err=True)

            findings = run_sharded(spec, registry_path, parse_pairs(rpc, "--rpc"),
                                   {name: clients[name].pinned.as_dict() for name in resolved}, resolved, shards,
                                   engine, scheduler, workers, not no_cache, shard_progress)
        _show(summary_lines(findings), findings, json_out, "trace")

    _run_guarded(action)


@main.command()
@click.argument("spec", type=click.Path())
@click.option("--from", "start", metavar="ISO-TIME", help="First point (every chain pinned at its last block then).")
@click.option("--to", "end", metavar="ISO-TIME", help="Last point (default: now).")
@click.option("--every", default="1d", show_default=True, metavar="STEP", help="Between points: 30m, 6h, 1d, 1w.")
@click.option("--blocks", metavar="FROM:TO:STEP",
              help="Points at home-chain blocks instead of times; other chains pinned at each block's time.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False),
              help="Date the first crossing of this policy's limits (default: examples/policy.yaml's limits).")
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
@registry_option
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the series and crossings as JSON.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), help="Write one CSV row per point.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False),
              help="Write a signed HTML report: the history charts and the last point's audit.")
@click.option("--key", type=click.Path(dir_okay=False), help="Encrypted keystore used to sign the report.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the on-disk cache of pinned reads.")
@engine_options
def history(spec: str, start: str | None, end: str | None, every: str, blocks: str | None, policy_path: str | None,
            rpc: tuple[str, ...], registry_path: str, json_out: str | None, csv_out: str | None,
            html_out: str | None, key: str | None, no_cache: bool, engine: str, scheduler: str | None,
            workers: int) -> None:
    """Audit SPEC at a series of pins: supply, backing, expansion and coverage over time, and when each
    policy limit was first crossed.

    Each point is a whole audit (`auditor audit --at T`), every chain pinned at its last block at
    or before the point's time. It costs about (points x dependent rounds) requests per chain; a
    re-run is served from the cache of pinned reads (no eth_call twice). A point whose reads
    failed is kept, marked incomplete, and never dates a crossing; the command then exits 1.

    \b
    Examples:
      auditor history protocols/stream-xusd.yaml --from 2025-09-01T00:00:00Z --to 2025-11-05T00:00:00Z --every 1d \\
          --json history.json --csv history.csv --html history.html
      auditor history protocols/stream-xusd.yaml --blocks 23000000:23700000:50400 --policy examples/policy.yaml
    """
    def action() -> None:
        import datetime as dt

        from auditor.audit import parse_pairs, parse_time, require_nodes
        from auditor.chain.reader import ConnectOptions, connect
        from auditor.chain.rpc import ConfigError
        from auditor.gate import load_policy
        from auditor.history import block_points, document, parse_every, run_history, time_points, to_csv
        from auditor.output import write_text
        from auditor.policy import DEFAULT_POLICY
        from auditor.spec import load_registry, load_spec

        if (blocks is None) == (start is None):
            raise ConfigError("give either --from ISO-TIME [--to ISO-TIME] [--every STEP] or --blocks FROM:TO:STEP")
        policy = load_policy(policy_path) if policy_path else DEFAULT_POLICY
        registry = load_registry(registry_path)
        loaded = load_spec(spec, registry)
        require_nodes([loaded], registry, parse_pairs(rpc, "--rpc"))
        if blocks is not None:
            home = loaded.token.deployments[0].chain
            points, source = block_points(blocks), f"blocks {blocks} on {home}"
            head = connect({home: registry.chains[home]}, ConnectOptions(rpc=parse_pairs(rpc, "--rpc"),
                                                                        use_cache=False))[home].pinned.number
            if points[-1].block is not None and points[-1].block > head:
                raise ConfigError(f"--blocks {blocks}: {home}'s head is block {head}; the last point must not be "
                                  "beyond it")
        else:
            assert start is not None
            first = parse_time(start, "--from")
            last = parse_time(end, "--to") if end else dt.datetime.now(dt.UTC)
            points, source = time_points(first, last, parse_every(every)), f"from {start} every {every}"
        signing = _signing_key(key) if html_out else None
        options = ConnectOptions(rpc=parse_pairs(rpc, "--rpc"), use_cache=not no_cache)
        with click.progressbar(length=len(points), label=f"auditing {len(points)} point(s) ({engine})",
                               file=sys.stderr, show_pos=True) as bar:
            def advance(done: int, _failed: int, _total: int) -> None:
                bar.update(done - bar.pos)

            samples, last_document = run_history(loaded, registry, options, points, policy, advance, engine,
                                                 scheduler, workers)
        data = document(loaded, samples, policy, source)
        _show(history_lines(data), data, json_out, "history")
        if csv_out:
            write_text(Path(csv_out), to_csv(data))
            click.echo(f"history written to {csv_out}")
        if html_out and signing is not None:
            _history_report(data, last_document, Path(html_out), signing)
        if not data["complete"]:
            _fail(f"{sum(not s.complete for s in samples)} of {len(samples)} point(s) are incomplete (listed "
                  "above): the history is incomplete", EXIT_CHECK_FAILED)

    _run_guarded(action)


def history_lines(data: dict[str, Any]) -> list[str]:
    """The terminal's view of a history: one line per point, then the crossings (node text made inert)."""
    from auditor.numbers import multiple, percent, usd
    from auditor.text import inert

    lines = []
    for row in data["series"]:
        if not row["complete"] and row.get("supply_usd") is None:
            lines.append(f"{row['point']}: not audited: {inert(row['why_incomplete'])}")
            continue
        mark = "" if row["complete"] else f" (INCOMPLETE: {inert(row['why_incomplete'])})"
        lines.append(f"{row['point']}: supply {usd(row['supply_usd'])}, verifiable backing "
                     f"{usd(row['verifiable_backing_usd'])}, expansion {multiple(row['expansion_ratio'])}, "
                     f"coverage {percent(row['coverage'])}{mark}")
    for name, crossing in data["crossings"].items():
        after = f" (held at {crossing['last_clear']})" if crossing["last_clear"] else " (already at the first point)"
        lines.append(f"first crossed: {name} at {crossing['first']}{after}")
    return lines


def _history_report(data: dict[str, Any], last_document: dict[str, Any] | None, path: Path,
                    signing: tuple[bytes, str]) -> None:
    from auditor.demo import generation_time
    from auditor.report.publish import write_report
    from auditor.report.sign import normalise

    times = [int(dt_.timestamp()) for dt_ in _pin_moments(data)]
    stages = {}
    if last_document is not None:
        last = [row for row in data["series"] if row["complete"]][-1]
        stages[last["point"]] = {"pin_time": last["point"] if "T" in last["point"] else None, "audit": last_document}
    report = normalise({"report": f"{data['spec']}-history", "generated": generation_time(times),
                        "history": data, "stages": stages})
    signature = write_report(report, path, signing[0])
    assert signature is not None
    click.echo(f"report written to {path} (signed by {signature.signer} with {signing[1]})")


def _pin_moments(data: dict[str, Any]) -> list[Any]:
    import datetime as dt

    return [dt.datetime.fromisoformat(pin["time"].replace("Z", "+00:00")) for row in data["series"]
            for pin in row["pins"].values() if pin.get("time")]


@main.command()
@click.argument("spec", type=click.Path())
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False),
              help="Alert when a limit of this policy is crossed (default: examples/policy.yaml's limits).")
@click.option("--every", "every_blocks", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Re-audit when the home chain has moved N blocks since the last audit.")
@click.option("--interval", metavar="STEP", help="Re-audit on a timer instead (30s, 10m, 1h), at the latest blocks.")
@click.option("--poll", type=click.FloatRange(min=0.05), default=12.0, show_default=True, metavar="SECONDS",
              help="How often to look at the chain head with --every.")
@click.option("--state", "state_path", type=click.Path(dir_okay=False),
              help="SQLite file of the watch's memory (default: <cache dir>/watch/SPEC-ID.sqlite).")
@click.option("--webhook", metavar="URL", help="POST every alert here as JSON, signed with HMAC-SHA256.")
@click.option("--webhook-secret-env", default="AUDITOR_WEBHOOK_SECRET", show_default=True, metavar="VAR",
              help="Environment variable holding the webhook's HMAC secret (required with --webhook).")
@click.option("--exit-on-breach", is_flag=True, help="Exit 1 as soon as an audit breaches the policy.")
@click.option("--once", is_flag=True, help="One audit now (for cron): alert the transitions since the last run.")
@click.option("--max-audits", type=click.IntRange(min=1), metavar="N", help="Stop after N audits.")
@click.option("--backoff", type=click.FloatRange(min=0.01), default=5.0, show_default=True, metavar="SECONDS",
              help="First wait after an outage; it doubles on each failure, up to 10 minutes.")
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
@registry_option
def watch(spec: str, policy_path: str | None, every_blocks: int, interval: str | None, poll: float,
          state_path: str | None, webhook: str | None, webhook_secret_env: str, exit_on_breach: bool, once: bool,
          max_audits: int | None, backoff: float, rpc: tuple[str, ...], registry_path: str) -> None:
    """Follow new blocks, re-audit SPEC and alert on transitions only: a flag raised or cleared, a policy
    limit crossed or back, the audit turning incomplete.

    Alerts are JSON lines on stdout (and, with --webhook, an HTTP POST whose body is signed in the
    X-Auditor-Signature header: sha256=HMAC-SHA256(secret, body)). Status goes to stderr. An outage
    backs off and never alerts; an audit whose reads failed raises only audit:incomplete and keeps
    every other condition as it was. The state lives in SQLite: a restart resumes without
    repeating an alert.

    \b
    Examples:
      auditor watch protocols/stream-xusd.yaml --policy examples/policy.yaml --every 300
      AUDITOR_WEBHOOK_SECRET=... auditor watch SPEC --interval 10m --webhook https://hooks.example/audit
      auditor watch SPEC --once --exit-on-breach       # from cron or a CI schedule
    """
    def action() -> None:
        import os

        from auditor.audit import parse_pairs, require_nodes
        from auditor.chain.cache import cache_dir
        from auditor.chain.reader import ConnectOptions
        from auditor.chain.rpc import ConfigError
        from auditor.gate import load_policy
        from auditor.history import parse_every
        from auditor.policy import DEFAULT_POLICY
        from auditor.spec import load_registry, load_spec
        from auditor.watch import Store, Watch

        policy = load_policy(policy_path) if policy_path else DEFAULT_POLICY
        registry = load_registry(registry_path)
        loaded = load_spec(spec, registry)
        require_nodes([loaded], registry, parse_pairs(rpc, "--rpc"))
        if interval and every_blocks != 1:
            raise ConfigError("--every N (blocks) and --interval STEP (time) cannot be used together")
        secret = os.environ.get(webhook_secret_env, "").encode()
        if webhook is not None and not secret:
            raise ConfigError(f"--webhook needs a secret in ${webhook_secret_env}: receivers must be able to check "
                              "that an alert came from this watch")
        if webhook is not None and not webhook.startswith(("http://", "https://")):
            raise ConfigError(f"--webhook {webhook!r}: expected an http:// or https:// URL")
        interval_s = parse_every(interval, "--interval").total_seconds() if interval else None
        store = Store(Path(state_path) if state_path else cache_dir() / "watch" / f"{loaded.id}.sqlite")
        try:
            watcher = Watch(loaded, registry, policy, ConnectOptions(rpc=parse_pairs(rpc, "--rpc")), store,
                            say=lambda line: click.echo(line, err=True), emit=click.echo, webhook=webhook,
                            secret=secret, every_blocks=every_blocks, interval_s=interval_s, poll_s=poll,
                            backoff_s=backoff)
            if once:
                watcher.audit_once()  # delivers what earlier runs left too
                if exit_on_breach and watcher.breached:
                    code = 1
                elif not watcher.deliver():
                    _fail("alerts are waiting for the webhook (kept, retried on the next run)", EXIT_CHECK_FAILED)
                else:
                    code = 0
            else:
                code = watcher.run(max_audits, exit_on_breach)
        finally:
            store.close()
        if code:
            _fail("the policy is breached or the audit could not decide it (--exit-on-breach)", EXIT_CHECK_FAILED)

    _run_guarded(action)


def _show(lines: list[str], data: Any, json_out: str | None, what: str) -> None:
    """The terminal lines of a result, then its JSON file when --json asks for one."""
    from auditor.output import write_json

    for line in lines:
        click.echo(line)
    if json_out:
        write_json(Path(json_out), data)
        click.echo(f"{what} written to {json_out}")


def _progress() -> Callable[..., None] | None:
    """Progress on stderr when it is a terminal; silent in pipes and CI logs."""
    if not sys.stderr.isatty():
        return None

    def show(*parts: object) -> None:
        click.echo("\r" + " ".join(str(p) for p in parts)[:100].ljust(100), err=True, nl=False)

    return show


@main.command()
@click.argument("token")
@click.option("--chain", required=True, help="Chain where TOKEN is used as collateral (a registry chain).")
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
@click.option("--block", multiple=True, metavar="CHAIN=N", help="Pin the chain at block N (default latest).")
@registry_option
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the exposure map as JSON.")
def exposure(token: str, chain: str, rpc: tuple[str, ...], block: tuple[str, ...], registry_path: str,
             json_out: str | None) -> None:
    """List who lends against TOKEN, through which markets and vaults, and how much is at risk.

    TOKEN is an address, or the symbol of a spec in the registry's folder. Every lending venue
    the registry lists on CHAIN answers: each Morpho Blue market taking TOKEN (or a token that
    holds it) as collateral, found from CreateMarket events, private ones included, with every
    supplier, what it has at risk, vault names and curators; and the Aave v3 reserves that list it.
    """

    def action() -> None:
        from auditor.audit import parse_blocks, parse_pairs
        from auditor.chain.reader import ConnectOptions, connect
        from auditor.chain.rpc import ConfigError
        from auditor.exposure import run_exposure, summary_lines
        from auditor.spec import load_registry, load_spec, spec_paths

        registry = load_registry(registry_path)
        if chain not in registry.chains:
            raise ConfigError(f"--chain {chain!r} is not in the registry ({', '.join(registry.chains)})")
        address = token
        if not token.startswith("0x"):
            folder = [str(Path(registry_path).parent)]
            loaded = [load_spec(p, registry) for p in spec_paths(folder)]
            matches = [d.address for s in loaded for d in s.token.deployments
                       if s.token.symbol.lower() == token.lower() and d.chain == chain]
            if not matches:
                raise ConfigError(f"no spec in {folder[0]} has a token {token!r} on {chain}; give its address")
            address = matches[0]
        client = connect({chain: registry.chains[chain]},
                         ConnectOptions(rpc=parse_pairs(rpc, "--rpc"), blocks=parse_blocks(block)))[chain]
        found = run_exposure(address, chain, registry, client)
        _show(summary_lines(found), found, json_out, "exposure")

    _run_guarded(action)


@main.command()
@click.argument("spec", required=False, type=click.Path())
@click.option("--vault", metavar="ADDR", help="Check every collateral this vault lends against (Morpho Blue).")
@click.option("--chain", "vault_chain", metavar="CHAIN", help="Chain of --vault.")
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False),
              help="Policy YAML: min_backing_ratio, max_expansion, fail_on_flags, max_oracle_deviation, ...")
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
@click.option("--block", multiple=True, metavar="CHAIN=N", help="Pin a chain at block N (default latest).")
@registry_option
@click.option("--format", "output_format", type=click.Choice(["text", "json", "junit", "sarif", "github"]),
              default="text", show_default=True, help="junit/sarif for CI result viewers, github for annotations.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the report here instead of stdout.")
def check(spec: str | None, vault: str | None, vault_chain: str | None, policy_path: str, rpc: tuple[str, ...],
          block: tuple[str, ...], registry_path: str, output_format: str, output: str | None) -> None:
    """CI gate for curators: exit 1 when SPEC (or a vault's collateral) breaches the policy.

    Audits SPEC (or, with --vault ADDR --chain C, every collateral the vault lends against that
    has a spec in the spec's folder, default protocols/) and applies the policy. Exit 0 when
    every check passes, 1 when the policy is breached, 2 on bad input or incomplete data: the
    gate fails closed, it never passes on a read it could not make.

    \b
    Example policy (policy.yaml):
      min_backing_ratio: 0.95
      max_expansion: 1.1
      fail_on_flags: [circular-dependency, oracle-overvalues, self-issued-collateral]
      max_oracle_deviation: 0.05
      min_coverage: 0.9   # share of the value moved through counterparties the audit understands
    """
    def action() -> None:
        from auditor.audit import AuditRequest, known_specs, parse_blocks, parse_pairs, run_audit
        from auditor.chain.reader import ConnectOptions, connect
        from auditor.chain.rpc import ConfigError
        from auditor.gate import Check, evaluate, load_policy, render, vault_collaterals
        from auditor.model import token_key
        from auditor.output import write_text
        from auditor.spec import load_registry, load_spec, spec_paths

        policy = load_policy(policy_path)
        registry = load_registry(registry_path)
        options = ConnectOptions(rpc=parse_pairs(rpc, "--rpc"), blocks=parse_blocks(block))
        checks: list[Check] = []
        coverage: dict[str, Any] = {}  # issuer -> share of value moved the audit understands
        if (spec is None) == (vault is None):
            raise ConfigError("give either SPEC or --vault ADDR --chain CHAIN")
        if spec is not None:
            loaded = load_spec(spec, registry)
            audited = run_audit(AuditRequest(loaded, registry, options))
            coverage[audited.spec] = audited.coverage.get(audited.spec)
            checks = evaluate(audited, policy, spec)
        else:
            if not vault_chain or vault_chain not in registry.chains:
                raise ConfigError(f"--vault needs --chain with a chain of the registry ({', '.join(registry.chains)})")
            client = connect({vault_chain: registry.chains[vault_chain]}, options)[vault_chain]
            # The specs beside the registry: the same folder the registry describes, never a default one.
            folder = Path(registry_path).parent
            specs = {p.stem: load_spec(p, registry) for p in spec_paths([str(folder)])}
            by_token = {token_key(d.chain, d.address): s for s in specs.values() for d in s.token.deployments}
            for collateral in vault_collaterals(client, registry, vault_chain, str(vault)):
                owner = by_token.get(token_key(vault_chain, collateral))
                if owner is None:
                    checks.append(Check("verifiable-collateral", collateral, policy.allow_unverified_collateral,
                                        f"{collateral} on {vault_chain} has no spec: its backing cannot be verified"))
                    continue
                owner_specs = known_specs(owner, registry)
                findings = run_audit(AuditRequest(owner, registry, options, specs=owner_specs))
                coverage[findings.spec] = findings.coverage.get(findings.spec)
                checks += evaluate(findings, policy, owner.path)
        text = render(checks, output_format, coverage)
        if output:
            write_text(Path(output), text)
        else:
            click.echo(text, nl=False)
        if not all(c.decided for c in checks):
            sys.exit(EXIT_BAD_INPUT)  # the gate could not decide: fail closed, distinct from a breach
        if not all(c.passed for c in checks):
            sys.exit(EXIT_CHECK_FAILED)

    _run_guarded(action, chain_error_code=EXIT_BAD_INPUT)  # fail closed: incomplete data is not a pass


@main.command()
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--signer", metavar="ADDRESS", help="Fail unless the report was signed by this address.")
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Re-run the audit at the report's pinned blocks.")
@click.option("--replay", type=click.Path(dir_okay=False), help="Re-run the audit from an evidence bundle.")
@click.option("--spec", "spec_override", type=click.Path(dir_okay=False), help="Spec to re-run (default: recorded).")
@click.option("--registry", "registry_override", type=click.Path(dir_okay=False), help="Registry for the re-run.")
@click.option("--rebuild", is_flag=True,
              help="For the demo's report: rebuild the reconstruction on fresh local chains and re-audit it.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write the verdict as JSON (ok, signer, digest, checks, problems).")
def verify(report: str, signer: str | None, rpc: tuple[str, ...], replay: str | None,
           spec_override: str | None, registry_override: str | None, rebuild: bool, json_out: str | None) -> None:
    """Verify a signed report: digest, signature, signer, the page against its findings, and re-execution.

    Recomputes the digest of the embedded findings, recovers the signer from the EIP-191
    signature, re-renders the page from the findings and compares it byte for byte (so an
    edited figure on the page is caught), and with --rpc or --replay re-runs the audit at the
    report's pinned blocks and compares every figure. The demo's report is re-run with --rebuild:
    its chains are rebuilt from the same parameters (fixed block times), so it re-runs to the
    same digest. Exit 0 only if everything matches.
    """

    def action() -> None:
        from auditor.chain.evidence import Bundle
        from auditor.chain.rpc import ConfigError
        from auditor.report.verify import verify_report
        from auditor.text import inert

        if rebuild and (rpc or replay):
            raise ConfigError("--rebuild re-runs the demo on its own chains: give it without --rpc or --replay")
        rerun = _rerun(rpc, replay, spec_override, registry_override) if (rpc or replay) else (
            _rebuild_demo if rebuild else None)
        replay_digest = Bundle.read(Path(replay))[1] if replay else None
        verdict = verify_report(Path(report), expected_signer=signer, rerun=rerun, replay_digest=replay_digest)
        for line in verdict.checks:
            click.echo(f"ok      {inert(line)}")
        for line in verdict.problems:
            click.echo(f"FAILED  {inert(line)}")
        if json_out:
            from auditor.output import write_json

            write_json(Path(json_out), {"report": report, "ok": verdict.ok, "signer": verdict.signer,
                                        "digest": verdict.digest, "checks": verdict.checks,
                                        "problems": verdict.problems})
        if not verdict.ok:
            _fail(f"{report} does not verify ({len(verdict.problems)} problem(s))", EXIT_CHECK_FAILED)
        click.echo(f"{report} verifies")

    _run_guarded(action)


def _rebuild_demo(document: dict[str, Any]) -> dict[str, Any]:
    """The demo's findings again, from a reconstruction rebuilt in a scratch folder (signed with a throwaway key:
    only the findings are compared)."""
    import secrets
    import tempfile

    from auditor.chain.rpc import ConfigError
    from auditor.demo import run_demo

    if "stages" not in document:
        raise ConfigError("--rebuild re-runs the demo's report; re-run other reports with --rpc or --replay")
    click.echo("rebuilding the reconstruction on fresh local chains", err=True)
    with tempfile.TemporaryDirectory(prefix="auditor-verify-") as folder:
        return run_demo(Path(folder), lambda _line: None, signing=(secrets.token_bytes(32), "a throwaway key"))


def _rerun(rpc: tuple[str, ...], replay: str | None, spec_override: str | None,
           registry_override: str | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def rerun(document: dict[str, Any]) -> dict[str, Any]:
        from auditor.audit import AuditRequest, load_bundle, parse_pairs, run_audit
        from auditor.chain.reader import ConnectOptions
        from auditor.chain.rpc import ChainError, ConfigError
        from auditor.spec import load_registry, load_spec

        if "stages" in document:
            raise ConfigError("this report holds several audits (the demo's): re-run it with verify --rebuild")
        inputs = document.get("inputs", {})
        registry = load_registry(registry_override or inputs.get("registry") or DEFAULT_REGISTRY)
        spec = load_spec(spec_override or inputs.get("spec", ""), registry)
        blocks: dict[str, str | int] = {name: int(pin["number"]) for name, pin in document["pins"].items()}
        options = ConnectOptions(rpc=parse_pairs(rpc, "--rpc"), blocks=blocks, replay=load_bundle(replay))
        result = run_audit(AuditRequest(spec, registry, options))
        if not result.complete:
            raise ChainError(result.gaps[0].chain, result.gaps[0].what, str(result.gaps[0].block),
                             f"the re-run is incomplete: {result.gaps[0].reason}")
        fresh = result.document
        fresh["inputs"] = inputs
        if "evidence" in document:
            fresh["evidence"] = document["evidence"]
        return fresh

    return rerun


@main.command()
@click.argument("specs", nargs=-1, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default="reports", show_default=True)
@click.option("--rpc", multiple=True, metavar="CHAIN=URL", help="Node per chain (or AUDITOR_RPC_<CHAIN>).")
@click.option("--block", multiple=True, metavar="CHAIN=N", help="Pin a chain at block N (default latest).")
@registry_option
@click.option("--key", type=click.Path(dir_okay=False), help="Encrypted keystore used to sign the reports.")
@engine_options
def publish(specs: tuple[str, ...], out: str, rpc: tuple[str, ...], block: tuple[str, ...], registry_path: str,
            key: str | None, engine: str, scheduler: str | None, workers: int) -> None:
    """Write a static site: one signed report per spec (audited at the latest blocks, or --block) plus an index.

    Each spec is one task (--engine dask runs them on a Dask cluster, with the same results byte for
    byte). A spec whose audit fails (its chain down, a read refused) fails alone: it is listed in the
    index with the reason, the others are published, and the command exits 1. With no SPECS, only the
    index is rebuilt from the reports already in --out (the demo's included).

    \b
    Examples:
      auditor publish protocols/*.yaml --out site
      auditor publish protocols/ --out site --engine dask --workers 4
      auditor publish protocols/ --out site --engine dask --scheduler tcp://10.0.0.5:8786
    """

    def action() -> None:
        from auditor import engine as engines
        from auditor.audit import parse_blocks, parse_pairs, require_nodes
        from auditor.audit_output import publish_task
        from auditor.report.publish import write_index, write_report
        from auditor.spec import load_registry, load_spec, spec_paths
        from auditor.text import inert

        folder = Path(out)
        signing_key, source = _signing_key(key)
        failures: dict[str, str] = {}
        if specs:
            click.echo(f"signing with {source}")
            registry = load_registry(registry_path)
            paths = spec_paths(specs)
            loaded = [load_spec(path, registry) for path in paths]  # bad input fails here, before any task
            ids = [spec.id for spec in loaded]
            nodes, pins = parse_pairs(rpc, "--rpc"), parse_blocks(block)
            require_nodes(loaded, registry, nodes, pins)
            pinned = ",".join(f"{chain}={number}" for chain, number in sorted(pins.items())) or "latest"
            source = engines.digest(registry_path)
            tasks = [engines.Task(f"publish/{spec_id}/{source}/{pinned}", publish_task,
                                  (str(path), str(registry_path), dict(nodes), dict(pins)))
                     for spec_id, path in zip(ids, paths, strict=True)]
            requests: dict[str, int] = {}

            def progress(done: int, failed: int, total: int) -> None:
                click.echo(f"[{done}/{total}] audited, {failed} failed", err=True)

            for spec_id, outcome in zip(ids, engines.run(tasks, engine, scheduler, workers, progress), strict=True):
                reason = outcome.error or (outcome.value["incomplete"] if outcome.ok else None)
                if reason is not None:
                    click.echo(f"{spec_id}: not published: {inert(reason)}", err=True)
                    failures[spec_id] = reason
                    continue
                for chain, stats in outcome.value["requests"].items():
                    requests[chain] = requests.get(chain, 0) + int(stats.get("http_requests", 0))
                signature = write_report(outcome.value["findings"], folder / f"{spec_id}.html", signing_key)
                assert signature is not None  # a key was given
                click.echo(f"{folder / (spec_id + '.html')}: signed by {signature.signer}")
            if requests:
                click.echo("HTTP requests: " + ", ".join(f"{chain} {n}" for chain, n in sorted(requests.items())))
        click.echo(f"index written to {write_index(folder, failures)}")
        if failures:
            _fail(f"{len(failures)} spec(s) not published: {', '.join(sorted(failures))} (reasons in the index)",
                  EXIT_CHECK_FAILED)

    _run_guarded(action)


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default="reports", show_default=True,
              help="Folder for the report and the reconstruction's registry and specs.")
@click.option("--params", "params_path", type=click.Path(dir_okay=False), default=None,
              help="Demo parameters (default: the shipped stream_elixir.yaml, every number with its source).")
@click.option("--key", type=click.Path(dir_okay=False),
              help="Keystore to sign the report (else AUDITOR_PRIVATE_KEY, else this machine's own key).")
def demo(out: str, params_path: str | None, key: str | None) -> None:
    """Rebuild the Stream/Elixir collapse on two local chains and audit it.

    Starts two anvil nodes on loopback (ethereum and the lending chain), deploys real
    Morpho Blue markets, OpenZeppelin tokens, Stream's and Elixir's vaults and a bridge,
    replays the loop of October-November 2025 transaction by transaction, then audits it
    at three pins (late October, early November, after the loss) with the same code that
    audits mainnet. Writes reports/stream-xusd-reconstruction.json. Nodes are always stopped.
    """
    from auditor.demo import run_demo
    from auditor.lab import reconstruction

    def action() -> None:
        try:
            run_demo(Path(out), click.echo, Path(params_path) if params_path else reconstruction.PARAMS_FILE,
                     _signing_key(key))
        except reconstruction.DemoError as exc:
            _fail(f"{exc}; every node the demo started has been stopped", EXIT_CHECK_FAILED)

    _run_guarded(action)


# The HTTP API and the MCP server live in their own module (their imports stay lazy there).
from auditor.cli_service import mcp, serve  # noqa: E402

main.add_command(serve)
main.add_command(mcp)


if __name__ == "__main__":  # pragma: no cover
    main()
