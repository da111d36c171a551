"""Trace block windows: scan transfer and lending logs through the chain reader, decode, find loops and provenance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from auditor.adapters import Scope, load_venues
from auditor.chain.abi import EventDecoder, address_topic, checksum_address
from auditor.chain.plan import gather, logs, run_plan
from auditor.chain.reader import ChainClient, Read
from auditor.chain.rpc import ChainError, ConfigError
from auditor.flows import (
    ACCOUNT,
    BRIDGE_LOCK,
    BRIDGE_MINT,
    BURN,
    ESCROW,
    ISSUER_CONTRACT,
    MINT,
    NEARBY_BLOCKS,
    TRANSFER,
    VENUE,
    ZERO_ADDRESS,
    FlowEvent,
    Labelling,
    MarketLabel,
    NodeLabel,
    TokenLabel,
    analyze,
)
from auditor.ledger import chains_needed, issuers_in_audit
from auditor.lending import VenueFlows
from auditor.model import token_key
from auditor.numbers import multiple, percent, tokens
from auditor.spec import Registry, Spec
from auditor.text import inert

TRANSFER_EVENT = EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)")
ZERO_TOPIC = address_topic(ZERO_ADDRESS)

TraceProgress = Callable[[str, int, int], None]  # (what is being scanned, blocks done, blocks in the window)


@dataclass
class Collection:
    """Everything read for a trace: typed events, who is who, and what was scanned."""

    events: list[FlowEvent] = field(default_factory=list)
    labelling: Labelling = field(default_factory=Labelling)
    scanned: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ input checks


def check_inputs(
    spec_id: str,
    specs: Mapping[str, Spec],
    clients: Mapping[str, ChainClient],
    windows: Mapping[str, tuple[int, int]],
) -> list[str]:
    """Refuse what cannot be traced, with a message that says what to fix; returns the issuers of the trace."""
    if spec_id not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise ConfigError(f"unknown spec {spec_id!r} (known: {known})")
    issuers = issuers_in_audit(spec_id, specs)
    for issuer in issuers:
        if not specs[issuer].accounts:
            raise ConfigError(
                f"{specs[issuer].path}: {issuer} lists no accounts: a trace follows money through the issuer's "
                "accounts; add them under `accounts:`"
            )
    if not windows:
        raise ConfigError("empty window: give a block window (--from-block/--to-block) for at least one chain")
    needed = set(chains_needed(specs, issuers))
    for chain, window in sorted(windows.items()):
        if chain not in needed:
            raise ConfigError(
                f"{chain}: {spec_id} and the issuers it depends on have no accounts or tokens on {chain}; "
                f"chains of this trace: {', '.join(sorted(needed))}"
            )
        if chain not in clients:
            raise ConfigError(f"{chain}: a window was given but the chain is not connected (no RPC client)")
        start, end = window
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (start, end)):
            raise ConfigError(f"{chain}: block numbers must be integers, got {start!r}..{end!r}")
        if start < 0 or end < 0:
            raise ConfigError(f"{chain}: block numbers cannot be negative, got {start}..{end}")
        if start > end:
            raise ConfigError(
                f"{chain}: the window {start}..{end} is empty: from-block {start} is after to-block {end}"
            )
        head = clients[chain].pinned.number
        if end > head:
            raise ConfigError(
                f"{chain}: the window {start}..{end} ends beyond the chain head (block {head}); "
                f"use --to-block {head} or lower"
            )
    return issuers


# ------------------------------------------------------------------ labelling


def _labels(chain: str, specs: Mapping[str, Spec], issuers: Sequence[str], registry: Registry,
            decimals: Mapping[str, int]) -> tuple[Labelling, dict[str, str]]:
    """Who is who on one chain, and which escrow holds which token (escrow key -> issuer)."""
    lab = Labelling()
    escrows: dict[str, str] = {}
    for symbol, asset in registry.assets.get(chain, {}).items():
        lab.tokens[token_key(chain, asset.address)] = TokenLabel(symbol, asset.decimals)
    for issuer in issuers:
        spec = specs[issuer]
        for account in spec.accounts:
            if account.chain == chain:
                lab.addresses[token_key(chain, account.address)] = NodeLabel(ACCOUNT, account.label, issuer)
        for deployment in spec.token.deployments:
            if deployment.chain != chain:
                continue
            key = token_key(chain, deployment.address)
            lab.tokens[key] = TokenLabel(spec.token.symbol, decimals.get(key, 18), issuer, deployment.bridged)
            name = f"{spec.token.symbol} {'bridged ' if deployment.bridged else ''}token contract"
            lab.addresses.setdefault(key, NodeLabel(ISSUER_CONTRACT, name, issuer))
        for escrow in spec.token.escrow:
            if escrow.chain == chain:
                key = token_key(chain, escrow.address)
                escrows[key] = issuer
                lab.addresses.setdefault(key, NodeLabel(ESCROW, escrow.label or f"{spec.token.symbol} bridge escrow",
                                                        issuer))
    for name, per_chain in sorted(registry.venues.items()):
        venue = per_chain.get(chain)
        if venue is not None:
            lab.addresses.setdefault(token_key(chain, venue.address), NodeLabel(VENUE, name))
    return lab, escrows


def _token_facts(client: ChainClient, addresses: Sequence[str]) -> dict[str, tuple[int | None, str]]:
    """decimals() and symbol() of tokens at the pin, in one batch; None where a token does not answer."""
    unique = sorted(set(addresses), key=str.lower)
    reads = []
    for address in unique:
        reads += [Read(address, "decimals()", returns=("uint8",)), Read(address, "symbol()", returns=("string",))]
    results = client.read(reads) if reads else []
    out: dict[str, tuple[int | None, str]] = {}
    for index, address in enumerate(unique):
        decimals, symbol = results[2 * index], results[2 * index + 1]
        out[token_key(client.chain, address)] = (decimals.one if decimals.ok else None,
                                                 str(symbol.one)[:32] if symbol.ok else "")
    return out


# ------------------------------------------------------------------ collecting


def _scan_both_sides(client: ChainClient, addresses: Sequence[str], topic0: str | Sequence[str],
                     watched: Sequence[str], positions: tuple[int, int], window: tuple[int, int], what: str,
                     progress: TraceProgress | None) -> Iterator[Any]:
    """Logs where either of two indexed addresses (topic positions) is watched: two scans the node filters.

    A log matching both is skipped in the second pass by its first topic, so no set of seen logs is kept.
    """
    first_side = set(watched)
    for pass_number, position in enumerate(positions, 1):
        topics: list[Any] = [topic0, *([None] * (position - 1)), list(watched)]
        label = f"{client.chain}: {what} ({pass_number}/2)"
        report = (lambda done, total, label=label: progress(label, done, total)) if progress else None
        for log in client.scan_logs(addresses, topics, window[0], window[1], report):
            if pass_number == 2 and len(log.topics) > positions[0] and log.topics[positions[0]].lower() in first_side:
                continue
            yield log


def collect(
    spec_id: str,
    specs: Mapping[str, Spec],
    registry: Registry,
    clients: Mapping[str, ChainClient],
    windows: Mapping[str, tuple[int, int]],
    progress: TraceProgress | None = None,
) -> Collection:
    """Scan every window and decode the logs into flow events; check the inputs first."""
    issuers = check_inputs(spec_id, specs, clients, windows)
    out = Collection()
    untraced = sorted(set(chains_needed(specs, issuers)) - set(windows))
    if untraced:
        out.notes.append(f"not traced (no block window): {', '.join(untraced)}")
    for chain in sorted(windows):
        _collect_chain(chain, clients[chain], windows[chain], specs, issuers, registry, out, progress)
    return out


def _collect_chain(chain: str, client: ChainClient, window: tuple[int, int], specs: Mapping[str, Spec],
                   issuers: Sequence[str], registry: Registry, out: Collection,
                   progress: TraceProgress | None) -> None:
    issued = [d.address for i in issuers for d in specs[i].token.deployments if d.chain == chain]
    facts = _token_facts(client, issued)
    for address in issued:
        if facts[token_key(chain, address)][0] is None:  # every amount of the issuer's token would be a guess
            raise ChainError(chain, f"{address}.decimals()", str(client.pinned.number),
                             "the issued token's decimals could not be read: its flows cannot be measured")
    lab, escrows = _labels(chain, specs, issuers, registry,
                           {k: d for k, (d, _s) in facts.items() if d is not None})
    hard = [a.address for a in registry.assets.get(chain, {}).values()]
    watched = sorted({ZERO_TOPIC} | {address_topic(k.split(":", 1)[1]) for k in lab.addresses})
    counts = {"transfer_logs": 0, "lending_logs": 0, "undecodable_logs": 0}
    tokens = sorted({*issued, *hard}, key=str.lower)
    if tokens:
        for log in _scan_both_sides(client, tokens, TRANSFER_EVENT.topic, watched, (1, 2), window, "Transfer logs",
                                    progress):
            counts["transfer_logs"] += 1
            try:
                fields = TRANSFER_EVENT.decode(log.topics, log.data)
            except ValueError:
                counts["undecodable_logs"] += 1  # a Transfer with another layout (ERC-721) at a token address
                continue
            out.events.append(_transfer_event(chain, log.address, fields, log.block_number, log.log_index,
                                              log.tx_hash, lab, escrows))
    if hard:
        counts["transfer_logs"] += _mint_payments(client, chain, hard, out, lab, escrows)
    accounts = sorted(address_topic(k.split(":", 1)[1]) for k, v in lab.addresses.items() if v.role == ACCOUNT)
    modules = load_venues()
    answers: list[tuple[str, str, VenueFlows]] = []
    for name, per_chain in sorted(registry.venues.items()):
        venue = per_chain.get(chain)
        if venue is None:
            continue
        source = modules[name].flows if name in modules else None
        if source is None:
            out.notes.append(f"{chain}: {name} events are not traced (its venue module reads no lending events yet)")
            continue
        found = run_plan(client, source(Scope(chain, client, registry, [], {}, venue=venue), accounts, window))
        counts["lending_logs"] += found.logs
        counts["undecodable_logs"] += found.undecodable
        out.notes += found.notes
        answers.append((name, venue.address, found))
    out.events.extend(_lending_events(client, answers, lab, out.notes))
    _merge(out.labelling, lab)
    out.scanned[chain] = counts


MAX_MINT_BLOCKS = 2_000  # blocks with mints whose payments are looked up; beyond, the note says what was left


def _mint_payments(client: ChainClient, chain: str, hard: Sequence[str], out: Collection, lab: Labelling,
                   escrows: Mapping[str, str]) -> int:
    """Hard-asset transfers inside the transactions that mint an issued token, between addresses the trace does not
    watch: an outsider paying a separate minting contract (DeUSDMinting-style) mints with outside money, and only
    these logs show it; and what an unwatched recipient paid in the NEARBY_BLOCKS blocks before its mint (an
    operator mints once the payment has arrived). All in one round; returns how many logs were added."""
    mints = [e for e in out.events if e.chain == chain and e.kind == MINT]
    txs = {e.tx_hash for e in mints}
    blocks = sorted({e.block for e in mints})
    if not blocks:
        return 0
    if len(blocks) > MAX_MINT_BLOCKS:
        out.notes.append(f"{chain}: payments looked up in the first {MAX_MINT_BLOCKS} of {len(blocks)} blocks with "
                         "mints; mints after them paid to a separate minter by outsiders may show as unpaid")
        blocks = blocks[:MAX_MINT_BLOCKS]
    seen = {(e.tx_hash, e.log_index) for e in out.events if e.chain == chain}
    # An operator mints after the payment arrived: what each unwatched recipient paid in the blocks just before.
    looked_up = set(blocks)
    recipients = sorted({(e.dst.lower(), e.block) for e in mints if e.block in looked_up
                         and token_key(chain, e.dst) not in lab.addresses})
    earlier = [logs(list(hard), [TRANSFER_EVENT.topic, address_topic(r)], max(0, b - NEARBY_BLOCKS), b - 1)
               for r, b in recipients if b > 0]
    found = run_plan(client, gather(*(logs(list(hard), [TRANSFER_EVENT.topic], b, b) for b in blocks), *earlier))
    paid_before = {log.tx_hash for per_scan in found[len(blocks):] for log in per_scan}
    added = 0
    for log in (log for per_block in found for log in per_block):
        if (log.tx_hash not in txs and log.tx_hash not in paid_before) or (log.tx_hash, log.log_index) in seen:
            continue
        seen.add((log.tx_hash, log.log_index))
        try:
            fields = TRANSFER_EVENT.decode(log.topics, log.data)
        except ValueError:
            continue
        out.events.append(_transfer_event(chain, log.address, fields, log.block_number, log.log_index, log.tx_hash,
                                          lab, escrows))
        added += 1
    return added


def _transfer_event(chain: str, token: str, fields: dict[str, Any], block: int, log_index: int, tx_hash: str,
                    lab: Labelling, escrows: Mapping[str, str]) -> FlowEvent:
    key = token_key(chain, token)
    info = lab.tokens.get(key)
    src, dst = fields["from"], fields["to"]
    if src == ZERO_ADDRESS:
        kind = BRIDGE_MINT if info is not None and info.bridged else MINT
    elif dst == ZERO_ADDRESS:
        kind = BURN
    elif (info is not None and info.issuer is not None and not info.bridged
          and escrows.get(token_key(chain, dst)) == info.issuer):
        kind = BRIDGE_LOCK
    else:
        kind = TRANSFER
    return FlowEvent(chain, block, log_index, tx_hash, kind, checksum_address(bytes.fromhex(token[2:])), key,
                     fields["value"], info.decimals if info is not None else 18, src, dst,
                     symbol=info.symbol if info is not None else "")


def _lending_events(client: ChainClient, answers: Sequence[tuple[str, str, VenueFlows]], lab: Labelling,
                    notes: list[str]) -> list[FlowEvent]:
    """Every venue's lending flows as flow events, with their markets labelled and their tokens' decimals."""
    chain = client.chain
    for name, _address, found in answers:
        for market, (loan, collateral) in found.markets.items():
            lab.markets[market] = MarketLabel(name, token_key(chain, loan), token_key(chain, collateral))
    unknown = [t for _n, _a, found in answers for pair in found.markets.values() for t in pair
               if token_key(chain, t) not in lab.tokens]
    for key, (decimals, symbol) in _token_facts(client, unknown).items():
        if decimals is None:  # a guess would scale every amount by powers of ten: leave its events out, say so
            notes.append(f"{chain}: decimals() of {key.split(':', 1)[1]} unreadable; its lending events are left out")
            continue
        lab.tokens[key] = TokenLabel(symbol or key.split(":", 1)[1][:10], decimals)
    events = []
    for _name, _address, found in answers:
        for flow in found.flows:
            info = lab.tokens.get(token_key(chain, flow.token))
            if info is None:
                continue
            events.append(FlowEvent(chain, flow.block, flow.log_index, flow.tx_hash, flow.kind, flow.token,
                                    token_key(chain, flow.token), flow.amount, info.decimals, flow.src, flow.dst,
                                    flow.market, flow.account, info.symbol))
    return events


def _merge(into: Labelling, lab: Labelling) -> None:
    into.addresses.update(lab.addresses)
    into.tokens.update(lab.tokens)
    into.markets.update(lab.markets)


# ------------------------------------------------------------------ the trace


def run_trace(
    spec_id: str,
    specs: Mapping[str, Spec],
    registry: Registry,
    clients: Mapping[str, ChainClient],
    windows: Mapping[str, tuple[int, int]],
    progress: TraceProgress | None = None,
) -> dict[str, Any]:
    """Trace `spec_id` and the issuers it depends on over per-chain block windows (inclusive) at the clients' pins.

    Raises ConfigError (exit 2) for an unknown spec, an issuer without accounts, no window, a window
    with from > to, or one that ends beyond the pinned head. Returns plain, JSON-safe findings.
    """
    collection = collect(spec_id, specs, registry, clients, windows, progress)
    return trace_findings(spec_id, specs, {chain: clients[chain].pinned.as_dict() for chain in windows}, windows,
                          collection)


def trace_findings(spec_id: str, specs: Mapping[str, Spec], pins: Mapping[str, Any],
                   windows: Mapping[str, tuple[int, int]], collection: Collection) -> dict[str, Any]:
    """The trace's findings from what was collected (in one pass or merged from shards: the same events give the
    same findings, analysis orders them by chain, block and log index)."""
    report = analyze(collection.events, collection.labelling, audited=spec_id)
    findings = report.as_dict()
    return {
        "spec": spec_id,
        "issuers": issuers_in_audit(spec_id, specs),
        "windows": {chain: {"from_block": start, "to_block": end, "pin": pins[chain]}
                    for chain, (start, end) in sorted(windows.items())},
        "scanned": collection.scanned,
        **findings,
        "notes": collection.notes + findings["notes"],
    }


def summary_lines(findings: Mapping[str, Any], max_iterations: int = 12) -> list[str]:
    """A few lines for the terminal: what was scanned, where mints were paid from, and each loop."""
    logs = sum(c.get("transfer_logs", 0) + c.get("lending_logs", 0) for c in findings.get("scanned", {}).values())
    windows = ", ".join(f"{chain} {w['from_block']}..{w['to_block']}" for chain, w in findings["windows"].items())
    lines = [f"trace of {findings['spec']} (issuers: {', '.join(findings['issuers'])}): {logs:,} logs, "
             f"{findings['events']['total']:,} flow events; blocks {windows}"]
    provenance = findings["provenance"]
    totals = provenance["totals"]
    symbol = provenance.get("symbol") or findings["spec"]
    if totals["mints"]:
        by_source = totals["by_source_units"]
        lines.append(
            f"mints of {symbol}: {totals['mints']} mint(s), {tokens(totals['minted_units'])} minted: "
            f"{tokens(by_source['borrowed'])} with borrowed money ({percent(totals['borrowed_share'])}), "
            f"{tokens(by_source['external'])} with outside deposits ({percent(totals['external_share'])})"
            + "".join(f", {tokens(by_source[b])} {b}" for b in ("prior", "recycled", "unpaid")
                      if Decimal(by_source[b]))
        )
    else:
        lines.append(f"mints of {symbol}: none in the window")
    loops = findings["loops"]
    if not loops:
        lines.append("recursive borrow loops: none found")
    for loop in loops:
        leverage = multiple(loop["leverage"], unbounded="unbounded (no money in)")
        per_issuer = [f"{i['symbol']} {multiple(i['leverage'])}" for i in loop["minted_by_issuer"]
                      if i["leverage"] is not None]
        if len(per_issuer) > 1 or (per_issuer and len(loop["minted_by_token"]) > 1):
            leverage += f" ({', '.join(per_issuer)})"
        lines.append(
            f"{loop['id']}: {loop['iteration_count']} iteration(s) through {', '.join(loop['issuers'])} on "
            f"{', '.join(loop['chains'])} ({', '.join(loop['venues'])}): minted {tokens(loop['total_minted_units'])} "
            f"from {tokens(loop['external_in_units'])} of outside money: leverage {leverage}"
        )
        for number, cycle in enumerate(loop["cycles"][:3]):
            lines.append(f"  {'path' if number == 0 else 'also'}: " + " -> ".join(cycle) + " -> (again)")
        for iteration in loop["iterations"][:max_iterations]:
            borrowed = iteration["borrowed"]
            minted = ", ".join(f"{tokens(m['units'])} {m['symbol']}" for m in iteration["minted"]) or "nothing"
            posted = ", ".join(f"{tokens(c['units'])} {c['symbol']}" for c in iteration["collateral"]) or "earlier"
            lines.append(f"  {iteration['index']}. {iteration['chain']} block {iteration['block']} "
                         f"tx {iteration['tx'][:12]}: borrowed {tokens(borrowed['units'])} {borrowed['symbol']} "
                         f"against {posted} collateral, minted {minted}")
        hidden = len(loop["iterations"]) - max_iterations
        if hidden > 0:
            lines.append(f"  ... {hidden} more iteration(s) in the JSON output")
    lines += [f"note: {note}" for note in findings.get("notes", [])]
    return [inert(line) for line in lines]  # symbols come from the chain: nothing reaches a terminal raw
