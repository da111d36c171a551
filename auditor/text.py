"""Text from inputs and chains made inert for every output: terminals, HTML, XML and workflow annotations."""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates, line/paragraph separators and lone surrogates:
# each can rewrite what a reader sees (ANSI/OSC sequences, reordered text, forged lines) or break a format.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: object) -> str:
    """One line of printable text: unsafe characters spelled as escapes (\\x1b, \\u202e), never interpreted."""
    return _UNSAFE.sub(_escaped, str(text))


def is_inert(text: str) -> bool:
    return _UNSAFE.search(text) is None and all(unicodedata.category(c) != "Cs" for c in text)
