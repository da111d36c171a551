"""Render report documents to self-contained HTML pages (inline CSS and SVG, no scripts) and the site index."""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from auditor import numbers
from auditor.numbers import to_decimal
from auditor.text import inert_markup as inert

# Package data (auditor/report/templates), read through importlib.resources so an installed wheel renders too.
TEMPLATES_DIR = files("auditor.report") / "templates"

# No fetches of any kind (fonts, images, frames, scripts); inline <style> only. A report is read by people
# who were sent it by someone they may not trust: the page must not be able to phone home or run code.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
FINDINGS_SCRIPT_ID = "findings"
SIGNATURE_SCRIPT_ID = "signature"
SEVERITIES = ("critical", "high", "medium", "low", "info")  # most severe first
NO_FLAGS = "none"
FAILED = "failed"  # an index row for a spec whose audit failed (no report)

# Generic dumps of data whose schema this module does not know stop here, so a hostile or broken
# document cannot make rendering recurse without bound.
MAX_DEPTH = 12

_LT_ESCAPE = "\\u003c"
# The two data blocks of a page, as the template writes them.
_BLOCKS = {
    FINDINGS_SCRIPT_ID: r'<script type="application/octet-stream" id="findings" data-encoding="zlib\+base64">'
                        r"(.*?)</script>",
    SIGNATURE_SCRIPT_ID: r'<script type="application/json" id="signature">(.*?)</script>',
}
# Findings inflating beyond this are refused (a crafted block must not exhaust memory).
MAX_FINDINGS_BYTES = 256 * 1024 * 1024
_SAFE_HREF = re.compile(r"[A-Za-z0-9._~%+-]+(?:/[A-Za-z0-9._~%+-]+)*(?:#[A-Za-z0-9._~%+-]*)?")

# Picture colours (SVG attributes rather than CSS classes, so a copied or printed SVG keeps them).
SUPPLY_COLOUR = "#3b4a5c"
VERIFIABLE_COLOUR = "#12805c"
CIRCULAR_COLOUR = "#e07b00"
UNVERIFIABLE_COLOUR = "#8e6fd8"
EDGE_COLOUR = "#6b7785"
CYCLE_COLOUR = "#c4161c"
NODE_FILL = "#eef2f6"
BORROWED_COLOUR = "#e07b00"
MINTED_COLOUR = "#2563a8"
TEXT_COLOUR = "#1b1f24"
MUTED_COLOUR = "#57606a"
BUCKET_COLOURS = {
    "external": "#12805c",
    "borrowed": "#c4161c",
    "prior": "#8a94a6",
    "recycled": "#e07b00",
    "unpaid": "#7a2e8e",
}
OTHER_BUCKET_COLOUR = "#b0b7c3"


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def render_report(document: Mapping[str, Any], *, findings_json: str, signature: Mapping[str, Any] | None,
                  findings_block: str | None = None) -> str:
    """One self-contained HTML page for a report document, with `findings_json` embedded for verifiers.

    `findings_json` is embedded deflated and base64-encoded in `<script type="application/octet-stream"
    id="findings">` (`embed_findings_json`; `findings_block`, if given, is a block read from a page, used
    verbatim once it is checked to inflate to `findings_json`); `extract_findings_json` gives back the
    exact original string. `signature` is None (the page says
    UNSIGNED, loudly) or {"signer", "signature", "digest", optional "evidence_digest", optional "note",
    any other string fields}: shown in the page and embedded as canonical JSON in a second data block,
    `<script type="application/json" id="signature">` (`extract_signature`). Neither block runs: they
    are data, and the page's policy allows no script at all.

    The output depends only on the inputs' content, never on dict order, on a float being spelled
    0.06 or "0.06", or on the time of rendering: verification re-renders from the parsed canonical
    findings and compares bytes.
    """
    if findings_block is None:
        embedded = embed_findings_json(findings_json)
    elif decode_findings_block(findings_block) != findings_json:
        raise ValueError("the findings block does not inflate to the findings")
    else:
        embedded = _trusted(findings_block)  # base64 only (checked by decoding): nothing to escape
    signature_view = _signature_view(signature)
    signature_json = _embed_json(_canonical(dict(signature))) if signature is not None else None
    stages = _stage_views(document)
    first_audit = _map(stages[0]["audit"]) if stages else {}
    tool = _tool_text(first_audit.get("tool"))
    report_name = text(document.get("report")) or (stages[0]["spec"] if stages else "") or "report"
    appendix = [(key, tree(document.get(key))) for key in ("parameters", "pins") if document.get(key) is not None]
    if _history_view(document.get("history")) is None and document.get("history") is not None:
        appendix.append(("history", tree(document.get("history"))))  # a history of one point: shown as data
    return _env().get_template("report.html.j2").render(
        story=_story(stages),
        history=_history_view(document.get("history")),
        last=stages[-1] if stages else None,
        csp=_trusted(CSP),  # a constant: kept literal so the policy is readable in the page source
        css=_css(),
        report=report_name,
        generated=text(document.get("generated")),
        stages=stages,
        method_notes=_texts(document.get("method_notes")),
        appendix=appendix,
        tool=tool,
        signature=signature_view,
        findings=embedded,
        findings_id=FINDINGS_SCRIPT_ID,
        signature_json=signature_json,
        signature_id=SIGNATURE_SCRIPT_ID,
    )


def render_index(entries: Sequence[Mapping[str, Any]]) -> str:
    """The published site's index: one row per report, sortable without scripts (one pre-sorted table per order).

    Each entry: {title, file (a relative link), token, verdict, severity, expansion_ratio (text or None
    for unbounded), generated, signer (None when unsigned)}; optionally supply_usd,
    verifiable_backing_usd, pin_time, worst_flag, which add columns when any entry has them.
    """
    rows = [_index_row(entry) for entry in entries]
    keys = [(row["href"], row["token"], row["stage"]) for row in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("index entries must be distinct (file, token, stage) rows: a file is listed twice")
    optional = [(key, label, kind) for key, label, kind in (
        ("stage", "Pin", "text"),
        ("pin_time", "Pinned at", "time"),
        ("supply_usd", "Supply", "usd"),
        ("verifiable_backing_usd", "Verifiable backing", "usd"),
        ("flags", "Flags", "text"),
        ("worst_flag", "Worst flag", "text"),
    ) if any(key in entry for entry in entries)]
    for row, entry in zip(rows, entries, strict=True):
        row["optional"] = [money(entry.get(key)) if kind == "usd" else moment(text(entry.get(key))) if kind == "time"
                           else text(entry.get(key)) for key, _, kind in optional]
    orders: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("token", "Token", sorted(rows, key=lambda r: (r["token"].casefold(), r["token"], r["href"], r["pin"]))),
        ("expansion", "Expansion", sorted(rows, key=lambda r: (r["expansion_key"], r["href"], r["pin"]))),
        ("generated", "Generated", sorted(rows, key=lambda r: (r["generated"], r["href"], r["pin"]), reverse=True)),
        # The default order comes last: CSS shows it unless another order is the :target before it. Worst
        # first; for one token, its latest pin first.
        ("severity", "Severity", sorted(rows, key=lambda r: (r["severity_rank"], r["expansion_key"], r["token"],
                                                             r["href"], _descending(r["pin"])))),
    ]
    return _env().get_template("index.html.j2").render(
        csp=_trusted(CSP),
        css=_css(),
        count=len(rows),
        optional_columns=[label for _, label, _ in optional],
        views=[{"key": key, "label": label, "rows": ordered} for key, label, ordered in orders],
        sortable=[(key, label) for key, label, _ in orders],
    )


def embed_findings_json(findings_json: str) -> Markup:
    """The findings as the page carries them: zlib-deflated (level 9) then base64, one line.

    Base64 has no "<", so no text in the findings (a token symbol of "</script>" or "<!--") can end or
    confuse the block. Compressing keeps a page with every pin's findings small (the demo's 296 KB of JSON
    become ~40 KB). Another zlib build may deflate the same JSON to other bytes: `auditor verify` therefore
    checks that the page's block inflates to the signed findings and re-renders the page around that very
    block (`render_report(findings_block=...)`), never re-deflating.
    """
    if not isinstance(findings_json, str):
        raise TypeError("findings_json must be the canonical JSON text (str)")
    try:
        json.loads(findings_json)
    except ValueError as exc:
        raise ValueError(f"findings_json is not valid JSON: {exc}") from None
    return _trusted(base64.b64encode(zlib.compress(findings_json.encode("utf-8"), 9)).decode("ascii"))


def decode_findings_block(block: str) -> str:
    """The findings JSON text a findings block carries (reverses embed_findings_json); ValueError if it is not one."""
    try:
        packed = base64.b64decode(block.strip(), validate=True)
        inflater = zlib.decompressobj()
        data = inflater.decompress(packed, MAX_FINDINGS_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(f"the findings inflate to more than {MAX_FINDINGS_BYTES} bytes")
        if not inflater.eof or inflater.unused_data:
            raise ValueError("the findings block is truncated or has trailing data")
        return data.decode("utf-8")
    except (binascii.Error, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"the findings block is not deflated base64 JSON ({exc.__class__.__name__})") from None


def findings_block(html: str) -> str | None:
    """The findings block's text exactly as the page holds it, or None."""
    return _extract_block(html, FINDINGS_SCRIPT_ID)


def extract_findings_json(html: str) -> str:
    """The exact `findings_json` string a page was rendered with."""
    block = findings_block(html)
    if block is None:
        raise ValueError("no findings block: not a report of this tool")
    return decode_findings_block(block)


def extract_signature(html: str) -> dict[str, Any] | None:
    """The signature a page was rendered with, or None for an unsigned page."""
    block = signature_block(html)
    if block is None:
        return None
    signature = json.loads(block)
    if not isinstance(signature, dict):
        raise ValueError("the signature block is not a JSON object")
    return signature


def signature_block(html: str) -> str | None:
    """The signature block's JSON text (with "<" as the JSON escape \\u003c, as embedded), or None."""
    return _extract_block(html, SIGNATURE_SCRIPT_ID)


def _extract_block(html: str, block_id: str) -> str | None:
    blocks = re.findall(_BLOCKS[block_id], html, flags=re.DOTALL)
    if len(blocks) > 1:
        raise ValueError(f"the report holds {len(blocks)} {block_id!r} blocks; a genuine report holds one")
    return blocks[0] if blocks else None


def _embed_json(value_json: str) -> Markup:
    """JSON text made safe inside a <script> data block: "<" becomes \\u003c (the same JSON value)."""
    return _trusted(value_json.replace("<", _LT_ESCAPE))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# ---------------------------------------------------------------------------------------------
# Plain values: tolerant reading, exact and human formatting
# ---------------------------------------------------------------------------------------------


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _texts(value: Any) -> list[str]:
    """A list of notes or steps as text; a lone value (a schema drift) is kept rather than dropped."""
    if isinstance(value, list | tuple):
        return [text(item) for item in value]
    return [] if value is None or value == "" else [text(value)]


def _items(value: Any) -> list[tuple[str, Any]]:
    """A mapping's items by key: output must not depend on how a dict was built (re-rendering parsed JSON)."""
    return sorted(((str(key), item) for key, item in _map(value).items()), key=lambda pair: pair[0])


def text(value: Any) -> str:
    """Any JSON-ish value as display text; containers as sorted JSON so the text is stable.

    Numbers are written as plain decimals (1e-05 -> 0.00001), the spelling canonical findings give
    them as strings: a page rendered from the document and one re-rendered from its canonical JSON
    must be identical.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        # str(): a plain str, so a markupsafe.Markup inside a document cannot bypass escaping.
        return inert(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f") if math.isfinite(value) else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


def _missing(value: Any) -> str:
    return "—" if value is None or value == "" else text(value)


def _shown(formatter: Callable[..., str]) -> Callable[[Any], str]:
    """A numbers formatter for the page: a value that is not a number is shown as its text, a missing one as —."""
    def show(value: Any) -> str:
        number = to_decimal(value)
        return _missing(value) if number is None else formatter(number)
    show.__doc__ = formatter.__doc__
    return show


exact, usd, human, ratio, percent = (_shown(numbers.digits), _shown(numbers.usd), _shown(numbers.short),
                                     _shown(numbers.multiple), _shown(numbers.percent))
tokens = _shown(numbers.tokens)


def expansion_text(expansion_ratio: Any, supply_usd: Any) -> str:
    """A missing ratio with supply outstanding means no verifiable backing at all: unbounded."""
    if expansion_ratio is None:
        supply = to_decimal(supply_usd)
        return "unbounded" if supply is not None and supply > 0 else "n/a"
    return ratio(expansion_ratio)


def _severity(value: Any) -> str:
    """A severity for CSS classes: only known words, since the value comes from the document."""
    word = text(value).lower()
    return word if word in SEVERITIES else "info"


def _worst(severities: Iterable[str]) -> str:
    ranked = sorted(SEVERITIES.index(s) for s in severities)
    return SEVERITIES[ranked[0]] if ranked else NO_FLAGS


def _clip(value: str, limit: int) -> str:
    """Shorten for a picture (before escaping, so an entity is never cut); the full text is in a <title>."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def tree(value: Any, depth: int = 0) -> dict[str, Any]:
    """Any JSON-ish value as a tree the `dump` template macro renders; keys sorted, depth bounded."""
    if isinstance(value, Mapping) and depth < MAX_DEPTH:
        return {"kind": "map", "entries": [(key, tree(item, depth + 1)) for key, item in _items(value)]}
    if isinstance(value, list | tuple) and depth < MAX_DEPTH:
        return {"kind": "list", "entries": [tree(item, depth + 1) for item in value]}
    return {"kind": "text", "text": text(value) if value is not None else "null"}


def _table(rows: Iterable[Any], preferred: Sequence[str]) -> dict[str, Any]:
    """Rows of mappings as a table: preferred columns first, then any other keys, sorted."""
    mappings = [_map(row) for row in rows]
    present = {str(key) for row in mappings for key in row}
    columns = [c for c in preferred if c in present] + sorted(present - set(preferred))
    body = [[_cell(row.get(column)) for column in columns] for row in mappings]
    return {"columns": columns, "rows": body}


def _cell(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {text(item)}" for key, item in _items(value))
    if isinstance(value, list | tuple):
        return ", ".join(text(item) for item in value)
    return _missing(value)


# ---------------------------------------------------------------------------------------------
# The report's view model
# ---------------------------------------------------------------------------------------------


_EXPOSURE_MARKET_COLUMNS = ("Chain", "Market", "Lends", "Against", "How it holds the token", "Oracle price",
                            "Supplied", "Borrowed", "Collateral value", "Bad debt")
_EXPOSURE_SUPPLIER_COLUMNS = ("Chain", "Lender", "Kind", "Curator", "Supplied", "At risk", "Loss at look-through")
_YIELD_COLUMNS = ("Issuer", "Claimed APY", "Explained APY", "Benchmark APY", "Earned a year", "Paid a year",
                  "Complete")


def _counterparty_view(counterparties: Any) -> dict[str, Any]:
    """Coverage per issuer and chain, unexplained inflows and money sent where the tool cannot value it."""
    info = _map(counterparties)

    def peers(key: str, sign: int, prefix: str) -> dict[str, Any]:
        rows = [{"issuer": text(p.get("issuer")), "chain": text(p.get("chain")), "contract": text(p.get("address")),
                 "net USD": usd(sign * ((to_decimal(p.get(prefix + "in_usd")) or Decimal(0))
                                        - (to_decimal(p.get(prefix + "out_usd")) or Decimal(0)))),
                 "transfers": text(p.get("transfers")), "first tx": text(p.get("first_tx"))}
                for p in map(_map, _seq(info.get(key)))]
        return _table(rows, ("issuer", "chain", "contract", "net USD", "transfers", "first tx"))

    coverage = _table(({"issuer": text(c.get("issuer")), "chain": text(c.get("chain")),
                        "moved USD": usd(c.get("moved_usd")), "understood USD": usd(c.get("understood_usd")),
                        "coverage": percent(c.get("coverage"))} for c in map(_map, _seq(info.get("coverage")))),
                      ("issuer", "chain", "moved USD", "understood USD", "coverage"))
    windows = ", ".join(f"{chain} blocks {text(_map(w).get('from_block'))}..{text(_map(w).get('to_block'))}"
                        for chain, w in _items(info.get("windows")))
    return {"present": bool(info), "coverage": coverage, "inflows": peers("unexplained_inflows", 1, "hard_"),
            "outflows": peers("unvalued_outflows", -1, ""), "windows": windows}


def _copy_rows(meshes: Any) -> list[dict[str, Any]]:
    """Every OApp of every LayerZero mesh: the adapter's lock at home and each copy's supply, in whole tokens."""
    rows = []
    for mesh in map(_map, _seq(meshes)):
        home = _map(mesh.get("home"))
        for oapp in [home, *map(_map, _seq(mesh.get("remotes")))]:
            decimals = int(text(oapp.get("decimals")) or 0)
            adapter = bool(oapp.get("adapter"))
            amount = to_decimal(oapp.get("locked") if adapter else oapp.get("supply"))
            rows.append({"issuer": text(mesh.get("issuer")), "chain": text(oapp.get("chain")),
                         "OApp": text(oapp.get("address")),
                         "kind": "adapter (locks at home)" if adapter else "copy",
                         "supply": tokens(amount / Decimal(10) ** decimals if amount is not None else None)})
    return rows


def _liquidity_row(entry: Any) -> dict[str, Any]:
    """One priced token's exit liquidity: what sells before each drop (tokens and USD), and what is posted."""
    row = _map(entry)
    exits = {f"sells before -{percent(p.get('drop'))}": f"{tokens(p.get('tokens'))} ({usd(p.get('usd'))})"
             for p in map(_map, _seq(row.get("exit")))}
    twap_text = usd(row.get("twap_usd")) if row.get("twap_usd") is not None else f"none ({text(row.get('twap_why'))})"
    return {"token": text(row.get("token")), "pool": text(row.get("pool")), "price": usd(row.get("price_usd")),
            "TWAP (30 min)": twap_text, **exits, "posted as collateral": tokens(row.get("posted_as_collateral_tokens"))}


def _exposure_rows(exposure: Any, part: str) -> list[dict[str, Any]]:
    """Who lends against the audited token (the audit's exposure map), one row per market or supplier."""
    rows: list[dict[str, Any]] = []
    for chain, per_chain in _items(exposure):
        for entry in _seq(_map(per_chain).get(part)):
            item = _map(entry)
            if part == "markets":
                rows.append({"Chain": chain, "Market": _market_name(item),
                             "Lends": text(item.get("loan_symbol")), "Against": text(item.get("collateral_symbol")),
                             "How it holds the token": text(item.get("relation")),
                             "Oracle price": usd(item.get("oracle_price")) if item.get("oracle_price") is not None
                             else "—",
                             "Supplied": usd(item.get("total_supplied_usd")),
                             "Borrowed": usd(item.get("total_borrowed_usd")),
                             "Collateral value": usd(item.get("collateral_value_usd")),
                             "Bad debt": usd(item.get("bad_debt_usd"))})
            else:
                rows.append({"Chain": chain, "Lender": text(item.get("name")) or text(item.get("address")),
                             "Kind": text(item.get("kind")), "Curator": _missing(item.get("curator")),
                             "Supplied": usd(item.get("supplied_usd")), "At risk": usd(item.get("at_risk_usd")),
                             "Loss at look-through": usd(item.get("look_through_loss_usd"))})
    return rows


def _market_name(market: Mapping[str, Any]) -> str:
    """'morpho_blue 0x61ea…ee7f': the venue and the market's id, short (the full key is in the evidence)."""
    ident = text(market.get("id")) or text(market.get("key")).rsplit(":", 1)[-1]
    short = f"{ident[:6]}…{ident[-4:]}" if len(ident) > 12 else ident
    return " ".join(part for part in (text(market.get("venue")), short) if part)


def _yield_row(breakdown: Any) -> dict[str, Any]:
    item = _map(breakdown)
    return {"Issuer": text(item.get("issuer")), "Claimed APY": percent(item.get("claimed_apy")),
            "Explained APY": percent(item.get("explained_apy")), "Benchmark APY": percent(item.get("benchmark_apy")),
            "Earned a year": usd(item.get("earned_usd_per_year")), "Paid a year": usd(item.get("paid_usd_per_year")),
            "Complete": "yes" if item.get("complete") is True else "no"}


def _stage_views(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    stages = _map(document.get("stages"))
    if not stages and ("backing" in document or "issuers" in document):
        # A bare findings document (one audit): render it as the only stage.
        stages = {"audit": {"pin_time": None, "audit": document, "trace": document.get("trace")}}
    headline = _map(document.get("headline"))
    ordered = sorted(
        ((name, _map(stage)) for name, stage in _items(stages)),
        key=lambda pair: (_pin_time(pair[1]) == "", _pin_time(pair[1]), pair[0]),
    )
    return [_stage_view(index, name, stage, _map(headline.get(name))) for index, (name, stage) in enumerate(ordered)]


def _pin_time(stage: Mapping[str, Any]) -> str:
    if stage.get("pin_time"):
        return text(stage["pin_time"])
    times = [text(_map(pin).get("time")) for _, pin in _items(_map(stage.get("audit")).get("pins"))]
    return max(times, default="")


def _stage_view(index: int, name: str, stage: Mapping[str, Any], stage_headline: Mapping[str, Any]) -> dict[str, Any]:
    uid = f"s{index + 1}"
    audit = _map(stage.get("audit"))
    spec = text(audit.get("spec"))
    backing = _map(audit.get("backing"))
    figures_by_issuer = _map(backing.get("issuers"))
    found_by_issuer = _map(audit.get("issuers"))
    ids = sorted({str(k) for k in figures_by_issuer} | {str(k) for k in found_by_issuer}, key=lambda i: (i != spec, i))
    symbols = {
        issuer: text(_map(found_by_issuer.get(issuer)).get("symbol")
                     or _map(figures_by_issuer.get(issuer)).get("symbol")) or issuer
        for issuer in ids
    }
    flags = [_flag_view(flag) for flag in _seq(audit.get("flags"))]
    symbol = text(audit.get("token")) or symbols.get(spec, "") or spec
    issuers = [
        _issuer_view(uid, position, issuer, symbols[issuer], _map(figures_by_issuer.get(issuer)),
                     _map(found_by_issuer.get(issuer)))
        for position, issuer in enumerate(ids)
    ]
    edges, cyclic_edges, cyclic_nodes = _dependencies(ids, figures_by_issuer)
    nodes = sorted({*ids, *(target for _, target in edges)}, key=lambda i: (i != spec, i))
    notes = _texts(audit.get("notes"))
    notes += [f"backing: {note}" for note in _texts(backing.get("notes"))]
    notes += [f"{issuer['id']}: {note}" for issuer in issuers for note in issuer["notes"]]
    evidence = _map(audit.get("evidence"))
    return {
        "uid": uid,
        "name": name,
        "pin_time": _pin_time(stage),
        "spec": spec,
        "symbol": symbol,
        "audit": audit,
        "headline": _headline(symbol, spec, stage_headline, _map(figures_by_issuer.get(spec)), flags),
        "claims": _claims_table(issuers),
        "chart": backing_chart_svg([_chart_row(issuer) for issuer in issuers], uid),
        "graph": dependency_graph_svg([(node, symbols.get(node, node)) for node in nodes], edges, cyclic_edges,
                                      cyclic_nodes, uid),
        "edges": [{"source": a, "target": b, "cyclic": (a, b) in cyclic_edges} for a, b in edges],
        "cycles": [_cycle_view(cycle) for cycle in _seq(backing.get("cycles"))],
        "converged": backing.get("converged"),
        "issuers": issuers,
        "markets": _markets_view(uid, audit.get("markets")),
        "counterparties": _counterparty_view(audit.get("counterparties")),
        "liquidity": _table(map(_liquidity_row, _seq(audit.get("liquidity"))), ("token", "pool")),
        "copies": _table(_copy_rows(audit.get("layerzero")), ("issuer", "chain", "OApp", "kind", "supply")),
        "exposure_markets": _table(_exposure_rows(audit.get("exposure"), "markets"), _EXPOSURE_MARKET_COLUMNS),
        "exposure_suppliers": _table(_exposure_rows(audit.get("exposure"), "suppliers"), _EXPOSURE_SUPPLIER_COLUMNS),
        "yields": _table((_yield_row(y) for _, y in _items(audit.get("yields"))), _YIELD_COLUMNS),
        "flags": flags,
        "notes": notes,
        "pins": _table((pin for _, pin in _items(audit.get("pins"))), ("chain", "number", "hash", "time", "chain_id")),
        "requests": _table(
            ({"chain": chain, **_map(stats)} for chain, stats in _items(audit.get("requests"))),
            ("chain", "http_requests", "rounds", "reads", "cache_hits", "retries", "calls"),
        ),
        "tool": _tool_text(audit.get("tool")),
        "evidence_digest": text(evidence.get("digest") or audit.get("evidence_digest")),
        "trace": _trace_view(stage.get("trace"), uid) if stage.get("trace") is not None else None,
    }


def _tool_text(tool: Any) -> str:
    info = _map(tool)
    return " ".join(part for part in (text(info.get("name")), text(info.get("version"))) if part) or text(tool)


def _headline(symbol: str, spec: str, stage_headline: Mapping[str, Any], figures: Mapping[str, Any],
              flags: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    supply = stage_headline.get("supply_usd", figures.get("supply_usd"))
    backing = stage_headline.get("verifiable_backing_usd", figures.get("verifiable_backing_usd"))
    expansion_ratio = (stage_headline["expansion_ratio"] if "expansion_ratio" in stage_headline
                       else figures.get("expansion_ratio"))
    expansion = expansion_text(expansion_ratio, supply)
    flag_ids = sorted({text(f) for f in _seq(stage_headline.get("flags"))} | {f["id"] for f in flags})
    severity = _worst(f["severity"] for f in flags)
    if severity == NO_FLAGS and flag_ids:
        severity = "info"  # flags named without details: not clean, severity unknown
    at_most = "at most " if figures.get("bound") == "at most" else ""
    coverage = to_decimal(figures.get("coverage"))
    return {
        "verdict": f"{symbol}: {human(supply)} supply, {at_most}{human(backing)} verifiable backing, {expansion} "
                   "expansion" + (f", {percent(coverage)} of the money moved understood" if coverage is not None
                                  else ""),
        "supply": human(supply),
        "supply_exact": usd(supply),
        "backing": at_most + human(backing),
        "backing_exact": usd(backing),
        "coverage": percent(coverage) if coverage is not None else "",
        "expansion": expansion,
        "severity": severity,
        "flag_ids": flag_ids,
        "spec": spec,
    }


def _flag_view(flag: Any) -> dict[str, Any]:
    info = _map(flag)
    return {
        "id": text(info.get("id")) or "flag",
        "severity": _severity(info.get("severity")),
        "severity_text": text(info.get("severity")) or "unknown",
        "issuer": text(info.get("issuer")),
        "message": text(info.get("message")),
        "evidence": tree(info.get("evidence")) if info.get("evidence") else None,
    }


def _issuer_view(uid: str, index: int, issuer: str, symbol: str, figures: Mapping[str, Any],
                 found: Mapping[str, Any]) -> dict[str, Any]:
    anchor = f"{uid}-i{index + 1}"
    supply = _map(found.get("supply"))
    unverifiable = _map(figures.get("unverifiable"))
    offchain = _seq(found.get("offchain")) or _seq(unverifiable.get("offchain"))
    return {
        "id": issuer,
        "anchor": anchor,
        "symbol": symbol,
        "figures": figures,
        "found": found,
        "supply_tokens": text(supply.get("tokens") or figures.get("supply_tokens")),
        "deployments": _table(map(_deployment_row, _seq(supply.get("deployments"))), (
            "Chain", "Token", "Symbol on chain", "Bridged", "Decimals", "Total supply", "Escrowed")),
        "positions": [_position_view(anchor, n, p) for n, p in enumerate(_seq(found.get("positions")))],
        "offchain": _table(({"What": text(_map(o).get("label")), "USD": usd(_map(o).get("usd"))} for o in offchain),
                           ("What", "USD")),
        "holdings": _table(_seq(unverifiable.get("holdings")), (
            "chain", "account", "venue", "kind", "token_key", "tokens", "amount", "decimals", "reason")),
        "notes": _texts(found.get("notes")) + _texts(figures.get("notes")),
    }


def _deployment_row(deployment: Any) -> dict[str, Any]:
    """One deployment of a token: whole tokens with its symbol (raw amounts stay in the evidence)."""
    item = _map(deployment)
    decimals = to_decimal(item.get("decimals"))
    scale = Decimal(10) ** int(decimals) if decimals is not None and 0 <= decimals <= 77 else None

    def whole(key: str) -> str:
        raw = to_decimal(item.get(key))
        return tokens(raw / scale) if raw is not None and scale is not None else _missing(item.get(key))

    return {"Chain": text(item.get("chain")), "Token": text(item.get("address")),
            "Symbol on chain": text(item.get("symbol_onchain")), "Bridged": "yes" if item.get("bridged") else "no",
            "Decimals": text(item.get("decimals")), "Total supply": whole("total_supply_raw"),
            "Escrowed": whole("escrowed_raw")}


_EVIDENCE_KEYS = ("chain", "block", "contract", "call", "result")


def _position_view(issuer_anchor: str, index: int, position: Any) -> dict[str, Any]:
    info = _map(position)
    details = _map(info.get("details"))
    anchor = f"{issuer_anchor}-p{index + 1}"
    evidence = []
    for n, entry in enumerate(_seq(info.get("evidence"))):
        record = _map(entry)
        evidence.append({
            "anchor": f"{anchor}-e{n + 1}",
            "label": f"{index + 1}.{n + 1}",
            "chain": text(record.get("chain")),
            "block": text(record.get("block")),
            "contract": text(record.get("contract")),
            "call": text(record.get("call")),
            "result": text(record.get("result")),
            "extra": [(k, text(v)) for k, v in _items(record) if k not in _EVIDENCE_KEYS],
        })
    decimals = info.get("decimals")
    return {
        "anchor": anchor,
        "n": index + 1,
        "chain": text(info.get("chain")),
        "holder": text(details.get("label")) or text(info.get("account")),
        "account": text(info.get("account")),
        "venue": text(info.get("venue")),
        "kind": text(info.get("kind")),
        "symbol": text(info.get("symbol")),
        "token": text(info.get("token")),
        "amount": numbers.tokens(info.get("amount"), text(info.get("symbol")), missing="—"),
        "amount_raw": text(info.get("amount_raw")),
        "decimals": text(decimals),
        "market": text(details.get("market")),
        "details": [(k, text(v)) for k, v in _items(details) if k not in ("label", "market")],
        "evidence": evidence,
    }


# Rows of the claimed-vs-verified table: (label, figure key, format). Metrics are rows and issuers are
# columns, which keeps the table narrow on a phone (reports have few issuers, many metrics).
_CLAIM_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Supply", "supply_usd", "usd"),
    ("Claimed assets (the issuer's statement)", "claimed_assets_usd", "usd"),
    ("Backing as claimed (every cycle taken at its word: the fixed point from par)", "claimed_backing_usd", "usd"),
    ("Backing with other issuers' tokens at par (one valuation; the flags' 'if worth par')", "backing_at_par_usd",
     "usd"),
    ("Verifiable backing", "verifiable_backing_usd", "usd"),
    ("Attested off-chain (proof-of-reserve feeds, not verifiable)", "attested_usd", "usd"),
    ("Circular backing", "circular_backing_usd", "usd"),
    ("Cycle gap", "cycle_gap_usd", "usd"),
    ("Gross assets", "gross_assets_usd", "usd"),
    ("Debt", "debt_usd", "usd"),
    ("Backing ratio", "backing_ratio", "percent"),
    ("Coverage (value moved through counterparties the audit understands)", "coverage", "percent"),
    ("Ratio as claimed (every cycle taken at its word)", "claimed_ratio", "percent"),
    ("Expansion ratio", "expansion_ratio", "expansion"),
    ("Leverage", "leverage", "ratio"),
    ("Claimed APY", "claimed_apy", "percent"),
)


def _claims_table(issuers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def figure(issuer: Mapping[str, Any], key: str) -> Any:
        value = issuer["figures"].get(key)
        return issuer["found"].get(key) if value is None else value

    rows = []
    for label, key, kind in _CLAIM_ROWS:
        values = [figure(issuer, key) for issuer in issuers]
        if all(value is None for value in values) and kind != "expansion":
            continue
        if kind == "usd":
            cells = [usd(value) for value in values]
        elif kind == "percent":
            cells = [percent(value) for value in values]
        elif kind == "ratio":
            cells = [ratio(value) for value in values]
        else:
            cells = [expansion_text(value, figure(issuer, "supply_usd")) for value, issuer in zip(
                values, issuers, strict=True)]
        rows.append({"label": label, "cells": cells, "strong": key in ("claimed_assets_usd", "verifiable_backing_usd")})
    unverified = []
    for issuer in issuers:
        claimed = to_decimal(figure(issuer, "claimed_assets_usd"))
        verified = to_decimal(figure(issuer, "verifiable_backing_usd"))
        unverified.append(usd(claimed - verified) if claimed is not None and verified is not None else "—")
    if any(cell != "—" for cell in unverified):
        rows.append({"label": "Claimed but not verifiable", "cells": unverified, "strong": True})
    offchain = [usd(_map(issuer["figures"].get("unverifiable")).get("offchain_usd")) for issuer in issuers]
    rows.append({"label": "Off-chain (claimed, never verified)", "cells": offchain, "strong": False})
    classes = sorted({key for issuer in issuers for key, _ in _items(issuer["figures"].get("verifiable_by_class_usd"))})
    for name in classes:
        cells = [usd(_map(issuer["figures"].get("verifiable_by_class_usd")).get(name)) for issuer in issuers]
        rows.append({"label": f"Gross verifiable assets: {name.replace('_', ' ')}", "cells": cells, "strong": False})
    return {"issuers": [(issuer["id"], issuer["symbol"], issuer["anchor"]) for issuer in issuers], "rows": rows}


def _chart_row(issuer: Mapping[str, Any]) -> dict[str, Any]:
    figures = issuer["figures"]
    unverifiable = _map(figures.get("unverifiable"))
    holdings = _seq(unverifiable.get("holdings"))
    # Unknown holdings are valued at 0 by the engine; count any USD a holding does carry.
    unknown_usd = sum((to_decimal(_map(h).get("usd")) or Decimal(0) for h in holdings), Decimal(0))
    return {
        "label": f"{issuer['symbol']} ({issuer['id']})" if issuer["symbol"] != issuer["id"] else issuer["id"],
        "supply": to_decimal(figures.get("supply_usd")) or Decimal(0),
        "verifiable": to_decimal(figures.get("verifiable_backing_usd")) or Decimal(0),
        "circular": to_decimal(figures.get("cycle_gap_usd")) or Decimal(0),
        "unverifiable": (to_decimal(unverifiable.get("offchain_usd")) or Decimal(0)) + unknown_usd,
        "unknown_holdings": len(holdings),
    }


def _dependencies(ids: Sequence[str], figures_by_issuer: Mapping[str, Any]
                  ) -> tuple[list[tuple[str, str]], set[tuple[str, str]], set[str]]:
    """Edges issuer -> what it depends on; an edge is in a cycle when its target reaches back to its source."""
    edges = sorted({(issuer, text(target)) for issuer in ids
                    for target in _seq(_map(figures_by_issuer.get(issuer)).get("depends_on")) if text(target)})
    successors: dict[str, set[str]] = {}
    for source, target in edges:
        successors.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str) -> bool:
        seen: set[str] = set()
        stack = [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(successors.get(node, ()))
        return False

    cyclic = {(source, target) for source, target in edges if reaches(target, source)}
    return edges, cyclic, {node for edge in cyclic for node in edge}


def _cycle_view(cycle: Any) -> dict[str, Any]:
    info = _map(cycle)
    return {
        "issuers": _texts(info.get("issuers")),
        "cycle_gap": usd(info.get("cycle_gap_usd")),
        "circular_backing": usd(info.get("circular_backing_usd")),
    }


def _markets_view(uid: str, markets: Any) -> list[dict[str, Any]]:
    views = []
    for n, (key, market) in enumerate(_items(markets)):
        info = _map(market)
        details = _map(info.get("details"))
        pair = "/".join(text(details.get(side)) for side in ("collateral_symbol", "loan_symbol") if details.get(side))
        views.append({
            "anchor": f"{uid}-m{n + 1}",
            "key": key,
            "pair": pair,
            "facts": [(k, text(v)) for k, v in _items(info) if k not in ("details", "borrowers")],
            "borrowers": _table(_seq(info.get("borrowers")), ("address", "collateral_raw", "debt_raw")),
            "details": tree(details) if details else None,
        })
    return views


# ---------------------------------------------------------------------------------------------
# Trace (flows, loops, provenance): rendered defensively, the schema may grow
# ---------------------------------------------------------------------------------------------

_TRACE_KEYS = ("loops", "provenance", "notes")
_LOOP_KEYS = ("id", "path", "iterations", "leverage", "total_minted_units", "total_borrowed_units",
              "external_in_units", "issuers", "chains", "markets", "venues", "iteration_count", "minted_by_token",
              "borrowed_by_token")


def _trace_view(trace: Any, uid: str) -> dict[str, Any]:
    if not isinstance(trace, Mapping):
        return {"loops": [], "has_loops_key": False, "provenance": None, "notes": [],
                "other": [("trace", tree(trace))]}
    loops = [_loop_view(loop, uid, n) for n, loop in enumerate(_seq(trace.get("loops")))]
    raw_provenance = trace.get("provenance")
    provenance = _provenance_view(raw_provenance, uid) if isinstance(raw_provenance, Mapping) else None
    return {
        "loops": loops,
        "has_loops_key": "loops" in trace,
        "provenance": provenance,
        "notes": _texts(trace.get("notes")),
        "other": [(key, tree(value)) for key, value in _items(trace) if key not in _TRACE_KEYS or (
            key == "provenance" and provenance is None)],
    }


def _amounts_text(value: Any) -> str:
    """An amount ({units, symbol}), a list of them, or a bare number, as text."""
    if isinstance(value, Mapping):
        units = value.get("units", value.get("amount"))
        amount = tokens(units) if units is not None else ""
        return " ".join(part for part in (amount, text(value.get("symbol"))) if part)
    if isinstance(value, list | tuple):
        return "; ".join(_amounts_text(item) for item in value)
    return "" if value is None else tokens(value)


def _amount_total(record: Mapping[str, Any], units_key: str, key: str) -> Decimal | None:
    if record.get(units_key) is not None:
        return to_decimal(record.get(units_key))
    value = record.get(key)
    if isinstance(value, Mapping):
        return to_decimal(value.get("units", value.get("amount")))
    if isinstance(value, list | tuple):
        parts = [_amount_total(_map(item), "units", "amount") for item in value]
        known = [part for part in parts if part is not None]
        return sum(known, Decimal(0)) if known else None
    return to_decimal(value)


def _loop_view(loop: Any, uid: str, index: int) -> dict[str, Any]:
    info = _map(loop)
    iterations: list[dict[str, Any]] = []
    for n, item in enumerate(_seq(info.get("iterations"))):
        record = _map(item)
        iterations.append({
            "n": text(record.get("index")) or str(n + 1),
            "chain": text(record.get("chain")),
            "block": text(record.get("block")),
            "tx": text(record.get("tx") or record.get("tx_hash")),
            "where": text(record.get("market_name") or record.get("market")),
            "account": text(record.get("account")),
            "borrowed_text": _amounts_text(record.get("borrowed")),
            "minted_text": _amounts_text(record.get("minted")),
            "collateral_text": _amounts_text(record.get("collateral")),
            "borrowed": _amount_total(record, "borrowed_units", "borrowed"),
            "minted": _amount_total(record, "minted_units", "minted"),
        })
    loop_uid = f"{uid}-l{index + 1}"
    return {
        "anchor": loop_uid,
        "id": text(info.get("id")) or f"loop {index + 1}",
        "path": _texts(info.get("path")),
        "leverage": ratio(info.get("leverage")) if info.get("leverage") is not None else "unbounded (no money in)",
        "facts": [(label, value) for label, value in (
            ("money in from outside", tokens(info.get("external_in_units")) if "external_in_units" in info else ""),
            ("borrowed in the loop", tokens(info.get("total_borrowed_units")) if "total_borrowed_units" in info
             else ""),
            ("minted in the loop", tokens(info.get("total_minted_units")) if "total_minted_units" in info else ""),
            ("issuers", ", ".join(text(v) for v in _seq(info.get("issuers")))),
            ("chains", ", ".join(text(v) for v in _seq(info.get("chains")))),
            ("venues", ", ".join(text(v) for v in _seq(info.get("venues")))),
            ("markets", ", ".join(text(v) for v in _seq(info.get("markets")))),
            ("minted by token", _amounts_text(info.get("minted_by_token"))),
            ("borrowed by token", _amounts_text(info.get("borrowed_by_token"))),
        ) if value],
        "iterations": iterations,
        "timeline": loop_timeline_svg(
            [(it["n"], it["borrowed"], it["minted"]) for it in iterations], loop_uid) if iterations else None,
        "other": [(key, tree(value)) for key, value in _items(info) if key not in _LOOP_KEYS],
    }


def _provenance_view(provenance: Mapping[str, Any], uid: str) -> dict[str, Any]:
    totals = _map(provenance.get("totals"))
    bucket_help = {key: text(value) for key, value in _items(provenance.get("buckets"))}
    sources = [(bucket, to_decimal(value)) for bucket, value in _items(totals.get("by_source_units"))]
    mints = []
    for n, item in enumerate(_seq(provenance.get("mints"))):
        record = _map(item)
        shares = [(bucket, percent(share)) for bucket, share in _items(record.get("shares"))
                  if (to_decimal(share) or 0) != 0]
        mints.append({
            "n": str(n + 1),
            "chain": text(record.get("chain")),
            "block": text(record.get("block")),
            "tx": text(record.get("tx") or record.get("tx_hash")),
            "amount": _amounts_text(record),
            "recipient": text(record.get("recipient_name") or record.get("recipient")),
            "recipient_address": text(record.get("recipient")),
            "shares": ", ".join(f"{bucket} {share}" for bucket, share in shares),
            "loop": text(record.get("loop")),
        })
    return {
        "symbol": text(provenance.get("symbol") or provenance.get("issuer")),
        "facts": [(label, value) for label, value in (
            ("mints", text(totals.get("mints"))),
            ("minted", numbers.tokens(totals.get("minted_units"), text(provenance.get("symbol")))
             if totals.get("minted_units") is not None else ""),
            ("paid with borrowed money", percent(totals.get("borrowed_share"))
             if totals.get("borrowed_share") is not None else ""),
            ("paid with outside deposits", percent(totals.get("external_share"))
             if totals.get("external_share") is not None else ""),
        ) if value],
        "sources": [(bucket, tokens(value), bucket_help.get(bucket, "")) for bucket, value in sources],
        "bar": provenance_bar_svg([(bucket, value) for bucket, value in sources if value is not None], uid)
        if any(value for _, value in sources) else None,
        "mints": mints,
        "other": [(key, tree(value)) for key, value in _items(provenance)
                  if key not in ("totals", "buckets", "mints", "symbol", "issuer")],
    }


def _signature_view(signature: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Only the signed fields of the block are shown (anything else in it fails `auditor verify`)."""
    if signature is None:
        return None
    if not isinstance(signature, Mapping):
        raise TypeError("signature must be a mapping or None")
    for key in ("signer", "signature", "digest"):
        if not isinstance(signature.get(key), str) or not signature.get(key):
            raise ValueError(f"signature[{key!r}] must be a non-empty string")
    return {key: text(signature.get(key)) for key in ("signer", "signature", "digest", "evidence_digest", "scheme")}


def _index_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    href = text(entry.get("file"))
    if entry.get("file") is None and entry.get("severity") == FAILED:
        href = ""  # a spec that could not be audited: listed first, with why, and no page to link
    elif not _SAFE_HREF.fullmatch(href) or ".." in href.split("#", 1)[0].split("/"):
        # The site must work from any directory, with no way to point a reader elsewhere.
        raise ValueError(f"index entry file {href!r}: expected a relative link inside the site")
    severity = text(entry.get("severity")).lower()
    rank = -1 if severity == FAILED else SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
    expansion_ratio = entry.get("expansion_ratio")
    number = to_decimal(expansion_ratio)
    # Unbounded first, then the largest ratios; unreadable ratios last.
    if expansion_ratio is None:
        expansion_key: tuple[int, Decimal] = (0, Decimal(0))
    elif number is None:
        expansion_key = (2, Decimal(0))
    else:
        expansion_key = (1, -number)
    return {
        "title": text(entry.get("title")) or href,
        "href": href,
        "token": text(entry.get("token")),
        "verdict": text(entry.get("verdict") or entry.get("verdict_text")),
        "severity": severity if severity in (*SEVERITIES, FAILED) else ("info" if severity else NO_FLAGS),
        "severity_text": severity or "none",
        "severity_rank": rank,
        "expansion": "—" if severity == FAILED else "unbounded" if expansion_ratio is None else ratio(expansion_ratio),
        "expansion_key": expansion_key,
        "generated": text(entry.get("generated")),
        "generated_text": moment(text(entry.get("generated"))),
        "signer": text(entry.get("signer")),
        "stage": text(entry.get("stage")),
        "pin": text(entry.get("pin_time")),
    }


def _descending(value: str) -> tuple[int, ...]:
    """A sort key that orders text from last to first."""
    return tuple(-ord(ch) for ch in value)


def index_entries(document: Mapping[str, Any], file: str, signer: str | None) -> list[dict[str, Any]]:
    """The index rows of one report: one per token and pin, each with its own verdict and its own flags."""
    stages = _stage_views(document)
    entries = []
    for position, stage in enumerate(stages):
        for issuer in stage["issuers"]:
            story = _token_story(issuer["id"], stages[: position + 1])
            own = [f for f in stage["flags"] if f["issuer"] in ("", issuer["id"])]
            worst = story["severity"]
            entries.append({
                "title": text(document.get("report")) or stage["spec"],
                "file": file,
                "token": issuer["symbol"],
                "stage": stage["name"],
                "verdict": story["sentence"],
                "severity": worst if worst != NO_FLAGS else "none",
                "expansion_ratio": _figure(issuer, "expansion_ratio"),
                "supply_usd": _figure(issuer, "supply_usd"),
                "verifiable_backing_usd": _figure(issuer, "verifiable_backing_usd"),
                "flags": f"{len(own)}: " + ", ".join(sorted({f['id'] for f in own})) if own else "0",
                "generated": text(document.get("generated")),
                "pin_time": stage["pin_time"],
                "signer": signer,
            })
    return entries


# ---------------------------------------------------------------------------------------------
# Pictures: hand-written SVG (simple shapes; every text escaped here, returned as Markup only then)
# ---------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    """Coordinates with one decimal: short, and stable across platforms' last-bit float differences."""
    out = f"{value:.1f}"
    if out.endswith(".0"):
        out = out[:-2]
    return "0" if out == "-0" else out


def _svg_text(x: float, y: float, content: str, *, size: int = 13, anchor: str = "start", weight: str = "normal",
              fill: str = TEXT_COLOUR) -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}">{escape(content)}</text>')


def _svg_open(uid: str, width: float, height: float, title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {_n(width)} {_n(height)}" role="img" aria-labelledby="{uid}-title" '
            f'font-family="system-ui, sans-serif"><title id="{uid}-title">{escape(title)}</title>')


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> tuple[list[str], float]:
    """Coloured squares with labels, wrapped at 600 units; returns the parts and the y below them."""
    parts = []
    cursor = x
    for colour, label in items:
        width = 26 + 7 * len(label)
        if cursor + width > 600 and cursor > x:
            cursor, y = x, y + 20
        parts.append(f'<rect x="{_n(cursor)}" y="{_n(y - 10)}" width="12" height="12" fill="{colour}"/>')
        parts.append(_svg_text(cursor + 17, y, label, size=12))
        cursor += width
    return parts, y + 16


def backing_chart_svg(rows: Sequence[Mapping[str, Any]], uid: str) -> Markup:
    """Per issuer: a supply bar over a stacked bar of verifiable, circular (cycle gap) and unverifiable backing."""
    left, bar_max, width = 72.0, 450.0, 600.0
    parts, y = _legend(0, 14, [(SUPPLY_COLOUR, "supply"), (VERIFIABLE_COLOUR, "verifiable"),
                               (CIRCULAR_COLOUR, "circular (cycle gap)"),
                               (UNVERIFIABLE_COLOUR, "unverifiable (off-chain, unknown)")])
    largest = max((max(r["supply"], r["verifiable"] + r["circular"] + r["unverifiable"]) for r in rows),
                  default=Decimal(0))
    scale = bar_max / float(largest) if largest > 0 else 0.0
    for row in rows:
        top = y + 8
        parts.append(_svg_text(0, top + 14, _clip(row["label"], 60), size=14, weight="bold"))
        supply_width = max(float(row["supply"]), 0.0) * scale
        parts.append(_svg_text(left - 6, top + 36, "supply", size=12, anchor="end", fill=MUTED_COLOUR))
        parts.append(f'<rect x="{_n(left)}" y="{_n(top + 24)}" width="{_n(supply_width)}" height="16" '
                     f'fill="{SUPPLY_COLOUR}"><title>supply {escape(usd(row["supply"]))}</title></rect>')
        parts.append(_svg_text(left + supply_width + 6, top + 36, human(row["supply"]), size=12))
        parts.append(_svg_text(left - 6, top + 60, "backing", size=12, anchor="end", fill=MUTED_COLOUR))
        cursor = left
        for key, colour, label in (("verifiable", VERIFIABLE_COLOUR, "verifiable"),
                                   ("circular", CIRCULAR_COLOUR, "circular (cycle gap)"),
                                   ("unverifiable", UNVERIFIABLE_COLOUR, "unverifiable")):
            segment = max(float(row[key]), 0.0) * scale
            if segment > 0:
                parts.append(f'<rect x="{_n(cursor)}" y="{_n(top + 48)}" width="{_n(segment)}" height="16" '
                             f'fill="{colour}"><title>{escape(label)} {escape(usd(row[key]))}</title></rect>')
            cursor += segment
        if cursor == left:  # nothing at all: a hairline says "zero" rather than "missing"
            parts.append(f'<rect x="{_n(left)}" y="{_n(top + 48)}" width="1.5" height="16" fill="{CYCLE_COLOUR}"/>')
        total = row["verifiable"] + row["circular"] + row["unverifiable"]
        parts.append(_svg_text(cursor + 6, top + 60, f"{human(total)} in all", size=12))
        summary = (f"verifiable {human(row['verifiable'])} · circular {human(row['circular'])} · "
                   f"unverifiable {human(row['unverifiable'])}")
        if row["unknown_holdings"]:
            summary += f" · {row['unknown_holdings']} unknown holding(s) valued at 0"
        parts.append(_svg_text(left, top + 82, summary, size=12, fill=MUTED_COLOUR))
        y = top + 92
    title = "Supply against verifiable, circular and unverifiable backing, per issuer"
    return _trusted(_svg_open(f"{uid}-chart", width, y + 4, title) + "".join(parts) + "</svg>")


def line_chart_svg(labels: Sequence[str], lines: Sequence[tuple[str, str, Sequence[Decimal | None]]], uid: str,
                   title: str, axis: Callable[[Decimal], str], *, cap: Decimal | None = None,
                   marks: Sequence[tuple[int, str]] = ()) -> Markup:
    """Values over a series of points (evenly spaced): one polyline per line, a missing value (None) breaks it.
    Values above `cap` (infinity: unbounded) are drawn at the cap with a ring. `marks`: dashed verticals."""
    width, left, top, bottom, right = 640.0, 64.0, 40.0, 190.0, 36.0
    parts, _ = _legend(0, 14, [(colour, name) for name, colour, _ in lines])
    values = [v for _, _, series in lines for v in series if v is not None and v.is_finite()]
    largest = max(values, default=Decimal(0))
    if cap is not None:
        largest = min(largest, cap) if values else cap
        if any(v is not None and v > cap for _, _, series in lines for v in series):
            largest = cap
    scale = (bottom - top) / float(largest) if largest > 0 else 0.0
    count = len(labels)
    step = (width - left - right) / max(count - 1, 1)

    def x_of(i: int) -> float:
        return left + i * step

    for fraction in (0, 0.5, 1):
        y = bottom - (bottom - top) * fraction
        parts.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(width)}" y2="{_n(y)}" stroke="#e1e4e8"/>')
        parts.append(_svg_text(left - 6, y + 4, axis(largest * Decimal(str(fraction))), size=11, anchor="end",
                               fill=MUTED_COLOUR))
    for i, text_ in marks:
        parts.append(f'<line x1="{_n(x_of(i))}" y1="{_n(top - 6)}" x2="{_n(x_of(i))}" y2="{_n(bottom)}" '
                     f'stroke="{CYCLE_COLOUR}" stroke-dasharray="4 3"><title>{escape(text_)}</title></line>')
    for _name, colour, series in lines:
        run: list[str] = []
        for i, value in enumerate([*series, None]):
            capped = cap is not None and value is not None and value > cap
            if value is None and not capped:
                if len(run) > 1:
                    parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                                 'stroke-width="2.5"/>')
                run = []
                continue
            shown = float(cap if capped and cap is not None else value if value is not None else 0)
            point = f"{_n(x_of(i))},{_n(bottom - shown * scale)}"
            run.append(point)
            if capped:
                parts.append(f'<circle cx="{_n(x_of(i))}" cy="{_n(bottom - shown * scale)}" r="4" fill="#fff" '
                             f'stroke="{colour}" stroke-width="2"><title>{escape(labels[i])}: unbounded or above '
                             f'{escape(axis(cap or Decimal(0)))}</title></circle>')
            if count == 1:
                parts.append(f'<circle cx="{_n(x_of(i))}" cy="{_n(bottom - shown * scale)}" r="3" fill="{colour}"/>')
    tick_every = max(1, math.ceil(count / 6))
    last_tick = (count - 1) // tick_every * tick_every
    for i, label in enumerate(labels):
        # The last point gets its own label unless it would sit on top of the previous tick's.
        if i % tick_every == 0 or (i == count - 1 and (i - last_tick) * step >= 70):
            parts.append(_svg_text(x_of(i), bottom + 16, day(label), size=11, anchor="middle", fill=MUTED_COLOUR))
    return _trusted(_svg_open(uid, width, bottom + 24, title) + "".join(parts) + "</svg>")


def dependency_graph_svg(nodes: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str]],
                         cyclic_edges: set[tuple[str, str]], cyclic_nodes: set[str], uid: str) -> Markup:
    """Issuers on a circle, an arrow from each issuer to what it depends on; cycle edges and nodes in red."""
    count = len(nodes)
    node_radius = 30.0
    radius = 0.0 if count <= 1 else max(135.0, count * (node_radius + 14) / math.pi)
    width = max(600.0, 2 * radius + 260)
    # Odd counts start at the top; even counts are turned half a step, so two issuers sit side by side.
    start = -math.pi / 2 if count % 2 else -math.pi / 2 + math.pi / max(count, 1)
    angles = [start + 2 * math.pi * i / count for i in range(count)]
    # Crop to the nodes actually drawn (two issuers side by side need no circle's height); room above for
    # self-loops and below for labels and the legend.
    top = min((radius * math.sin(a) for a in angles), default=0.0)
    bottom = max((radius * math.sin(a) for a in angles), default=0.0)
    cx, cy = width / 2, node_radius + 40 - top
    height = cy + bottom + node_radius + 66
    where = {node: (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
             for (node, _), angle in zip(nodes, angles, strict=True)}
    parts = [
        "<defs>",
        *(f'<marker id="{uid}-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
          f'orient="auto"><path d="M0,0L10,5L0,10z" fill="{colour}"/></marker>'
          for name, colour in (("arrow", EDGE_COLOUR), ("arrow-cycle", CYCLE_COLOUR))),
        "</defs>",
    ]
    for source, target in edges:
        if source not in where or target not in where:
            continue
        cyclic = (source, target) in cyclic_edges
        colour = CYCLE_COLOUR if cyclic else EDGE_COLOUR
        label = escape(f"{source} depends on {target}" + (" (in a cycle)" if cyclic else ""))
        (ax, ay), (bx, by) = where[source], where[target]
        if source == target:
            # A self-loop drawn outward from the centre, so it does not cross other edges.
            ox, oy = ax - cx, ay - cy
            length = math.hypot(ox, oy) or 1.0
            ox, oy = (ox / length, oy / length) if (ox or oy) else (0.0, -1.0)
            parts.append(f'<circle cx="{_n(ax + ox * (node_radius + 9))}" cy="{_n(ay + oy * (node_radius + 9))}" '
                         f'r="14" fill="none" stroke="{colour}" stroke-width="2.5"><title>{label}</title></circle>')
            continue
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy) or 1.0
        ux, uy = dx / length, dy / length
        # Bend every edge to its own left: A->B and B->A then sit side by side instead of on top of each other.
        mx, my = (ax + bx) / 2 - uy * 30, (ay + by) / 2 + ux * 30
        sx, sy = ax + ux * node_radius - uy * 8, ay + uy * node_radius + ux * 8
        ex, ey = bx - ux * (node_radius + 2) - uy * 8, by - uy * (node_radius + 2) + ux * 8
        marker = "arrow-cycle" if cyclic else "arrow"
        parts.append(f'<path d="M{_n(sx)},{_n(sy)} Q{_n(mx)},{_n(my)} {_n(ex)},{_n(ey)}" fill="none" '
                     f'stroke="{colour}" stroke-width="{"2.5" if cyclic else "1.6"}" marker-end="url(#{uid}-{marker})">'
                     f"<title>{label}</title></path>")
    for node, symbol in nodes:
        x, y = where[node]
        in_cycle = node in cyclic_nodes
        stroke = (f'stroke="{CYCLE_COLOUR}" stroke-width="3"' if in_cycle
                  else f'stroke="{EDGE_COLOUR}" stroke-width="1.5"')
        parts.append(f'<g><title>{escape(node)} ({escape(symbol)}){" — in a cycle" if in_cycle else ""}</title>'
                     f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(node_radius)}" fill="{NODE_FILL}" {stroke}/>'
                     + _svg_text(x, y + 5, _clip(symbol, 8), size=13, anchor="middle", weight="bold")
                     + _svg_text(x, y + node_radius + 17, _clip(node, 24), size=12, anchor="middle", fill=MUTED_COLOUR)
                     + "</g>")
    if not nodes:
        parts.append(_svg_text(width / 2, cy, "no issuers", anchor="middle", fill=MUTED_COLOUR))
    legend, _ = _legend(8, height - 12, [(EDGE_COLOUR, "depends on (holds, or lends against)"),
                                         (CYCLE_COLOUR, "part of a cycle")])
    title = "Issuer dependency graph; edges in cycles are red"
    return _trusted(_svg_open(f"{uid}-graph", width, height, title) + "".join(parts + legend) + "</svg>")


def loop_timeline_svg(points: Sequence[tuple[str, Decimal | None, Decimal | None]], uid: str) -> Markup:
    """Per loop iteration: borrowed and minted amounts as bars, in time order."""
    width, top, base = 600.0, 40.0, 200.0
    parts, _ = _legend(0, 14, [(BORROWED_COLOUR, "borrowed"), (MINTED_COLOUR, "minted")])
    values = [v for _, borrowed, minted in points for v in (borrowed, minted) if v is not None]
    largest = max(values, default=Decimal(0))
    scale = (base - top) / float(largest) if largest > 0 else 0.0
    slot = (width - 8) / max(len(points), 1)
    bar = slot * 0.38
    label_every = max(1, math.ceil(len(points) / 30))  # keep iteration numbers legible with many iterations
    for i, (label, borrowed, minted) in enumerate(points):
        x = 4 + i * slot + slot * 0.12
        for offset, value, colour, name in ((0.0, borrowed, BORROWED_COLOUR, "borrowed"),
                                            (bar, minted, MINTED_COLOUR, "minted")):
            if value is None:
                continue
            height = max(float(value), 0.0) * scale
            tooltip = escape(f"iteration {label}: {name} {exact(value)}")
            parts.append(f'<rect x="{_n(x + offset)}" y="{_n(base - height)}" width="{_n(bar)}" height="{_n(height)}" '
                         f'fill="{colour}"><title>{tooltip}</title></rect>')
        if minted is not None and len(points) <= 12:
            parts.append(_svg_text(x + bar * 1.5, base - max(float(minted), 0.0) * scale - 4, human(minted), size=11,
                                   anchor="middle"))
        if i % label_every == 0:
            parts.append(_svg_text(x + bar, base + 16, _clip(label, 6), size=11, anchor="middle", fill=MUTED_COLOUR))
    parts.append(f'<line x1="0" y1="{_n(base)}" x2="{_n(width)}" y2="{_n(base)}" stroke="{MUTED_COLOUR}"/>')
    parts.append(_svg_text(width, 14, f"max {human(largest)}", size=11, anchor="end", fill=MUTED_COLOUR))
    title = "Loop timeline: borrowed and minted per iteration"
    return _trusted(_svg_open(f"{uid}-timeline", width, base + 24, title) + "".join(parts) + "</svg>")


def provenance_bar_svg(sources: Sequence[tuple[str, Decimal]], uid: str) -> Markup:
    """One bar split by where the money that paid for mints came from."""
    width = 600.0
    total = sum((max(value, Decimal(0)) for _, value in sources), Decimal(0))
    parts = []
    cursor = 0.0
    for bucket, value in sources:
        segment = float(max(value, Decimal(0)) / total) * width if total > 0 else 0.0
        if segment > 0:
            colour = BUCKET_COLOURS.get(bucket, OTHER_BUCKET_COLOUR)
            parts.append(f'<rect x="{_n(cursor)}" y="0" width="{_n(segment)}" height="28" fill="{colour}">'
                         f"<title>{escape(bucket)} {escape(exact(value))}</title></rect>")
        cursor += segment
    shares = [(BUCKET_COLOURS.get(bucket, OTHER_BUCKET_COLOUR),
               f"{bucket} {percent(max(value, Decimal(0)) / total) if total > 0 else '0%'}")
              for bucket, value in sources]
    legend, bottom = _legend(0, 50, shares)
    title = "Where the money that paid for mints came from"
    return _trusted(_svg_open(f"{uid}-provenance", width, bottom, title) + "".join(parts + legend) + "</svg>")


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------


def _trusted(html: str) -> Markup:
    """Mark as safe only markup this module wrote itself, with every piece of document text already escaped."""
    return Markup(html)  # noqa: S704 - the one place markup is trusted; callers escape all document text


@cache
def _env() -> Environment:
    # autoescape=True for every template, whatever its name: nothing from a document is ever trusted.
    env = Environment(
        loader=PackageLoader("auditor.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(usd=usd, human=human, exact=exact, ratio=ratio, percent=percent, tokens=tokens)
    return env


@cache
def _css() -> Markup:
    css = (TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")
    if "</" in css:
        raise ValueError("report.css must not contain '</' (it is inlined in a <style> element)")
    return _trusted(css)  # our own file, not document data


# ---------------------------------------------------------------------------------------------
# The report across its pins: each section once, the figures per pin side by side
# ---------------------------------------------------------------------------------------------

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?")

# Key figures of each token, in reading order: (label, figure key, kind).
_KEY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Supply", "supply_usd", "usd"),
    ("Verifiable backing", "verifiable_backing_usd", "usd"),
    ("Backed (verifiable / supply)", "backing_ratio", "percent"),
    ("Expansion (supply / verifiable)", "expansion_ratio", "expansion"),
    ("Claimed assets", "claimed_assets_usd", "usd"),
    ("Debt", "debt_usd", "usd"),
    ("Coverage of money moved", "coverage", "percent"),
)


def day(pin_time: str) -> str:
    """'2025-11-05T12:00:00Z' -> '5 Nov 2025' (any other text unchanged)."""
    match = _DATE.match(pin_time)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return pin_time
    return f"{int(match.group(3))} {_MONTHS[int(match.group(2)) - 1]} {match.group(1)}"


def moment(pin_time: str) -> str:
    """'2025-11-05T12:00:00Z' -> '5 Nov 2025 12:00 UTC'."""
    match = _DATE.match(pin_time)
    if not match or match.group(4) is None:
        return day(pin_time)
    return f"{day(pin_time)} {match.group(4)}:{match.group(5)} UTC"


def money(value: Any) -> str:
    """USD for a headline: $14.5M, $1.9M, $0."""
    number = to_decimal(value)
    if number is None:
        return _missing(value)
    text_ = numbers.short(abs(number))
    return f"{'-' if number < 0 else ''}${text_}"


def _figure(issuer: Mapping[str, Any], key: str) -> Any:
    value = issuer["figures"].get(key)
    return issuer["found"].get(key) if value is None else value


def _backed_ratio(issuer: Mapping[str, Any]) -> Decimal | None:
    ratio_ = to_decimal(_figure(issuer, "backing_ratio"))
    if ratio_ is not None:
        return ratio_
    supply = to_decimal(_figure(issuer, "supply_usd"))
    backing = to_decimal(_figure(issuer, "verifiable_backing_usd"))
    if supply is None or backing is None or supply <= 0:
        return None
    with decimal.localcontext(numbers.context()):
        return backing / supply


def _state(issuer: Mapping[str, Any] | None) -> str:
    """'backed', 'not backed' or 'unknown' (no figures, or a bound the audit could not close)."""
    if issuer is None:
        return "unknown"
    ratio_ = _backed_ratio(issuer)
    if ratio_ is None:
        return "unknown"
    if ratio_ >= 1:
        return "unknown" if issuer["figures"].get("bound") == "at most" else "backed"
    return "not backed"


def _key_cell(issuer: Mapping[str, Any] | None, key: str, kind: str) -> str:
    if issuer is None:
        return "—"
    value = _figure(issuer, key)
    if kind == "usd":
        bound = "at most " if key == "verifiable_backing_usd" and issuer["figures"].get("bound") == "at most" else ""
        return bound + usd(value) if value is not None else "—"
    if kind == "percent":
        return percent(_backed_ratio(issuer) if key == "backing_ratio" else value)
    return expansion_text(value, _figure(issuer, "supply_usd"))


def _change(first: Mapping[str, Any] | None, last: Mapping[str, Any] | None, key: str, kind: str) -> str:
    """How a figure moved from the first pin to the last: a signed USD amount, points, or 'a -> b'."""
    if first is None or last is None:
        return "—"
    if kind == "usd":
        a, b = to_decimal(_figure(first, key)), to_decimal(_figure(last, key))
        if a is None or b is None:
            return "—"
        delta = b - a
        return "no change" if delta == 0 else ("+" if delta > 0 else "") + money(delta)
    before, after = _key_cell(first, key, kind), _key_cell(last, key, kind)
    return "no change" if before == after else f"{before} → {after}"


def _since(states: Sequence[str], whens: Sequence[str]) -> str:
    """Since when the last state holds: the first pin of the run of equal states that ends at the last pin."""
    start = len(states) - 1
    while start > 0 and states[start - 1] == states[-1]:
        start -= 1
    if len(states) == 1:
        return f"at {whens[0]}"
    if start == 0:
        return f"at every pin audited ({whens[0]} to {whens[-1]})"
    return f"since {whens[start]} ({states[start - 1]} on {whens[start - 1]})"


def _token_story(token: str, stages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    per_stage = [next((i for i in stage["issuers"] if i["id"] == token), None) for stage in stages]
    last = per_stage[-1]
    assert last is not None  # tokens come from the last pin
    states = [_state(issuer) for issuer in per_stage]
    whens = [day(stage["pin_time"]) or stage["name"] for stage in stages]
    supply, backing = _figure(last, "supply_usd"), _figure(last, "verifiable_backing_usd")
    bound = "at most " if last["figures"].get("bound") == "at most" else ""
    expansion = expansion_text(_figure(last, "expansion_ratio"), supply)
    share = _backed_ratio(last)
    symbol = last["symbol"]
    if states[-1] == "backed":
        sentence = (f"{symbol} is backed: {money(backing)} of verifiable backing for {money(supply)} of supply "
                    f"({percent(share)})")
    elif states[-1] == "not backed":
        sentence = (f"{symbol} is not backed: {bound}{money(backing)} of verifiable backing for {money(supply)} of "
                    f"supply ({percent(share)} backed, {expansion} expansion)")
    else:
        sentence = (f"{symbol}: backing not established: {bound}{money(backing)} of verifiable backing for "
                    f"{money(supply)} of supply")
    flags = [f for f in stages[-1]["flags"] if f["issuer"] in ("", token)]
    return {
        "id": token,
        "symbol": symbol,
        "anchor": last["anchor"],
        "sentence": f"{sentence}, {_since(states, whens)}.",
        "severity": _worst(f["severity"] for f in flags),
        "flag_ids": sorted({f["id"] for f in flags}),
        "rows": [{"label": label,
                  "cells": [_key_cell(issuer, key, kind) for issuer in per_stage],
                  "change": _change(per_stage[0], last, key, kind),
                  "strong": key in ("supply_usd", "verifiable_backing_usd")}
                 for label, key, kind in _KEY_ROWS
                 if any(issuer is not None and _figure(issuer, key) is not None for issuer in per_stage)
                 or key in ("backing_ratio", "expansion_ratio")],
    }


def _flag_help() -> dict[str, str]:
    from auditor.flags import all_detectors  # the flags' own one-line explanations

    return {detector.ID: detector.HELP for detector in all_detectors()}


def _flag_story(stages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each flag once per issuer, worst first: its worst severity at each pin, and every finding of the latest pin
    that raised it (one flag may fire on several markets), each with its evidence."""
    help_ = _flag_help()
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for position, stage in enumerate(stages):
        for flag in stage["flags"]:
            entry = seen.setdefault((flag["id"], flag["issuer"]), {
                "id": flag["id"], "issuer": flag["issuer"], "help": help_.get(flag["id"], ""),
                "at": [[] for _ in stages], "findings": [[] for _ in stages], "first": position})
            entry["at"][position].append(flag["severity"])
            entry["findings"][position].append(flag)
            entry["latest"] = position
    flags = []
    for entry in seen.values():
        latest = entry["latest"]
        worst = _worst(entry["at"][latest])
        flags.append({**entry, "severity": worst, "severity_text": worst,
                      "at": [_worst(severities) if severities else "—" for severities in entry["at"]],
                      "findings": entry["findings"][latest], "cleared": latest != len(stages) - 1,
                      "since": stages[entry["first"]]["name"]})
    flags.sort(key=lambda f: (f["cleared"], SEVERITIES.index(f["severity"]) if f["severity"] in SEVERITIES
                              else len(SEVERITIES), f["id"], f["issuer"]))
    for n, flag in enumerate(flags):
        flag["anchor"] = f"flag-{n + 1}"
    return flags


def _exposure_story(stages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Lenders against the token: totals per pin side by side, then the latest pin's markets and suppliers."""
    rows: list[dict[str, Any]] = []
    for label, key, kind in (("Markets lending against it", "markets", "count"), ("Suppliers", "suppliers", "count"),
                             ("Supplied", "supplied_usd", "usd"), ("Borrowed", "borrowed_usd", "usd"),
                             ("Collateral at look-through value", "collateral_value_usd", "usd"),
                             ("Bad debt at look-through value", "bad_debt_usd", "usd")):
        cells: list[str] = []
        for stage in stages:
            totals = [_map(_map(per_chain).get("totals")) for _, per_chain in _items(stage["audit"].get("exposure"))]
            values = [to_decimal(t.get(key)) for t in totals if t.get(key) is not None]
            if not values:
                cells.append("—")
                continue
            total = sum((v for v in values if v is not None), Decimal(0))
            cells.append(str(int(total)) if kind == "count" else usd(total))
        rows.append({"label": label, "cells": cells, "strong": key == "bad_debt_usd"})
    present = any(cell != "—" for row in rows for cell in row["cells"])
    return {"present": present, "rows": rows}


EXPANSION_CAP = Decimal(20)  # the expansion chart's top: higher ratios and unbounded are drawn there, ringed


def _history_view(history: Any) -> dict[str, Any] | None:
    """The history section: supply and backing, expansion and coverage over the points, and the crossings."""
    info = _map(history)
    rows = [_map(row) for row in _seq(info.get("series"))]
    if len(rows) < 2:
        return None
    labels = [text(row.get("point")) for row in rows]

    def series(key: str) -> list[Decimal | None]:
        return [to_decimal(row.get(key)) for row in rows]

    expansion: list[Decimal | None] = []
    for row in rows:
        ratio_ = to_decimal(row.get("expansion_ratio"))
        supply = to_decimal(row.get("supply_usd"))
        unbounded = ratio_ is None and supply is not None and supply > 0
        expansion.append(Decimal("Infinity") if unbounded else ratio_)
    index = {label: i for i, label in enumerate(labels)}
    limits = _map(info.get("policy"))
    checks, flags, marks = [], [], []
    for name, crossing in _items(info.get("crossings")):
        first = text(_map(crossing).get("first"))
        kind, _, what = name.partition(":")
        limit = limits.get(what.replace("-", "_"))
        row = {"First crossed": moment(first),
               "Last held": moment(text(_map(crossing).get("last_clear"))) or "never (already at the first point)"}
        if kind == "check":
            checks.append({"Policy limit": what + (f" {text(limit)}" if limit is not None else ""), **row})
            if first in index:
                marks.append((index[first], f"{what} first crossed at {first}"))
        else:
            flags.append({"Flag": what, **row})
    marks = sorted(set(marks))
    first_fail = min((i for i, _ in marks), default=None)
    incomplete = [label for label, row in zip(labels, rows, strict=True) if row.get("complete") is not True]
    return {
        "points": len(rows),
        "source": text(info.get("points")),
        "from": moment(labels[0]),
        "to": moment(labels[-1]),
        "money": line_chart_svg(labels, [("supply", SUPPLY_COLOUR, series("supply_usd")),
                                         ("verifiable backing", VERIFIABLE_COLOUR, series("verifiable_backing_usd"))],
                                "history-money", "Supply and verifiable backing over time", money, marks=marks),
        "expansion": line_chart_svg(labels, [("expansion (supply / verifiable backing)", CIRCULAR_COLOUR, expansion)],
                                    "history-expansion", "Expansion over time (ringed: unbounded or above 20x)",
                                    numbers.multiple, cap=EXPANSION_CAP, marks=marks),
        "coverage": line_chart_svg(labels, [("coverage of money moved", MINTED_COLOUR, series("coverage"))],
                                   "history-coverage", "Coverage over time", numbers.percent),
        "checks": _table(checks, ("Policy limit", "First crossed", "Last held")),
        "flags": _table(flags, ("Flag", "First crossed", "Last held")),
        "first_failure": {"when": moment(labels[first_fail]), "what": sorted(
            text_.split(" first crossed")[0] for i, text_ in marks if i == first_fail)} if first_fail is not None
        else None,
        "incomplete": incomplete,
    }


def _story(stages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The cross-pin view the page is read in: verdicts, key figures, flags, exposure, pins and requests."""
    if not stages:
        return {"tokens": [], "pins": [], "flags": [], "exposure": {"present": False, "rows": []}, "notes": [],
                "loop_counts": "", "pins_table": _table([], ()), "requests": _table([], ())}
    last = stages[-1]
    tokens_ = [_token_story(issuer["id"], stages) for issuer in last["issuers"]]
    for token in tokens_:
        token["headline"] = last["headline"]["verdict"] if token["id"] == last["spec"] else ""
    counts = [len(stage["trace"]["loops"]) if stage["trace"] is not None else None for stage in stages]
    loop_counts = ""
    if len(stages) > 1 and any(count is not None for count in counts):
        loop_counts = "Loops found per pin: " + ", ".join(
            f"{stage['name']} {'not traced' if count is None else count}" for stage, count in zip(
                stages, counts, strict=True)) + f". Shown: the loops at {last['name']}."
    notes = list(dict.fromkeys(note for stage in stages for note in stage["notes"]))
    pins_rows = [{"Pin": stage["name"], "Chain": text(_map(pin).get("chain")) or chain,
                  "Block": text(_map(pin).get("number")), "Time": text(_map(pin).get("time")),
                  "Hash": text(_map(pin).get("hash")), "Chain id": text(_map(pin).get("chain_id"))}
                 for stage in stages for chain, pin in _items(stage["audit"].get("pins"))]
    request_rows = [{"Pin": stage["name"], "Chain": chain,
                     **{label: text(_map(stats).get(key)) for label, key in (
                         ("HTTP requests", "http_requests"), ("Rounds", "rounds"), ("Reads", "reads"),
                         ("Cache hits", "cache_hits"), ("Retries", "retries")) if _map(stats).get(key) is not None},
                     **({"Calls": _cell(_map(stats).get("calls"))} if _map(stats).get("calls") is not None else {})}
                    for stage in stages for chain, stats in _items(stage["audit"].get("requests"))]
    return {
        "tokens": tokens_,
        "pins": [{"name": stage["name"], "when": moment(stage["pin_time"]) or "time unknown"} for stage in stages],
        "flags": _flag_story(stages),
        "exposure": _exposure_story(stages),
        "notes": notes,
        "loop_counts": loop_counts,
        "pins_table": _table(pins_rows, ("Pin", "Chain", "Block", "Time", "Hash", "Chain id")),
        "requests": _table(request_rows, ("Pin", "Chain", "HTTP requests", "Rounds", "Reads", "Cache hits",
                                          "Retries", "Calls")),
    }
