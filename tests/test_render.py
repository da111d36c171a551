"""HTML report and index rendering: self-contained, deterministic, verifiable, and inert with hostile chain data."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.report.render import (
    decode_findings_block,
    embed_findings_json,
    extract_findings_json,
    extract_signature,
    human,
    percent,
    ratio,
    render_index,
    render_report,
    usd,
)

HOSTILE_SYMBOL = "<script>alert(1)</script>"
HOSTILE_LABEL = '"><img src=x onerror=alert(1)>'
CLOSER = "</script><script>alert(2)</script><!--<script>"
SIGNER = "0x1234567890AbcdEF1234567890aBcdef12345678"
SIGNATURE = {
    "signer": SIGNER,
    "signature": "0x" + "ab" * 65,
    "digest": "sha256:" + "0" * 64,
    "evidence_digest": "sha256:" + "1" * 64,
}


def _evidence(call: str, result: str) -> dict[str, Any]:
    return {"chain": "plume", "block": 71, "contract": "0x" + "01" * 20, "call": call, "result": result}


def _document(symbol: str = "xUSD", label: str = "looping wallet", name: str = "reconstruction") -> dict[str, Any]:
    """A compact report document shaped like the demo's: two issuers in a cycle, flags, a traced loop."""
    audit = {
        "tool": {"name": "reserve-auditor", "version": "0.1.0"},
        "spec": "stream-xusd",
        "token": symbol,
        "pins": {
            "plume": {"chain": "plume", "number": 71, "hash": "0x" + "aa" * 32, "time": "2025-10-28T12:00:00Z",
                      "chain_id": 98866},
            "ethereum": {"chain": "ethereum", "number": 37, "hash": "0x" + "bb" * 32, "time": "2025-10-28T12:00:00Z",
                         "chain_id": 1},
        },
        "issuers": {
            "stream-xusd": {
                "symbol": symbol,
                "supply": {"tokens": "14500000", "deployments": [
                    {"chain": "plume", "address": "0x" + "02" * 20, "decimals": 6, "total_supply_raw": "14500000000000",
                     "escrowed_raw": "0", "bridged": False, "symbol_onchain": symbol}]},
                "positions": [
                    {"chain": "plume", "account": "0x" + "03" * 20, "venue": "erc20", "kind": "balance",
                     "token": "0x" + "04" * 20, "symbol": "USDC", "amount": "1896364.66", "amount_raw": "1896364660000",
                     "decimals": 6, "details": {"label": label, "role": "hard"},
                     "evidence": [_evidence("USDC.balanceOf(wallet)", "1896364660000"),
                                  _evidence("USDC.decimals()", "6")]},
                    {"chain": "plume", "account": "0x" + "03" * 20, "venue": "morpho_blue", "kind": "collateral",
                     "token": "0x" + "02" * 20, "symbol": symbol, "amount": "12600000", "amount_raw": "12600000000000",
                     "decimals": 6, "details": {"label": label, "market": "plume:morpho_blue:0xmarket"},
                     "evidence": [_evidence("Morpho.position(id, wallet)", "(0, 0, 12600000000000)")]},
                ],
                "offchain": [{"label": f"fund manager {label}", "usd": "8000000"}],
                "notes": [f"note about {label}"],
            },
            "elixir-deusd": {"symbol": "deUSD", "supply": {"tokens": "2660000", "deployments": []}, "positions": [],
                             "offchain": [], "notes": []},
        },
        "markets": {"plume:morpho_blue:0xmarket": {
            "chain": "plume", "venue": "morpho_blue", "oracle_price_raw": "1260000000000000000000000000000000000",
            "lltv": "0.915", "borrowers": [{"address": "0x" + "03" * 20, "collateral_raw": "1", "debt_raw": "2"}],
            "details": {"collateral_symbol": symbol, "loan_symbol": "USDC"}}},
        "backing": {
            "issuers": {
                "stream-xusd": {
                    "symbol": symbol, "supply_usd": "14500000.00", "verifiable_backing_usd": "1896364.66",
                    "backing_ratio": "0.130784", "expansion_ratio": "7.646209", "circular_backing_usd": "0.00",
                    "cycle_gap_usd": "1876939.65", "debt_usd": "14745122.51", "gross_assets_usd": "16641487.18",
                    "claimed_assets_usd": "14500000.00", "claimed_backing_usd": "3773304.31",
                    "verifiable_by_class_usd": {"hard": "14741487.18", "issued": "1900000.00",
                                                "lending_supply": "0.00"},
                    "unverifiable": {"offchain_usd": "8000000.00", "offchain": [{"label": label, "usd": "8000000.00"}],
                                     "holdings": [{"chain": "plume", "token_key": "plume:0x05", "tokens": "5",
                                                   "reason": f"unknown token {symbol}"}]},
                    "depends_on": ["elixir-deusd", "stream-xusd"],
                },
                "elixir-deusd": {
                    "symbol": "deUSD", "supply_usd": "2660000.00", "verifiable_backing_usd": "2660000.00",
                    "backing_ratio": "1", "expansion_ratio": "1", "cycle_gap_usd": "0.00",
                    "unverifiable": {"offchain_usd": "0.00", "offchain": [], "holdings": []},
                    "depends_on": ["stream-xusd"],
                },
            },
            "cycles": [{"issuers": ["elixir-deusd", "stream-xusd"], "cycle_gap_usd": "1876939.65",
                        "circular_backing_usd": "0.00"}],
            "converged": True,
            "notes": [],
        },
        "flags": [
            {"id": "under-backed", "severity": "high", "issuer": "stream-xusd",
             "message": f"{symbol} is 0.130784 backed ({label})",
             "evidence": {"backing_ratio": "0.130784", "label": label, "nested": {"list": [1, 2.5, None, True]}}},
            {"id": "unsustainable-yield", "severity": "medium", "issuer": "stream-xusd", "message": "18% claimed",
             "evidence": {"claimed_apy": "0.18"}},
        ],
        "notes": [f"audit note {symbol}"],
        "requests": {"plume": {"http_requests": 19, "reads": 42, "cache_hits": 0, "retries": 0,
                               "calls": {"eth_call": 10, "eth_getLogs": 5}}},
        "evidence": {"digest": "sha256:" + "2" * 64},
    }
    trace = {
        "spec": "stream-xusd",
        "loops": [{
            "id": "loop-1",
            "path": [f"borrow USDC from {label}", f"mint {symbol}", "post as collateral"],
            "leverage": "8.631578947368421053",
            "external_in_units": "1900000",
            "total_minted_units": "16400000",
            "total_borrowed_units": "14741487.178599",
            "iterations": [
                {"index": 1, "chain": "plume", "block": 36, "tx": "0x" + "c1" * 32, "market_name": f"{symbol}/USDC",
                 "account": label, "borrowed": {"units": "1634000", "symbol": "USDC"},
                 "minted": [{"units": "1634000", "symbol": symbol}], "minted_units": "1634000",
                 "collateral": [{"units": "1900000", "symbol": "deUSD"}]},
                {"index": 2, "chain": "plume", "block": 41, "tx": "0x" + "c2" * 32,
                 "borrowed": {"units": "1770602.4", "symbol": "USDC"},
                 "minted": [{"units": "1770602.4", "symbol": symbol}]},
            ],
            "mints": [{"block": 36, "units": "1634000"}],
            "novel_field": {"from": "another engineer"},
        }],
        "provenance": {
            "issuer": "stream-xusd", "symbol": symbol,
            "buckets": {"borrowed": "borrowed from a lending market", "external": "outside deposits"},
            "totals": {"mints": 2, "minted_units": "14500000", "borrowed_share": "0.868965",
                       "external_share": "0.131034",
                       "by_source_units": {"borrowed": "12600000", "external": "1900000"}},
            "mints": [{"chain": "plume", "block": 11, "tx": "0x" + "d1" * 32, "units": "633333.333334",
                       "symbol": symbol, "recipient": "0x" + "06" * 20, "recipient_name": label,
                       "shares": {"borrowed": "0", "external": "1"}, "loop": "loop-1"}],
        },
        "events": {"total": 64, "by_kind": {"mint": 24, "borrow": 7}},
        "notes": [f"trace note {label}"],
    }
    return {
        "report": name,
        "generated": "2026-01-02T03:04:05Z",
        "parameters": {"values": {"borrow_apr": 0.06, "label": label}},
        "pins": {"late-october": {"plume": 71, "ethereum": 37}},
        "stages": {"late-october": {"pin_time": "2025-10-28T12:00:00Z", "audit": audit, "trace": trace}},
        "headline": {"late-october": {"supply_usd": "14500000.00", "verifiable_backing_usd": "1896364.66",
                                      "expansion_ratio": "7.646209",
                                      "flags": ["under-backed", "unsustainable-yield"]}},
        "method_notes": [f"method note {label}"],
    }


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _render(document: dict[str, Any], signature: dict[str, Any] | None = None) -> str:
    return render_report(document, findings_json=_canonical(document), signature=signature)


class _Page(HTMLParser):
    """Every start tag with its attributes, the text of script elements, and every element id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.ids: set[str] = set()
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data

    def attributes(self, name: str) -> list[str]:
        return [str(attrs[name]) for _, attrs in self.tags if attrs.get(name) is not None]


def _assert_inert(html: str) -> _Page:
    """No markup that runs code or fetches anything; script elements only as JSON data (findings, signature)."""
    page = _Page(html)
    tags = [tag for tag, _ in page.tags]
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts[0] == {"type": "application/octet-stream", "id": "findings", "data-encoding": "zlib+base64"}
    assert scripts[1:] in ([], [{"type": "application/json", "id": "signature"}])
    assert html.count("<script") == len(scripts) == html.count("</script")
    for data in page.scripts:
        assert "<" not in data
    json.loads(decode_findings_block(page.scripts[0]))
    for data in page.scripts[1:]:
        json.loads(data)
    for forbidden in ("img", "iframe", "object", "embed", "link", "base", "form", "audio", "video", "image", "use",
                      "foreignobject", "a:link"):
        assert forbidden not in tags, forbidden
    assert "<img" not in html.lower()
    for tag, attrs in page.tags:
        for name in attrs:
            assert not name.lower().startswith("on"), (tag, name)
        assert "src" not in attrs and "xlink:href" not in attrs, tag
    for href in page.attributes("href"):
        assert not re.match(r"(?i)\s*(https?:|//|javascript:|data:)", href), href
    assert not re.search(r"(?i)(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    csp = [attrs.get("content") for tag, attrs in page.tags
           if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "content-security-policy"]
    assert len(csp) == 1 and csp[0] is not None
    assert "default-src 'none'" in csp[0]
    assert "script-src" not in csp[0]  # default-src 'none' covers scripts: none may run
    return page


# ---------------------------------------------------------------------------------------------
# The report page
# ---------------------------------------------------------------------------------------------


def test_report_is_deterministic_and_independent_of_dict_order() -> None:
    document = _document()
    html = _render(document)
    assert _render(copy.deepcopy(document)) == html

    def reversed_order(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reversed_order(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_order(item) for item in value]
        return value

    # A verifier re-renders from the parsed canonical JSON: key order differs, bytes must not.
    assert render_report(reversed_order(json.loads(_canonical(document))), findings_json=_canonical(document),
                         signature=None) == html
    assert _render(document, SIGNATURE) == _render(copy.deepcopy(document), dict(SIGNATURE))


def test_findings_json_is_embedded_and_extractable() -> None:
    document = _document()
    findings_json = _canonical(document)
    html = render_report(document, findings_json=findings_json, signature=SIGNATURE)
    page = _assert_inert(html)
    assert json.loads(decode_findings_block(page.scripts[0])) == json.loads(findings_json)
    assert extract_findings_json(html) == findings_json


def test_report_is_self_contained_phone_and_print_ready() -> None:
    html = _render(_document())
    page = _assert_inert(html)
    viewport = [attrs.get("content") for tag, attrs in page.tags if tag == "meta" and attrs.get("name") == "viewport"]
    assert viewport == ["width=device-width, initial-scale=1"]
    assert "@media print" in html and "@media (max-width" in html
    assert "<style>" in html and "<svg" in html
    assert "@import" not in html and "url(" not in html.replace("url(#", "")


def test_every_internal_link_has_a_target() -> None:
    html = _render(_document(), SIGNATURE)
    page = _Page(html)
    for href in page.attributes("href"):
        assert href.startswith("#")
        assert href[1:] in page.ids, href
    # Each evidence read is its own anchor, linked from its position's row.
    assert {"s1-i1-p1-e1", "s1-i1-p1-e2", "s1-i1-p2-e1"} <= page.ids
    for marker in re.findall(r'marker-end="url\(#([^)]+)\)"', html):
        assert marker in page.ids


def test_sections_show_the_figures() -> None:
    html = _render(_document())
    assert "xUSD: 14.5M supply, 1.9M verifiable backing, 7.6x expansion" in html
    assert "verdict sev-high" in html  # the worst flag colours the headline
    assert "$14,500,000.00" in html and "$1,896,364.66" in html  # exact figures in tables
    assert "Claimed but not verifiable" in html and "$12,603,635.34" in html
    assert "USDC.balanceOf(wallet)" in html and "1896364660000" in html  # evidence: call and result
    assert "0x" + "aa" * 32 in html and "98866" in html  # pins: hash and chain id
    assert "eth_getLogs 5" in html  # request counts
    assert "reserve-auditor 0.1.0" in html  # tool version
    assert "sha256:" + "2" * 64 in html  # evidence bundle digest
    assert "elixir-deusd ↔ stream-xusd" in html  # the cycle
    assert html.count('stroke="#c4161c"') >= 3  # cycle edges and the self-loop in red
    assert "loop-1: leverage 8.6x, 2 iteration(s)" in html
    assert "s1-l1-timeline-title" in html and "s1-provenance-title" in html
    assert "novel_field" in html and "another engineer" in html  # unknown trace keys still shown
    assert "method note looping wallet" in html and "trace note looping wallet" in html


def test_unsigned_reports_say_so_loudly() -> None:
    html = _render(_document())
    assert "UNSIGNED REPORT" in html and 'class="banner unsigned"' in html
    assert "(UNSIGNED)</title>" in html


def test_signed_reports_show_the_signer_and_digest() -> None:
    html = _render(_document(), {**SIGNATURE, "note": "throwaway demo key"})
    assert "UNSIGNED" not in html
    assert SIGNER in html and SIGNATURE["digest"] in html and SIGNATURE["signature"] in html
    assert SIGNATURE["evidence_digest"] in html and "throwaway demo key" in html
    page = _assert_inert(html)
    assert len(page.scripts) == 2
    assert extract_signature(html) == {**SIGNATURE, "note": "throwaway demo key"}
    assert extract_signature(_render(_document())) is None


def test_signature_extra_fields_are_shown_and_round_trip() -> None:
    signature = {**SIGNATURE, "evidence_digest": None, "scheme": "EIP-191 personal_sign over the digest text"}
    document = _document()
    html = _render(document, signature)
    assert "EIP-191 personal_sign over the digest text" in html
    # The verifier's path: parse the embedded blocks, render again, compare bytes.
    assert render_report(json.loads(extract_findings_json(html)), findings_json=extract_findings_json(html),
                         signature=extract_signature(html)) == html


def test_rendering_ignores_how_numbers_are_spelled() -> None:
    """Canonical findings turn floats into decimal strings; the page must not change when re-rendered from them."""
    document = _document()
    document["parameters"]["values"].update(tiny=1e-05, huge=1e16, apr=0.06, exact=Decimal("1E+3"), pair=(1, 2))
    document["stages"]["late-october"]["audit"]["backing"]["issuers"]["stream-xusd"]["supply_usd"] = 14500000.0

    def normalised(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(key): normalised(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [normalised(item) for item in value]
        if isinstance(value, float):
            return format(Decimal(repr(value)), "f")
        if isinstance(value, Decimal):
            return format(value, "f")
        return value

    canonical = _canonical(normalised(document))
    html = render_report(document, findings_json=canonical, signature=None)
    assert render_report(json.loads(canonical), findings_json=canonical, signature=None) == html
    assert "0.00001" in html and "10000000000000000" in html and "1000" in html


@pytest.mark.parametrize("broken", [
    {"signature": "0x00", "digest": "sha256:00"},
    {"signer": "", "signature": "0x00", "digest": "sha256:00"},
    {"signer": SIGNER, "signature": 5, "digest": "sha256:00"},
])
def test_malformed_signatures_are_rejected(broken: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="signature"):
        _render(_document(), broken)


def test_hostile_chain_strings_render_inert() -> None:
    document = _document(symbol=HOSTILE_SYMBOL, label=HOSTILE_LABEL, name=HOSTILE_LABEL + CLOSER)
    document["stages"]["late-october"]["audit"]["flags"][0]["id"] = HOSTILE_SYMBOL
    document["stages"]["late-october"]["audit"]["flags"][0]["severity"] = '" onmouseover="alert(1)'
    findings_json = _canonical(document)
    assert "</script>" in findings_json and "<!--" in findings_json
    html = render_report(document, findings_json=findings_json, signature={**SIGNATURE, "note": HOSTILE_LABEL})
    page = _assert_inert(html)
    assert "onmouseover" not in "".join(attrs.get("class") or "" for _, attrs in page.tags)
    # The text is shown, escaped, in the page and in the SVG labels.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<text" in html and "&lt;script&gt;" in re.sub(r"(?s).*?(<svg.*</svg>).*", r"\1", html)
    # The data blocks still hold exactly the findings and signature and cannot be closed from inside.
    assert json.loads(decode_findings_block(page.scripts[0])) == document
    assert extract_findings_json(html) == findings_json
    assert extract_signature(html) == {**SIGNATURE, "note": HOSTILE_LABEL}


def test_hostile_strings_in_the_index_render_inert() -> None:
    entry = {"title": HOSTILE_LABEL, "file": "x.html", "token": HOSTILE_SYMBOL, "verdict": CLOSER,
             "severity": HOSTILE_LABEL, "expansion_ratio": HOSTILE_SYMBOL, "generated": HOSTILE_LABEL,
             "signer": HOSTILE_LABEL}
    html = render_index([entry])
    page = _Page(html)
    assert [tag for tag, _ in page.tags].count("script") == 0 and "<script" not in html and "<img" not in html
    assert all(not name.startswith("on") for _, attrs in page.tags for name in attrs)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("field", ["symbol", "label"])
def test_hostile_strings_never_reach_attributes_unescaped(field: str) -> None:
    payload = "x' onload='alert(1)" if field == "symbol" else 'x" onload="alert(1)'
    document = _document(symbol=payload) if field == "symbol" else _document(label=payload)
    _assert_inert(_render(document))


def test_markup_objects_in_a_document_are_still_escaped() -> None:
    from markupsafe import Markup

    document = _document(symbol=Markup("<marquee>bold</marquee>"), label=Markup("<blink>x</blink>"))
    html = render_report(document, findings_json=_canonical(document), signature=None)
    assert "<marquee" not in html and "<blink" not in html and "&lt;marquee&gt;bold&lt;/marquee&gt;" in html


def test_bidi_controls_cannot_reorder_the_figures() -> None:
    html = _render(_document(symbol="x\u202eDSU", label="\u2067wallet\u2069"))
    assert not any(ch in html.split('<script type="application/json"')[0] for ch in "\u202e\u2067\u2069")
    assert "x\\u202eDSU: 14.5M supply" in html and "\\u2067wallet\\u2069" in html


def test_trace_of_unknown_shape_renders_without_failing() -> None:
    document = _document()
    stage = document["stages"]["late-october"]
    stage["trace"] = {"loops": [{"iterations": [{}, {"minted": "5"}, "odd"], "path": "not a list"}, "odd"],
                      "provenance": "not a mapping", "events": [1, {"a": None}], "notes": "not a list"}
    html = _render(document)
    _assert_inert(html)
    assert "not a mapping" in html and "loop 1: leverage unbounded (no money in), 3 iteration(s)" in html
    assert "<li>not a list</li>" in html  # a lone path or note is shown, not dropped
    stage["trace"] = ["a list", {"deep": [[[[[[[[[[[[[[["bottom"]]]]]]]]]]]]]]]}]
    assert "bottom" in _render(document)
    stage["trace"] = {"loops": []}
    assert "No recursive borrow loop found" in _render(document)


def test_unbounded_expansion_and_missing_figures() -> None:
    document = _document()
    headline = document["headline"]["late-october"]
    headline.update(verifiable_backing_usd="0.00", expansion_ratio=None, supply_usd="19058877.81")
    assert "xUSD: 19.1M supply, 0 verifiable backing, unbounded expansion" in _render(document)
    del document["headline"]
    document["stages"]["late-october"]["audit"]["backing"]["issuers"]["stream-xusd"] = {}
    document["stages"]["late-october"]["audit"]["flags"] = []
    html = _render(document)
    assert "xUSD: — supply, — verifiable backing, n/a expansion" in html and "verdict sev-none" in html


def test_stages_are_ordered_by_pin_time() -> None:
    document = _document()
    late = copy.deepcopy(document["stages"]["late-october"])
    late["pin_time"] = "2025-11-05T12:00:00Z"
    document["stages"]["after-loss"] = late  # sorts before late-october by name, after it by time
    html = _render(document)
    # The pins' columns run in time order, and the figures shown for one pin are the last one's.
    header = re.search(r"<h2 id=\"figures-title\">.*?</thead>", html, re.S)
    assert header is not None and header.group(0).index("late-october") < header.group(0).index("after-loss")
    assert "at after-loss" in html


def test_a_bare_findings_document_renders_as_one_stage() -> None:
    findings = _document()["stages"]["late-october"]["audit"]
    html = render_report(findings, findings_json=_canonical(findings), signature=None)
    _assert_inert(html)
    assert "xUSD: 14.5M supply, 1.9M verifiable backing, 7.6x expansion" in html


def test_invalid_findings_json_is_rejected() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        render_report(_document(), findings_json="{not json", signature=None)
    with pytest.raises(ValueError, match="does not inflate"):
        render_report(_document(), findings_json=_canonical(_document()), signature=None,
                      findings_block=str(embed_findings_json('{"a":1}')))


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('<>/!-\\u003cs"script& \n\u2028x')),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
))
def test_embedding_round_trips_exactly(value: Any) -> None:
    findings_json = json.dumps(value, sort_keys=True, separators=(",", ":"))
    embedded = str(embed_findings_json(findings_json))
    assert re.fullmatch(r"[A-Za-z0-9+/=]*", embedded)  # base64: nothing in it can end the block
    assert json.loads(decode_findings_block(embedded)) == value
    page = f'<script type="application/octet-stream" id="findings" data-encoding="zlib+base64">{embedded}</script>'
    assert extract_findings_json(page) == findings_json


@pytest.mark.parametrize("block", ["not base64!", "aGVsbG8=", "", "eJzLSM3JyQcABiwCFQ=="[:-4]])
def test_a_block_that_is_not_deflated_base64_is_refused(block: str) -> None:
    with pytest.raises(ValueError, match="findings block"):
        decode_findings_block(block)


def test_a_findings_block_that_inflates_without_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import auditor.report.render as render

    monkeypatch.setattr(render, "MAX_FINDINGS_BYTES", 1000)
    with pytest.raises(ValueError, match="more than 1000 bytes"):
        decode_findings_block(str(embed_findings_json(json.dumps("x" * 5000))))


def test_human_and_exact_number_formats() -> None:
    assert human("14500000.00") == "14.5M" and human("1896364.66") == "1.9M" and human("19058877.81") == "19.1M"
    assert human("999960") == "1M" and human(999.96) == "1K" and human("123600000") == "124M"
    assert human("0.00") == "0" and human("-2500") == "-2.5K" and human(12) == "12" and human("0.234") == "0.23"
    assert human(None) == "—" and human("1e999999999") == "1e999999999" and human("abc") == "abc"
    assert usd("14500000.00") == "$14,500,000.00" and usd("-1.5") == "-$1.50" and usd(None) == "—"
    assert ratio("7.646209") == "7.6x" and ratio("123.5") == "124x" and percent("0.130784") == "13.1%"


# ---------------------------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------------------------


def _entries() -> list[dict[str, Any]]:
    return [
        {"title": "Stream xUSD", "file": "stream-xusd.html", "token": "xUSD",
         "verdict": "xUSD: 14.5M supply, 1.9M verifiable backing, 7.6x expansion", "severity": "high",
         "expansion_ratio": "7.646209", "generated": "2026-01-01T00:00:00Z", "signer": None},
        {"title": "Elixir deUSD", "file": "elixir-deusd.html", "token": "deUSD", "verdict": "deUSD: unbounded",
         "severity": "medium", "expansion_ratio": None, "generated": "2026-01-03T00:00:00Z", "signer": SIGNER,
         "supply_usd": "7600000"},
        {"title": "Clean", "file": "sub/clean.html", "token": "aUSD", "verdict": "aUSD: 1.0x", "severity": "",
         "expansion_ratio": "1", "generated": "2026-01-02T00:00:00Z", "signer": SIGNER},
    ]


def _view_tokens(html: str, key: str) -> list[str]:
    section = re.search(rf'<section class="view[^"]*" id="by-{key}".*?</section>', html, re.S)
    assert section is not None
    return re.findall(r'<td><a href="[^"]+">([^<]+)</a>', section.group(0))


def test_index_is_static_sorted_and_deterministic() -> None:
    html = render_index(_entries())
    assert html == render_index(list(reversed(_entries()))) == render_index(copy.deepcopy(_entries()))
    page = _Page(html)
    assert not [tag for tag, _ in page.tags if tag == "script"] and "<script" not in html
    assert "default-src 'none'" in html and 'name="viewport"' in html
    assert set(page.attributes("href")) == {"#by-token", "#by-expansion", "#by-generated", "#by-severity",
                                            "stream-xusd.html", "elixir-deusd.html", "sub/clean.html"}
    for href in page.attributes("href"):
        assert not href.startswith("#") or href[1:] in page.ids
    assert _view_tokens(html, "severity") == ["xUSD", "deUSD", "aUSD"]
    assert _view_tokens(html, "token") == ["aUSD", "deUSD", "xUSD"]
    assert _view_tokens(html, "expansion") == ["deUSD", "xUSD", "aUSD"]  # unbounded first
    assert _view_tokens(html, "generated") == ["deUSD", "aUSD", "xUSD"]
    # The default order is the last view, so the CSS sibling rule can hide it when another is targeted.
    assert html.rindex('id="by-severity"') > html.rindex('id="by-generated"')
    assert 'class="view default" id="by-severity"' in html
    assert "unsigned" in html and SIGNER in html and "7.6M" in html  # optional supply column


@pytest.mark.parametrize("link", ["https://evil.example/x.html", "//evil.example/x", "javascript:alert(1)",
                                  "../outside.html", "/abs.html", "a b.html", "", "x.html\" onclick=\"y"])
def test_index_rejects_links_leaving_the_site(link: str) -> None:
    with pytest.raises(ValueError, match="relative link"):
        render_index([{**_entries()[0], "file": link}])


def test_index_rejects_duplicate_links() -> None:
    with pytest.raises(ValueError, match="distinct"):
        render_index([_entries()[0], dict(_entries()[0])])


def test_empty_index() -> None:
    html = render_index([])
    assert "No reports published yet." in html and "0 row(s)" in html


def test_a_history_renders_its_charts_crossings_and_incomplete_points() -> None:
    document = _document()
    rows = []
    for day, (supply, backing) in enumerate([("100", "100"), ("200", "100"), (None, None), ("400", "0")]):
        complete = supply is not None
        rows.append({"point": f"2025-10-0{day + 1}T12:00:00Z", "pins": {}, "complete": complete,
                     "why_incomplete": None if complete else "ethereum: header not found",
                     "supply_usd": supply, "verifiable_backing_usd": backing,
                     "expansion_ratio": None if not complete or backing == "0" else str(int(supply) // int(backing)),
                     "coverage": "1" if complete else None, "flags": [], "failed_checks": []})
    document["history"] = {"points": "from 2025-10-01T12:00:00Z every 1d", "policy": {"max_expansion": "1.1"},
                           "series": rows, "complete": False,
                           "crossings": {"check:max-expansion": {"first": "2025-10-02T12:00:00Z",
                                                                 "last_clear": "2025-10-01T12:00:00Z"},
                                         "flag:under-backed": {"first": "2025-10-04T12:00:00Z", "last_clear": None}}}
    html = _render(document)
    _assert_inert(html)
    section = html[html.index('id="history-title"'):html.index('id="why-title"')]
    assert "4 audits from 1 Oct 2025 12:00 UTC to 4 Oct 2025 12:00 UTC" in section
    assert "max-expansion 1.1" in section and "2 Oct 2025 12:00 UTC" in section
    assert "first failed at 2 Oct 2025 12:00 UTC" in section
    assert "could not be audited completely and date nothing: 2025-10-03T12:00:00Z" in section
    assert section.count("<svg") == 3 and "<circle" in section  # the unbounded last point is ringed at the cap
    assert "under-backed" in section  # flags in their own (collapsed) table
    assert html == _render(json.loads(json.dumps(document)))  # deterministic
