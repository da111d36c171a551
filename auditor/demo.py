"""`auditor demo`: rebuild the Stream/Elixir case on local chains, audit it at three pins, write the report."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from auditor.audit import AuditRequest, run_audit, summary_lines
from auditor.chain.reader import ConnectOptions, connect
from auditor.chain.rpc import ConfigError
from auditor.lab import LabError, project_root, reconstruction
from auditor.output import write_json
from auditor.report.publish import write_index, write_report
from auditor.report.sign import normalise, resolve_signing_key
from auditor.spec import load_registry, load_spec

REPORT_NAME = "stream-xusd-reconstruction"
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"
Say = Callable[[str], None]

METHOD_NOTES = [
    "Everything below was read from the two local chains at the pinned blocks by the same code that audits "
    "mainnet (auditor audit / auditor trace); the reconstruction only built the chains.",
    "Verifiable backing is the least fixed point of look-through valuation: every issuer ratio starts at 0 and "
    "each token is worth what its issuer verifiably holds, so backing that exists only because xUSD holds deUSD "
    "and deUSD lends against xUSD counts as zero. Lending supply is worth idle liquidity plus, per borrower, "
    "min(debt, collateral at look-through), never the market's oracle price.",
    "Late October: Stream's only verifiable asset is the deUSD it bought with users' USDC (deUSD is fully "
    "backed by USDT then), net of what it borrowed; every xUSD it minted with borrowed USDC and posted as "
    "collateral is its own token and worth nothing as its backing. Hence the expansion ratio.",
    "Early November: Elixir has lent most of deUSD's reserves to Stream against xUSD, and Stream holds most "
    "deUSD. The two issuers form a cycle. With xUSD's supply an order of magnitude above anything Stream "
    "verifiably holds, the look-through value of xUSD collapses towards zero, so Elixir's loans are worth "
    "almost nothing and deUSD is backed only by the USDT left in its reserves; Stream's deUSD is then worth "
    "less than its debts, and xUSD's verifiable backing is zero: the expansion ratio is unbounded. The cycle "
    "gap (backing if the cycle's tokens were worth par, minus verifiable backing) is what the loop propped up.",
    "After the loss: the lending markets' oracles still price xUSD at the frozen value while its look-through "
    "value is zero and its market price collapsed; the hidden bad debt per market is what lenders are owed "
    "beyond what the collateral is really worth.",
]


def run_demo(out_dir: Path, say: Say, params_path: Path = reconstruction.PARAMS_FILE,
             signing: tuple[bytes, str] | None = None) -> dict[str, Any]:
    """Build, audit, trace, write `out_dir/stream-xusd-reconstruction.json`; nodes are always stopped."""
    params = reconstruction.load_params(params_path)
    say(f"starting two local chains (parameters: {params_path})")
    eth, plume = reconstruction.start_nodes(params)
    try:
        world = reconstruction.build(params, say, eth, plume)
        inputs = reconstruction.write_inputs(world, params, out_dir / REPORT_NAME)
        say(f"wrote the reconstruction's registry and specs to {inputs['registry'].parent}")
        registry = load_registry(inputs["registry"])
        spec = load_spec(inputs["stream-xusd"], registry)
        rpc = {"ethereum": eth.url, "plume": plume.url}
        stages: dict[str, Any] = {}
        for stage in reconstruction.STAGES:
            say(f"auditing at the {stage} pin")
            options = ConnectOptions(rpc=rpc, blocks=world.pins[stage], use_cache=False)
            result = run_audit(AuditRequest(spec, registry, options))
            if not result.complete:
                raise reconstruction.DemoError(f"the {stage} audit is incomplete: {result.why_incomplete()}")
            findings = result.document
            for line in summary_lines(result):
                say("  " + line)
            stages[stage] = {"pin_time": reconstruction.PIN_TIMES[stage], "audit": findings,
                             "trace": _trace(spec.id, registry, inputs, rpc, world.pins[stage], say)}
        history_data = _history(spec, registry, rpc, params, say)
    finally:
        eth.stop()
        plume.stop()
    # Nothing run-dependent goes into the signed document (no wall clock, output folder, node URL or port):
    # two runs with the same parameters and key write the same bytes. The JSON file holds the canonical spelling
    # of every value, the one the signature covers.
    document: dict[str, Any] = normalise({
        "report": REPORT_NAME,
        "generated": generation_time(reconstruction.timestamp(stage["pin_time"]) for stage in stages.values()),
        "parameters": {"file": _shown_path(params_path), "values": params},
        "inputs": {name: path.relative_to(out_dir).as_posix() for name, path in inputs.items()},
        "pins": world.pins,
        "stages": stages,
        "headline": headline(stages),
        "history": history_data,
        "method_notes": METHOD_NOTES,
    })
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{REPORT_NAME}.json"
    write_json(path, document)
    html = out_dir / f"{REPORT_NAME}.html"
    signer_key, source = signing if signing is not None else resolve_signing_key(None)
    signature = write_report(document, html, signer_key)
    assert signature is not None  # a key was given
    say(f"report written to {path} and {html} (signed by {signature.signer} with {source})")
    say(f"index written to {write_index(out_dir)}")
    return document


def generation_time(pin_timestamps: Iterable[int], environ: Mapping[str, str] = os.environ) -> str:
    """The report's "generated" time without the wall clock: $SOURCE_DATE_EPOCH when set (as reproducible
    builds do), else the latest pinned block's time, which is when the findings describe."""
    override = environ.get(SOURCE_DATE_EPOCH, "").strip()
    if override:
        if not override.isdigit():
            raise ConfigError(f"{SOURCE_DATE_EPOCH}={override!r} is not a count of seconds since 1970 (UTC)")
        seconds = int(override)
    else:
        seconds = max(pin_timestamps, default=-1)
        if seconds < 0:
            raise ValueError(f"no pinned block to date the findings by; set {SOURCE_DATE_EPOCH}")
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise ConfigError(f"{SOURCE_DATE_EPOCH}={override!r} is out of range for a date") from None
    return moment.isoformat().replace("+00:00", "Z")


def _shown_path(path: Path) -> str:
    """The parameters file as the report shows it: relative to the checkout when inside it (the same on every
    machine), else as given."""
    try:
        return path.resolve().relative_to(project_root()).as_posix()
    except (ValueError, LabError):
        return str(path)


def _trace(root: str, registry: Any, inputs: dict[str, Path], rpc: dict[str, str], pins: dict[str, int],
           say: Say) -> dict[str, Any]:
    """Flows and loops from the first block to the pin on every chain (the trace command's engine)."""
    from auditor.audit import known_specs
    from auditor.trace import run_trace

    spec = load_spec(inputs[root], registry)
    specs = known_specs(spec, registry)
    clients = connect({c: registry.chains[c] for c in pins}, ConnectOptions(rpc=rpc, blocks=pins, use_cache=False))
    findings: dict[str, Any] = run_trace(root, specs, registry, clients, {c: (0, b) for c, b in pins.items()})
    return findings


def _history(spec: Any, registry: Any, rpc: dict[str, str], params: dict[str, Any], say: Say) -> dict[str, Any]:
    """`auditor history` over the reconstruction: from the parameters' first point to the last pin, with the
    default policy, so the report dates when each limit would have fired."""
    from auditor.audit import parse_time
    from auditor.history import document, parse_every, run_history, time_points
    from auditor.policy import DEFAULT_POLICY

    points = time_points(parse_time(params["history"]["from"], "history.from"),
                         parse_time(reconstruction.PIN_TIMES["after-loss"]), parse_every(params["history"]["every"]))
    say(f"auditing the reconstruction at {len(points)} points (auditor history, every {params['history']['every']})")

    samples, _last = run_history(spec, registry, ConnectOptions(rpc=rpc, use_cache=False), points, DEFAULT_POLICY)
    for sample in samples:
        if not sample.complete:
            raise reconstruction.DemoError(f"the history point {sample.point.label} is incomplete: "
                                           f"{sample.why_incomplete}")
    data = document(spec, samples, DEFAULT_POLICY, f"from {params['history']['from']} every "
                    f"{params['history']['every']}")
    for name, crossing in data["crossings"].items():
        say(f"  first crossed: {name} at {crossing['first']}")
    return data


def headline(stages: dict[str, Any]) -> dict[str, Any]:
    """The numbers a reader needs first, per stage, for the audited token."""
    out = {}
    for stage, content in stages.items():
        findings = content["audit"]
        figures = findings["backing"]["issuers"][findings["spec"]]
        out[stage] = {
            "supply_usd": figures["supply_usd"],
            "verifiable_backing_usd": figures["verifiable_backing_usd"],
            "expansion_ratio": figures["expansion_ratio"],
            "flags": sorted({f["id"] for f in findings["flags"]}),
        }
    return out

