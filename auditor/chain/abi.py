"""Encode calls and decode returns without web3 contract objects.

Static argument and return types (uint<N>, int<N>, address, bool, bytes<N> and tuples of them: nearly every
read the auditor makes) go through a codec compiled once per type tuple, which lays the 32-byte words out by
hand: 9-40x less CPU than eth-abi (benchmarks/codec.md), with eth-abi's validation and exception types
(tests/test_codec.py uses eth-abi as the oracle). Anything else (string, bytes, arrays, tuples holding them)
falls back to eth-abi.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any, TypeAlias

from eth_abi.abi import decode, encode
from eth_abi.exceptions import EncodingTypeError, InsufficientDataBytes, NonEmptyPaddingBytes, ValueOutOfBounds
from eth_hash.auto import keccak


def split_types(text: str) -> list[str]:
    """Split 'address,(address,uint256),bytes32[]' at top-level commas."""
    out: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        out.append(current.strip())
    return out


@lru_cache(maxsize=1024)
def parse_signature(signature: str) -> tuple[bytes, tuple[str, ...]]:
    """'balanceOf(address)' -> (4-byte selector, argument types)."""
    name, _, rest = signature.partition("(")
    if not name or not rest.endswith(")"):
        raise ValueError(f"not a function signature: {signature!r}")
    types = tuple(split_types(rest[:-1]))
    canonical = f"{name}({','.join(types)})"
    return bytes(keccak(canonical.encode()))[:4], types


def encode_call(signature: str, *args: Any) -> bytes:
    selector, types, encoder = _call_encoder(signature)
    if not types:
        return selector
    if encoder is not None:
        return selector + encoder(args)
    return selector + encode(list(types), list(args))


@lru_cache(maxsize=1024)
def _call_encoder(signature: str) -> tuple[bytes, tuple[str, ...], Callable[[Sequence[Any]], bytes] | None]:
    selector, types = parse_signature(signature)
    return selector, types, _static_encoder(types)


def decode_values(types: tuple[str, ...], data: bytes) -> tuple[Any, ...]:
    """Decode return data; addresses come back EIP-55 checksummed, like everywhere else in the program.

    Raises what eth-abi raises on the same input (InsufficientDataBytes for short data, NonEmptyPaddingBytes for
    a word out of its type's range); bytes after the last word are ignored, as eth-abi ignores them.
    """
    if type(data) is bytes:
        decoder = _static_decoder(types if type(types) is tuple else tuple(types))
        if decoder is not None:
            return decoder(data)
    return tuple(_checksummed(kind, value) for kind, value in zip(types, decode(list(types), data), strict=True))


def _checksummed(kind: str, value: Any) -> Any:
    if kind == "address":
        return checksum_address(bytes.fromhex(value[2:]))
    if kind.endswith("]"):
        inner = kind[: kind.rindex("[")]
        return tuple(_checksummed(inner, v) for v in value)
    if kind.startswith("("):
        return tuple(_checksummed(k, v) for k, v in zip(split_types(kind[1:-1]), value, strict=True))
    return value


def event_topic(signature: str) -> str:
    """topic0 of an event, e.g. 'Transfer(address,address,uint256)'."""
    return "0x" + bytes(keccak(signature.encode())).hex()


def address_topic(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


class EventDecoder:
    """Decode logs of one event, given as 'Transfer(address indexed from,address indexed to,uint256 value)'.

    Addresses come out EIP-55 checksummed, or with checksum=False as the node spelled them in lower case: a scan
    that shows a person only some of what it decodes checksums those alone (`to_checksum`, ~2-5 us each)."""

    def __init__(self, declaration: str, checksum: bool = True) -> None:
        name, _, rest = declaration.partition("(")
        params = [p.split() for p in split_types(rest.rstrip(")"))]
        self.name = name
        self.fields = [(words[-1], words[0], "indexed" in words[1:-1]) for words in params]
        self.signature = f"{name}({','.join(kind for _n, kind, _i in self.fields)})"
        self.topic = event_topic(self.signature)
        self._data_types = [kind for _n, kind, indexed in self.fields if not indexed]
        self._checksum = checksum
        # Most events (Transfer, Morpho's, Aave's) have only static fields: each is one 32-byte word at a known
        # place, read by a precompiled extractor, ~10x faster than eth-abi's general decoder on a 100k-log scan.
        self._topics = 1 + sum(1 for _n, _k, indexed in self.fields if indexed)
        self._data_size = 32 * len(self._data_types)
        self._extract = _extractors(self.fields, checksum)
        self._columns = _column_readers(self.fields, checksum) if self._extract is not None else None
        self._words = _word_places(self.fields, checksum) if self._extract is not None else None

    def decode(self, topics: Sequence[str], data: bytes) -> dict[str, Any]:
        """Field name -> value; raises ValueError when the log is not this event or is malformed."""
        if not topics or topics[0] != self.topic:
            raise ValueError(f"not a {self.name} log")
        if self._extract is not None:
            if len(topics) != self._topics or len(data) < self._data_size:
                raise ValueError(f"malformed {self.name} log: {len(topics)} topics, {len(data)} bytes of data")
            try:
                return self._extract(topics, data)
            except ValueError as exc:
                raise ValueError(f"malformed {self.name} log: {exc}") from None
        try:
            unindexed = iter(decode(self._data_types, data)) if self._data_types else iter(())
            indexed = iter(topics[1:])
            out: dict[str, Any] = {}
            for field_name, kind, is_indexed in self.fields:
                value = decode([kind], bytes.fromhex(next(indexed)[2:]))[0] if is_indexed else next(unindexed)
                if kind == "address":
                    value = checksum_address(bytes.fromhex(value[2:])) if self._checksum else value.lower()
                out[field_name] = value
        except Exception as exc:
            raise ValueError(f"malformed {self.name} log: {type(exc).__name__}") from None
        return out

    def decode_columns(
        self, topics: Sequence[Sequence[str]], data: Sequence[str]
    ) -> tuple[dict[str, list[Any]], list[int]]:
        """A window's logs decoded a field at a time (topics as the node sent them, data as "0x" and hex digits, both
        checked by the transport): field name -> one value per log of this event, and the positions of those logs.
        A log that is not this event, or that `decode` finds malformed, is left out. When every log of the window
        is this event (a scan for it) each field is read for all logs in C, with no Python call per log."""
        if self._columns is not None and (not topics or (
                set(map(len, topics)) == {self._topics} and set(map(_FIRST, topics)) == {self.topic}
                and min(map(len, data)) >= 2 + 2 * self._data_size)):
            return {name: read(topics, data) for name, read in self._columns}, list(range(len(topics)))
        kept, rows = [], []
        for position, (log_topics, log_data) in enumerate(zip(topics, data, strict=True)):
            try:
                rows.append(self.decode(log_topics, bytes.fromhex(log_data[2:])))
            except ValueError:
                continue
            kept.append(position)
        return {name: [row[name] for row in rows] for name, _kind, _indexed in self.fields}, kept

    def decode_window(self, window: Any) -> tuple[dict[str, list[Any]], list[int]] | None:
        """What `decode_columns` gives for a window the compiled reader made (`_logwire.Window`), each field read
        for every log straight from the reply body; None when that does not apply (a window that mixes events or
        has short data, a field that is not an address shown as the node spelled it or a uint): then the caller
        decodes the window's columns."""
        if self._words is None or not window.uniform(self._topics, self.topic, 2 + 2 * self._data_size):
            return None
        return ({name: window.words(item, start, kind) for name, item, start, kind in self._words},
                list(range(len(window))))


_FIRST = operator.itemgetter(0)
_Extractor = Callable[[Sequence[str], bytes], dict[str, Any]]
_ColumnReader = Callable[[Sequence[Sequence[str]], Sequence[str]], list[Any]]


def _word_starts(fields: Sequence[tuple[str, str, bool]]) -> Iterator[tuple[str, str, int | None, int]]:
    """Per field of an event whose fields are each one static word: its name, type, topic (None: in the data) and
    the first of its 64 hex digits there (after a topic's "0x", or the data's word at its offset)."""
    topic, offset = 1, 0
    for field_name, kind, indexed in fields:
        yield field_name, kind, topic if indexed else None, 2 if indexed else 2 + 2 * offset
        topic, offset = (topic + 1, offset) if indexed else (topic, offset + 32)


def _word_places(fields: Sequence[tuple[str, str, bool]], checksum: bool) -> list[tuple[str, int, int, int]] | None:
    """Per field, where `_logwire.Window.words` reads it (topic or -1 for data, first hex digit, kind 0 an address
    as the node spelled it in lower case, 1 a uint); None when a field is neither (or addresses are checksummed)."""
    places: list[tuple[str, int, int, int]] = []
    for field_name, kind, topic, start in _word_starts(fields):
        read = 0 if kind == "address" and not checksum else 1 if kind.startswith("uint") else None
        if read is None:
            return None
        places.append((field_name, -1 if topic is None else topic, start, read))
    return places


def _column_readers(fields: Sequence[tuple[str, str, bool]], checksum: bool) -> list[tuple[str, _ColumnReader]]:
    """Per field, a reader of its values for a whole window from (topics, data as hex), for events whose fields
    are each one static word (what `_extractors` reads a log at a time, the same values)."""
    return [(field_name, _column_reader(kind, topic, start, checksum))
            for field_name, kind, topic, start in _word_starts(fields)]


def _column_reader(kind: str, topic: int | None, start: int, checksum: bool) -> _ColumnReader:
    source = None if topic is None else operator.itemgetter(topic)
    word = slice(start, start + 64)

    def words(topics: Sequence[Sequence[str]], data: Sequence[str], part: slice = word) -> Any:
        return map(operator.itemgetter(part), data if source is None else map(source, topics))

    if kind == "address":
        tail = slice(start + 24, start + 64)  # the word's last 20 bytes, cut in one slice
        if checksum:
            return lambda topics, data: list(map(checksum_address, map(bytes.fromhex, words(topics, data, tail))))
        return lambda topics, data: list(map("0x".__add__, map(str.lower, words(topics, data, tail))))
    if kind.startswith("uint") and source is not None:
        # A topic is "0x" and 64 hex digits (the transport checked it), which int() reads in base 16 as it is.
        return lambda topics, data: list(map(int, map(source, topics), itertools.repeat(16)))
    if kind.startswith("uint"):
        return lambda topics, data: list(map(int, words(topics, data), itertools.repeat(16)))
    read = _word_decoder(kind, checksum)
    assert read is not None  # only for events `_extractors` compiled, whose every field has a word decoder
    return lambda topics, data: list(map(read, map(bytes.fromhex, words(topics, data))))


def _extractors(fields: Sequence[tuple[str, str, bool]], checksum: bool) -> _Extractor | None:
    """One function reading every field from (topics, data) when each is one static word; None otherwise.

    Compiled from the declaration: a single dict display per log instead of one call per field (the 100k-log scans
    decode every Transfer). Field names enter the source only as repr() string literals, the rest is ours."""
    parts: list[str] = []
    helpers: dict[str, Any] = {"_checksum": checksum_address}
    topic, offset = 1, 0
    for index, (field_name, kind, indexed) in enumerate(fields):
        # The field's 32-byte word as an expression over t (topics, 0x-hex) or d (data bytes).
        word_expression = f"bytes.fromhex(t[{topic}][2:])" if indexed else f"d[{offset}:{offset + 32}]"
        if indexed and kind == "address":
            expression = (f"_checksum(bytes.fromhex(t[{topic}][26:]))" if checksum
                          else f"'0x' + t[{topic}][26:].lower()")
        elif indexed and kind.startswith("uint"):
            expression = f"int(t[{topic}][2:], 16)"
        elif kind.startswith("uint"):
            expression = f"int.from_bytes({word_expression}, 'big')"
        else:
            word = _word_decoder(kind, checksum)
            if word is None:
                return None
            helpers[f"_w{index}"] = word
            expression = f"_w{index}({word_expression})"
        topic, offset = (topic + 1, offset) if indexed else (topic, offset + 32)
        parts.append(f"{field_name!r}: {expression}")
    source = "def extract(t, d):\n    return {" + ", ".join(parts) + "}\n"
    exec(compile(source, f"<event decoder {len(fields)} fields>", "exec"), helpers)  # noqa: S102 - our own source
    extract: _Extractor = helpers["extract"]
    return extract


@lru_cache(maxsize=65536)
def checksum_address(word_tail: bytes) -> str:
    from auditor.addresses import to_checksum

    return to_checksum("0x" + word_tail.hex())


def _word_decoder(kind: str, checksum: bool = True) -> Callable[[bytes], Any] | None:
    if kind == "address":
        if checksum:
            return lambda word: checksum_address(word[12:])
        return lambda word: "0x" + word[12:].hex()
    if kind == "bool":
        return lambda word: word[31] == 1
    if kind.startswith("uint"):
        return lambda word: int.from_bytes(word, "big")
    if kind.startswith("int"):
        return lambda word: int.from_bytes(word, "big", signed=True)
    if kind.startswith("bytes") and kind[5:].isdigit():
        size = int(kind[5:])
        return lambda word: word[:size]
    return None


# --- The static codec --------------------------------------------------------------------------------------------
# Every static type is one 32-byte word per leaf, laid out in order (tuples of static types are inlined), so a type
# tuple compiles to a flat list of word readers/writers plus its nesting. Checks and exception types are eth-abi's:
# encoding raises EncodingTypeError for a value of the wrong kind and ValueOutOfBounds for one out of range (or a
# tuple of the wrong length); decoding raises InsufficientDataBytes for short data and NonEmptyPaddingBytes for a
# word its type cannot hold (dirty padding, a bool other than 0/1, an int not sign-extended).

_ZERO_WORD = bytes(32)
_ZERO_12 = bytes(12)
_TRUE_WORD = (1).to_bytes(32, "big")
# eth-utils' is_hex_address, which eth-abi's AddressEncoder applies: the same pattern with the same flags.
_HEX_ADDRESS = re.compile(r"(0x)?[0-9a-f]{40}", re.IGNORECASE)
_SIZED = re.compile(r"(uint|int|bytes)([1-9][0-9]{0,2})")

_WordReader = Callable[[bytes], Any]
_ValueWriter = Callable[[Any], bytes]


class _Leaf:
    """One elementary static type: how to read its word and how to write a value as a word."""

    __slots__ = ("read", "write")

    def __init__(self, read: _WordReader, write: _ValueWriter) -> None:
        self.read = read
        self.write = write


class _Tuple:
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[_Leaf | _Tuple, ...]) -> None:
        self.parts = parts


_Shape: TypeAlias = _Leaf | _Tuple


def _wrong_type(value: Any, kind: str) -> EncodingTypeError:
    return EncodingTypeError(f"Value `{value!r}` of type {type(value)} cannot be encoded as {kind}")


def _out_of_range(value: Any, kind: str, why: str) -> ValueOutOfBounds:
    return ValueOutOfBounds(f"Value `{value!r}` of type {type(value)} cannot be encoded as {kind}: {why}")


def _dirty(word: bytes, kind: str) -> NonEmptyPaddingBytes:
    return NonEmptyPaddingBytes(f"Padding bytes were not empty: 0x{word.hex()} is not a {kind}")


def _read_uint256(word: bytes) -> int:
    return int.from_bytes(word, "big")


def _uint(bits: int) -> _Leaf:
    kind, high = f"uint{bits}", (1 << bits) - 1

    def read(word: bytes) -> int:
        value = int.from_bytes(word, "big")
        if value > high:
            raise _dirty(word, kind)
        return value

    def write(value: Any) -> bytes:
        if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
            raise _wrong_type(value, kind)
        if value < 0 or value > high:
            raise _out_of_range(value, kind, f"must be bounded between [0, {high}]")
        return value.to_bytes(32, "big")

    return _Leaf(_read_uint256 if bits == 256 else read, write)


def _int(bits: int) -> _Leaf:
    kind, low, high = f"int{bits}", -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def read(word: bytes) -> int:
        value = int.from_bytes(word, "big", signed=True)
        if value < low or value > high:  # the word is not the sign extension of an int<bits>
            raise _dirty(word, kind)
        return value

    def write(value: Any) -> bytes:
        if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
            raise _wrong_type(value, kind)
        if value < low or value > high:
            raise _out_of_range(value, kind, f"must be bounded between [{low}, {high}]")
        return value.to_bytes(32, "big", signed=True)

    return _Leaf(read, write)


def _fixed_bytes(size: int) -> _Leaf:
    kind, padding = f"bytes{size}", bytes(32 - size)

    def read(word: bytes) -> bytes:
        if word[size:] != padding:
            raise _dirty(word, kind)
        return word[:size]

    def write(value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray):
            raise _wrong_type(value, kind)
        if len(value) > size:
            raise _out_of_range(value, kind, f"exceeds total byte size for {kind} encoding")
        return bytes(value) + bytes(32 - len(value))

    return _Leaf(read, write)


def _read_bool(word: bytes) -> bool:
    if word == _TRUE_WORD:
        return True
    if word == _ZERO_WORD:
        return False
    raise _dirty(word, "bool")


def _write_bool(value: Any) -> bytes:
    if value is True:
        return _TRUE_WORD
    if value is False:
        return _ZERO_WORD
    raise _wrong_type(value, "bool")


def _read_address(word: bytes) -> str:
    if word[:12] != _ZERO_12:
        raise _dirty(word, "address")
    return checksum_address(word[12:])


def address_word(value: Any) -> bytes:
    """The ABI word of an address given as eth-abi takes one: 40 hex digits in any case, 0x optional (the checksum
    is not checked, as eth-abi does not), or 20 raw bytes. Anything else raises EncodingTypeError."""
    if isinstance(value, str):
        return _address_text_word(value)
    if isinstance(value, bytes | bytearray) and len(value) == 20:
        return _ZERO_12 + bytes(value)
    raise _wrong_type(value, "address")


@lru_cache(maxsize=65536)
def _address_text_word(text: str) -> bytes:
    if _HEX_ADDRESS.fullmatch(text) is None:
        raise _wrong_type(text, "address")
    return _ZERO_12 + bytes.fromhex(text[-40:])


_ADDRESS = _Leaf(_read_address, address_word)
_BOOL = _Leaf(_read_bool, _write_bool)


@lru_cache(maxsize=1024)
def _static_type(kind: str) -> _Shape | None:
    """The compiled form of a canonical static type string, or None to leave it to eth-abi (dynamic types, aliases
    such as 'uint', spaces, anything eth-abi might parse differently)."""
    if kind.startswith("(") and kind.endswith(")"):
        inner = kind[1:-1]
        names = split_types(inner)
        if not names or ",".join(names) != inner:
            return None
        parts = tuple(_static_type(name) for name in names)
        return None if any(part is None for part in parts) else _Tuple(tuple(p for p in parts if p is not None))
    if kind == "address":
        return _ADDRESS
    if kind == "bool":
        return _BOOL
    sized = _SIZED.fullmatch(kind)
    if sized is None:
        return None
    base, size = sized.group(1), int(sized.group(2))
    if base == "bytes":
        return _fixed_bytes(size) if size <= 32 else None
    if size > 256 or size % 8:
        return None
    return _uint(size) if base == "uint" else _int(size)


def _leaves(shapes: Sequence[_Shape]) -> list[_Leaf]:
    out: list[_Leaf] = []
    for shape in shapes:
        out.extend([shape] if isinstance(shape, _Leaf) else _leaves(shape.parts))
    return out


def _static_shapes(types: tuple[str, ...]) -> list[_Shape] | None:
    shapes = [_static_type(kind) for kind in types]
    return None if any(shape is None for shape in shapes) else [s for s in shapes if s is not None]


def _short(data: bytes, start: int) -> InsufficientDataBytes:
    return InsufficientDataBytes(f"Tried to read 32 bytes, only got {max(len(data) - start, 0)} bytes.")


def _builder(shape: _Shape, start: int) -> tuple[Callable[[list[Any]], Any], int]:
    """How to pick a shape's value out of the flat list of word values, and the index after it."""
    if isinstance(shape, _Leaf):
        return (lambda values: values[start]), start + 1
    if all(isinstance(part, _Leaf) for part in shape.parts):
        end = start + len(shape.parts)
        return (lambda values: tuple(values[start:end])), end
    builders = []
    at = start
    for part in shape.parts:
        build, at = _builder(part, at)
        builders.append(build)
    return (lambda values: tuple([build(values) for build in builders])), at


@lru_cache(maxsize=1024)
def _static_decoder(types: tuple[str, ...]) -> Callable[[bytes], tuple[Any, ...]] | None:
    shapes = _static_shapes(types)
    if shapes is None:
        return None
    readers = tuple(leaf.read for leaf in _leaves(shapes))
    size = 32 * len(readers)
    placed = tuple(zip(readers, range(0, size, 32), range(32, size + 32, 32), strict=True))

    def words(data: bytes) -> list[Any]:
        if len(data) >= size:
            return [read(data[start:end]) for read, start, end in placed]
        # Short: read word by word like eth-abi, so a bad word before the missing ones raises what eth-abi raises.
        values = []
        for read, start, end in placed:
            if end > len(data):
                raise _short(data, start)
            values.append(read(data[start:end]))
        return values

    if len(readers) == 1 and isinstance(shapes[0], _Leaf):
        (read,) = readers

        def decode_one(data: bytes) -> tuple[Any, ...]:
            if len(data) < 32:
                raise _short(data, 0)
            return (read(data[:32]),)

        return decode_one
    if all(isinstance(shape, _Leaf) for shape in shapes):
        def decode_flat(data: bytes) -> tuple[Any, ...]:
            return tuple(words(data))

        return decode_flat
    only = shapes[0]
    if len(shapes) == 1 and isinstance(only, _Tuple) and all(isinstance(part, _Leaf) for part in only.parts):
        def decode_one_tuple(data: bytes) -> tuple[Any, ...]:
            return (tuple(words(data)),)

        return decode_one_tuple
    builders = []
    at = 0
    for shape in shapes:
        build, at = _builder(shape, at)
        builders.append(build)

    def decode_nested(data: bytes) -> tuple[Any, ...]:
        values = words(data)
        return tuple([build(values) for build in builders])

    return decode_nested


def _list_like(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _write(shape: _Shape, value: Any, out: list[bytes]) -> None:
    if isinstance(shape, _Leaf):
        out.append(shape.write(value))
        return
    if not _list_like(value):
        raise _wrong_type(value, "tuple")
    if len(value) != len(shape.parts):
        raise _out_of_range(value, "tuple", f"value has {len(value)} items when {len(shape.parts)} were expected")
    for part, item in zip(shape.parts, value, strict=True):
        _write(part, item, out)


@lru_cache(maxsize=1024)
def _static_encoder(types: tuple[str, ...]) -> Callable[[Sequence[Any]], bytes] | None:
    shapes = _static_shapes(types)
    if shapes is None:
        return None
    top = _Tuple(tuple(shapes))
    if any(isinstance(shape, _Tuple) for shape in shapes):
        def encode_nested(values: Sequence[Any]) -> bytes:
            out: list[bytes] = []
            _write(top, values, out)
            return b"".join(out)

        return encode_nested
    writers = tuple(shape.write for shape in shapes if isinstance(shape, _Leaf))
    count = len(writers)
    if count == 1:
        (write_one,) = writers

        def encode_one(values: Sequence[Any]) -> bytes:
            if len(values) != 1:
                raise _out_of_range(values, "tuple", f"value has {len(values)} items when 1 were expected")
            return write_one(values[0])

        return encode_one

    def encode_flat(values: Sequence[Any]) -> bytes:
        if len(values) != count:
            raise _out_of_range(values, "tuple", f"value has {len(values)} items when {count} were expected")
        return b"".join([write(value) for write, value in zip(writers, values, strict=True)])

    return encode_flat
