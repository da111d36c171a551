"""The compiled reader of eth_getLogs replies (auditor/chain/_logwire.c) held to the Python reader, its oracle.

The invariant that makes the compiled reader safe: whatever it accepts, the Python path (msgspec, then the bulk
check) accepts too, with the same values; whatever it does not read plainly it returns None for, and the Python
path judges. The replies here are not the tests' hand-made logs alone: the same logs are written out with the
JSON spellings a node may use (whitespace anywhere, any key order, fields the audit does not keep, holding any
JSON value, escapes and non-ASCII text in them) and then damaged byte by byte.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.chain import native, reader
from auditor.chain import rpc as rpc_module
from auditor.chain.abi import EventDecoder
from auditor.chain.rpc import Call, CheckedLogs, _decode_json, _decode_logs_reply
from tests.test_log_scan_paths import WINDOW, _log_items, _mutated, _window, log_reader, reference_ok

pytestmark = pytest.mark.skipif(native.BUILT is None, reason="the compiled log reader is not built here")

SPACE = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n", "  "])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _write(value: Any, data: st.DataObject) -> str:
    """`value` as JSON text, spelled one of the ways a node may: whitespace between tokens, escapes or not."""
    space = data.draw(SPACE)
    if isinstance(value, dict):
        members = [f"{data.draw(SPACE)}{_write(key, data)}{data.draw(SPACE)}:{_write(item, data)}"
                   for key, item in value.items()]
        return "{" + ",".join(members) + space + "}"
    if isinstance(value, list):
        return "[" + ",".join(data.draw(SPACE) + _write(item, data) for item in value) + space + "]"
    return json.dumps(value, ensure_ascii=data.draw(st.booleans()))


def _compiled(body: bytes, low: int = 10, high: int = 20) -> Any:
    return native.BUILT.parse_logs(body, low, high)  # type: ignore[union-attr]


def _columns(parsed: Any) -> list[list[Any]]:
    """The window's seven columns, in WIRE_FIELDS order."""
    return [parsed[1].column(field) for field in range(7)]


def _python(body: bytes) -> Any:
    """What the Python reader makes of the reply (the compiled reader switched off)."""
    with log_reader(False):
        return _decode_logs_reply(WINDOW, body)


def _held_to_the_python_reader(body: bytes) -> Any:
    """The compiled reader's answer, checked against the Python path's: None, or the same id and values."""
    parsed = _compiled(body)
    if parsed is None:
        return None
    python = _python(body)
    assert type(python["result"]) is CheckedLogs, body[:300]  # accepted by both or by neither
    assert parsed[0] == python["id"]
    with log_reader(True):
        compiled = _decode_logs_reply(WINDOW, body)
    assert reader.LogColumns(compiled["result"]).rows() == reader.LogColumns(python["result"]).rows()
    return parsed


@settings(max_examples=300, deadline=None)
@given(st.lists(_log_items(), max_size=5), st.data())
def test_a_reply_in_any_spelling_is_read_as_the_python_reader_reads_it(items: list[dict[str, Any]],
                                                                       data: st.DataObject) -> None:
    broken = _mutated(items, data)
    for item in broken:
        if isinstance(item, dict) and data.draw(st.booleans()):  # fields the audit does not keep, of any value
            item.update(data.draw(st.dictionaries(st.sampled_from(["removed", "transactionIndex", "blockTimestamp",
                                                                   "extra", "ümlaut"]), JSON_VALUES, max_size=3)))
        if isinstance(item, dict) and data.draw(st.booleans()):  # any key order
            keys = data.draw(st.permutations(list(item)))
            item_copy = {key: item[key] for key in keys}
            item.clear()
            item.update(item_copy)
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": data.draw(st.integers(0, 3)), "result": broken}
    reply = {key: reply[key] for key in data.draw(st.permutations(list(reply)))}
    body = (data.draw(SPACE) + _write(reply, data) + data.draw(SPACE)).encode()
    parsed = _held_to_the_python_reader(body)
    if reference_ok(broken, 10, 20) and body.isascii() and b"\\" not in body:
        # a well-formed reply in plain text: the compiled reader reads it (it does not leave the work to Python)
        assert parsed is not None, body[:300]
        assert len(parsed[1]) == len(broken)


@settings(max_examples=500, deadline=None)
@given(st.lists(_log_items(), min_size=1, max_size=3), st.data())
def test_a_damaged_reply_is_refused_or_read_as_the_python_reader_reads_it(items: list[dict[str, Any]],
                                                                          data: st.DataObject) -> None:
    body = bytearray(json.dumps({"jsonrpc": "2.0", "id": 0, "result": items}).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body) - 1))
        how = data.draw(st.sampled_from(["replace", "delete", "insert"]))
        byte = data.draw(st.sampled_from([*b'0x9aFg"\\{}[],: \x00\xc3\xa9', data.draw(st.integers(0, 255))]))
        if how == "replace":
            body[at] = byte
        elif how == "delete":
            del body[at]
        else:
            body.insert(at, byte)
    _held_to_the_python_reader(bytes(body))


def test_what_the_compiled_reader_leaves_to_python() -> None:
    log = {"address": "0x" + "ab" * 20, "topics": ["0x" + "00" * 32], "data": "0x", "blockNumber": "0xf",
           "logIndex": "0x0", "transactionHash": "0x" + "11" * 32, "blockHash": "0x" + "22" * 32}
    good = json.dumps({"jsonrpc": "2.0", "id": 7, "result": [log, log]}).encode()
    parsed = _compiled(good)
    assert parsed is not None and parsed[0] == 7 and _columns(parsed)[2] == ["0x", "0x"]
    assert _columns(parsed)[0][0] is _columns(parsed)[0][1]  # a repeated value is one object
    assert parsed[1].column(0) is parsed[1].column(0)  # made once, when first asked for
    with pytest.raises(ValueError):
        parsed[1].column(7)
    window = parsed[1]
    assert window.words(0, 2, 1) == [0, 0] and window.words(0, 2, 0) == ["0x" + "00" * 20] * 2
    for item, start, kind, why in ((-1, 2, 1, "shorter"), (1, 2, 0, "without that topic"), (0, 4, 1, "shorter"),
                                   (0, 2, 2, "kind"), (0, -1, 1, "start"), (0, sys.maxsize - 8, 1, "start")):
        with pytest.raises(ValueError, match=why):
            window.words(item, start, kind)
    assert window.uniform(1, "0x" + "00" * 32, 2) and not window.uniform(2, "0x" + "00" * 32, 2)
    assert not window.uniform(1, "0x" + "00" * 31 + "01", 2) and not window.uniform(1, "0x" + "00" * 32, 4)
    assert _compiled(good.replace(b'"id": 7', b'"id": 7.0')) is None  # an id that is no plain integer
    no_id = _compiled(good.replace(b'"id": 7, ', b""))  # no id: None, as msgspec has it
    assert no_id is not None and no_id[0] is None and _columns(no_id) == _columns(parsed)
    assert _compiled(good, 16, 20) is None and _compiled(good, 10, 14) is None  # a block outside the window
    assert _columns(_compiled(good, -1, -1)) == _columns(parsed)  # unbounded
    assert _compiled(good.replace(b'"data": "0x"', b'"data": "0x", "data": "0x"', 1)) is None  # a field twice
    assert _compiled(good.replace(b'"0xf"', b'"0x' + b"0" * 16 + b'f"', 1)) is None  # a quantity over 15 digits
    assert _compiled(good.replace(b"0xab", b"0x\\u0061b", 1)) is None  # an escape in a kept field
    assert _compiled(good.replace(b'"jsonrpc": "2.0"', b'"jsonrpc": "2.\\u0030"')) is None  # even in another one
    assert _compiled(good[:-1]) is None and _compiled(good + b"x") is None and _compiled(b"") is None
    error = json.dumps({"jsonrpc": "2.0", "id": 0, "error": {"code": -32000, "message": "no"}, "result": []})
    assert _compiled(error.encode()) is None
    empty = _compiled(json.dumps({"id": 0, "result": []}).encode())
    assert empty is not None and empty[0] == 0 and len(empty[1]) == 0 and _columns(empty) == [[]] * 7
    nested = b"[" * 100 + b"]" * 100
    assert _compiled(good.replace(b'"jsonrpc": "2.0"', b'"deep": ' + nested)) is None  # too deep to skip: Python's
    with pytest.raises(TypeError):
        native.BUILT.parse_logs("not bytes", -1, -1)  # type: ignore[union-attr]
    call = Call("eth_getLogs", ({"fromBlock": "0xa", "toBlock": "latest"},))
    assert rpc_module._window_bounds(call) == (10, None)
    assert _decode_json(good)["id"] == 7


@settings(max_examples=300, deadline=None)
@given(_window(), st.integers(10, 20))
def test_a_window_decoded_from_the_body_is_its_columns_decoded(
        window: tuple[EventDecoder, list[tuple[str, ...]], list[str]], block: int) -> None:
    """`LogColumns.decode` of a window the compiled reader made (static words read straight from the body where
    every log is the event, else the columns decoded) against `decode_columns` of the same logs' topics and data."""
    decoder, topics, data = window
    logs = [{"address": "0x" + "ab" * 20, "topics": list(log_topics), "data": log_data, "blockNumber": hex(block),
             "logIndex": hex(index), "transactionHash": "0x" + "11" * 32, "blockHash": "0x" + "22" * 32}
            for index, (log_topics, log_data) in enumerate(zip(topics, data, strict=True))]
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "result": logs}).encode()
    with log_reader(True) as checked:
        answer = _decode_logs_reply(WINDOW, body)
    assert type(answer["result"]) is checked
    columns = reader.LogColumns(answer["result"])
    expected = decoder.decode_columns(topics, data)
    assert columns.decode(decoder) == expected
    uniform = all(len(t) == decoder._topics and t[0] == decoder.topic and len(d) >= 2 + 2 * decoder._data_size
                  for t, d in zip(topics, data, strict=True))  # (an empty window too: nothing to decode)
    fast = decoder.decode_window(answer["result"].window)
    assert (fast is not None) == (uniform and decoder._words is not None)  # read from the body whenever it can be
    assert fast is None or fast == expected
