"""Text from inputs and chains made inert for every output: terminals, HTML, XML and workflow annotations."""

from __future__ import annotations

import re

# A terminal line under any locale: everything but printable ASCII.
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
# A page or an XML document, which carry Unicode: C0 and C1 controls, DEL, bidi embeddings/overrides/isolates,
# line/paragraph separators and lone surrogates, each of which can rewrite what a reader sees or break a format.
_UNSAFE_IN_MARKUP = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def inert(text: object, limit: int | None = None) -> str:
    """Untrusted text made safe to print on one terminal line, under any locale or output encoding.

    Everything but printable ASCII is escaped (\\x1b, \\u202e, \\ud800): control and C1 characters
    cannot start escape sequences (ANSI colours, OSC 8 links), line and paragraph separators cannot
    split the line, bidi overrides cannot reorder it, and lone surrogates cannot fail the encoder.
    Idempotent, so a message may pass through it twice. `limit` cuts long values (before escaping).
    """
    value = str(text)
    if limit is not None and len(value) > limit:
        value = value[:limit] + "..."
    return _NOT_PRINTABLE_ASCII.sub(_escape, value)


def inert_markup(text: object) -> str:
    """Untrusted text for HTML and XML (escaped for markup separately): Unicode kept, controls spelled out."""
    return _UNSAFE_IN_MARKUP.sub(_escape, str(text))
