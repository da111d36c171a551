"""The fast paths of a log scan against their plain equivalents: the bulk well-formedness check against a field by
field one (hypothesis), dense ranges fetched side by side and ahead against one window at a time on a real anvil,
and every layer that can hand a scan an answer (transport, cache, evidence) refusing a malformed one."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.addresses import to_checksum
from auditor.chain import native, reader
from auditor.chain.abi import EventDecoder
from auditor.chain.cache import SqliteCache
from auditor.chain.evidence import Bundle, ReplayLayer
from auditor.chain.reader import ChainClient, Log
from auditor.chain.rpc import (
    APART_AT_ONCE,
    CachingLayer,
    Call,
    ChainError,
    CheckedColumns,
    CheckedLogs,
    HttpTransport,
    RetryPolicy,
    Stats,
    WireLog,
    _decode_json,
    _decode_logs_reply,
    _malformed_logs,
    _well_formed_wire_logs,
    gc_paused,
    malformed,
    plain_answer,
)
from auditor.lab.compile import compile_lab_contracts
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc, start_anvil
from tests.faultproxy import FaultProxy

TRANSFER = EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)")
PER_BLOCK = 40
BLOCKS = 30

# ---------------------------------------------------------------- the bulk check, against a field by field one

HEX = "0123456789abcdefABCDEF"


def _hex_text(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=HEX, min_size=size, max_size=size).map(lambda digits: "0x" + digits)


def _log_items() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "address": _hex_text(40),
        "topics": st.lists(_hex_text(64), max_size=4),
        "data": st.integers(0, 4).flatmap(lambda words: _hex_text(64 * words)),
        "blockNumber": st.integers(10, 20).map(hex),
        "logIndex": st.integers(0, 300).map(hex),
        "transactionHash": _hex_text(64),
        "blockHash": _hex_text(64),
        "removed": st.booleans(),
    })


def _is_hex_field(value: Any, size: int | None) -> bool:
    return (isinstance(value, str) and value.startswith("0x") and all(c in HEX for c in value[2:])
            and (len(value) == 2 + size if size is not None else len(value) % 2 == 0))


def _is_quantity(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("0x") and len(value) > 2 and all(c in HEX for c in value[2:])


def reference_ok(items: list[Any], low: int, high: int) -> bool:
    """What a well-formed eth_getLogs answer for blocks low..high is, field by field, written plainly."""
    for item in items:
        if not isinstance(item, dict):
            return False
        if not (_is_hex_field(item.get("address"), 40) and _is_hex_field(item.get("transactionHash"), 64)
                and _is_hex_field(item.get("blockHash"), 64) and _is_hex_field(item.get("data"), None)
                and _is_quantity(item.get("blockNumber")) and _is_quantity(item.get("logIndex"))):
            return False
        topics = item.get("topics")
        if not isinstance(topics, list) or not all(_is_hex_field(t, 64) for t in topics):
            return False
        if not low <= int(item["blockNumber"], 16) <= high:
            return False
    return True


BAD_VALUES = st.one_of(
    st.sampled_from(["", "0x", "0x1", "1234", "0xzz", "0x0_1", " 0x01", "0x01 ", "0x-1", "0x|0x", "0X01", "x0"]),
    st.text(alphabet=HEX + "xX_ |g-", max_size=70),
    st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2), st.booleans(),
)
FIELDS = ["address", "topics", "data", "blockNumber", "logIndex", "transactionHash", "blockHash"]


def _mutated(items: list[dict[str, Any]], data: st.DataObject, bad_values: Any = None) -> list[Any]:
    """The items, or a copy with one thing wrong in one of them."""
    bad_values = BAD_VALUES if bad_values is None else bad_values
    broken: list[Any] = copy.deepcopy(items)
    mutate: bool = data.draw(st.booleans())
    if broken and mutate:
        victim = broken[data.draw(st.integers(0, len(broken) - 1))]
        what = data.draw(st.sampled_from([*FIELDS, "topic", "drop", "block", "whole", "shift"]))
        if what == "shift":  # the 0x moved inside the value, its length kept: 1x0..., 00x...
            name = data.draw(st.sampled_from([f for f in FIELDS if f != "topics"]))
            value = victim[name]
            victim[name] = data.draw(st.sampled_from([value[2] + "x" + value[3:] + "0" if len(value) > 2 else "x0",
                                                      value[2:] + "0x"]))
        elif what == "drop":
            del victim[data.draw(st.sampled_from(FIELDS))]
        elif what == "topic" and victim["topics"]:
            victim["topics"][data.draw(st.integers(0, len(victim["topics"]) - 1))] = data.draw(bad_values)
        elif what == "block":
            victim["blockNumber"] = hex(data.draw(st.sampled_from([0, 9, 21, 10**6])))
        elif what == "whole":
            broken[broken.index(victim)] = data.draw(st.one_of(st.integers(), st.text(max_size=4), st.none()))
        elif what in FIELDS:
            victim[what] = data.draw(bad_values)
    return broken


WINDOW = Call("eth_getLogs", ({"fromBlock": hex(10), "toBlock": hex(20)},))
# Each test of the transport's log decoding runs through both of its readers: the compiled one (where setup.py
# built it) and the Python one (msgspec, then the bulk check), which is also what a machine without it runs.
READERS = pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])


@contextlib.contextmanager
def log_reader(compiled: bool) -> Iterator[type]:
    """The transport set to read log replies the given way; yields the type of a checked window it then makes."""
    if compiled and native.BUILT is None:
        pytest.skip("the compiled log reader is not built on this machine (no C compiler at install)")
    before = native.LOGWIRE
    native.LOGWIRE = native.BUILT if compiled else None
    try:
        yield CheckedColumns if compiled else CheckedLogs
    finally:
        native.LOGWIRE = before


@settings(max_examples=400, deadline=None)
@given(st.lists(_log_items(), max_size=6), st.data())
def test_the_bulk_check_agrees_with_a_field_by_field_one(items: list[dict[str, Any]], data: st.DataObject) -> None:
    broken = _mutated(items, data)
    expected = reference_ok(broken, 10, 20)
    assert (_malformed_logs(WINDOW, broken) is None) == expected, broken


BAD_TEXT = st.one_of(st.sampled_from(["", "0x", "0x1", "1234", "0xzz", "0x0_1", " 0x01", "0x01 ", "0x-1", "0x|0x",
                                      "0X01", "x0", "0x\u00e9f", "0x0\u0660"]),
                     st.text(alphabet=HEX + "xX_ |g-\u00e9", max_size=70),
                     st.integers(0, 68).flatmap(_hex_text))  # hex of every length near 40 and 64, odd ones too


@settings(max_examples=400, deadline=None)
@given(st.lists(_log_items(), min_size=1, max_size=6), st.data())
def test_the_bulk_check_of_wire_logs_agrees_with_a_field_by_field_one(items: list[dict[str, Any]],
                                                                      data: st.DataObject) -> None:
    """The same check on the items as msgspec decodes them (every field a string of its length: text goes wrong)."""
    broken = _mutated(items, data, BAD_TEXT)
    try:
        wire = msgspec.convert(broken, list[WireLog])  # what the decoder checks, as it checks it
    except msgspec.ValidationError:  # a field dropped, a short hash: the transport decodes such a reply plainly
        return
    assert _well_formed_wire_logs(WINDOW, wire) == reference_ok(broken, 10, 20), broken
    # WireLogs the transport did not decode and check for this call are judged by the plain check: refused
    assert malformed(WINDOW, wire) is not None
    assert malformed(WINDOW, CheckedLogs(Call("eth_getLogs", ({"fromBlock": hex(10), "toBlock": hex(20)},)), wire))


@READERS
@settings(max_examples=400, deadline=None)
@given(st.lists(_log_items(), max_size=6), st.data(),
       st.sampled_from(["result", "error", "result and error", "no id", "null result", "truncated"]))
def test_a_window_decoded_into_wire_logs_is_judged_as_the_plain_decoding(
        compiled: bool, items: list[dict[str, Any]], data: st.DataObject, shape: str) -> None:
    """The transport's fast decoding of a log window's reply: used only for a well-formed answer (giving the same
    Logs), else the reply is decoded plainly, to be judged and named as before; invalid JSON fails alike."""
    with log_reader(compiled) as checked:
        _judged_as_the_plain_decoding(checked, items, data, shape)


def _judged_as_the_plain_decoding(checked: type, items: list[dict[str, Any]], data: st.DataObject,
                                  shape: str) -> None:
    broken = _mutated(items, data)
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": 0, "result": None if shape == "null result" else broken}
    if "error" in shape:
        reply["error"] = {"code": -32000, "message": "no"}
    if shape == "no id":
        del reply["id"]
    body = json.dumps(reply).encode()
    if shape == "truncated":
        body = body[: data.draw(st.integers(0, len(body) - 1))]
        with pytest.raises(ValueError):
            _decode_json(body)
        with pytest.raises(ValueError):
            _decode_logs_reply(WINDOW, body)
        return
    plain, fast = _decode_json(body), _decode_logs_reply(WINDOW, body)
    well_formed = shape in ("result", "no id") and reference_ok(broken, 10, 20)
    assert (type(fast.get("result")) is checked) == well_formed, broken
    if not well_formed:
        assert fast == plain
        return
    assert fast.get("id") == plain.get("id")
    assert malformed(WINDOW, fast["result"]) is None
    if checked is CheckedLogs:
        assert _well_formed_wire_logs(WINDOW, list(fast["result"]))
    assert reader.LogColumns(fast["result"]).rows() == reader.LogColumns(plain["result"]).rows()
    kept = [{name: item[name] for name in ("address", "topics", "data", "blockNumber", "logIndex",
                                            "transactionHash", "blockHash")} for item in plain["result"]]
    # what the cache stores (as JSON): the kept fields as the node spelled them
    assert json.loads(json.dumps(plain_answer(fast)["result"])) == kept


def test_the_bulk_check_names_what_is_wrong() -> None:
    call = Call("eth_getLogs", ({"fromBlock": hex(1), "toBlock": hex(5)},))
    good = {"address": "0x" + "ab" * 20, "topics": ["0x" + "00" * 32], "data": "0x", "blockNumber": "0x2",
            "logIndex": "0x0", "transactionHash": "0x" + "11" * 32, "blockHash": "0x" + "22" * 32}
    assert _malformed_logs(call, [good]) is None
    assert "outside the asked window" in str(_malformed_logs(call, [{**good, "blockNumber": "0x9"}]))
    assert "malformed log" in str(_malformed_logs(call, [{**good, "data": "0xabc"}]))
    assert "'0x" + "g" * 40 in str(_malformed_logs(call, [{**good, "address": "0x" + "g" * 40}]))
    assert "malformed eth_getLogs result 'None'" in str(_malformed_logs(call, None))


# ---------------------------------------------------------------- dense ranges on a real node


@pytest.fixture(scope="module")
def spammed() -> Iterator[tuple[str, str, int, int]]:
    """An anvil holding BLOCKS blocks of PER_BLOCK Transfer logs each (distinct senders, recipients and values)."""
    node = start_anvil(1)
    try:
        spammer = Contract.deploy(node.url, compile_lab_contracts()["LogSpammer"])
        first = int(rpc(node.url, "eth_blockNumber"), 16) + 1
        for block in range(BLOCKS):
            spammer.transact("emitTransfers", PER_BLOCK, block * PER_BLOCK)
        yield node.url, spammer.address, first, int(rpc(node.url, "eth_blockNumber"), 16)
    finally:
        node.stop()


def _client(url: str, *, cache: SqliteCache | None = None, log_span: int = 100_000,
            record: Bundle | None = None) -> ChainClient:
    stats = Stats()
    policy = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02, timeout_s=10, sleep=lambda _s: None)
    client = ChainClient("ethereum", 1, HttpTransport("ethereum", url, stats, policy), stats, cache=cache,
                         log_span=log_span, record=record)
    client.open()
    return client


def _one_window_each_block(url: str, spammer: str, first: int, last: int) -> list[Log]:
    client = _client(url)
    return [log for block in range(first, last + 1)
            for log in client.scan_logs([spammer], [TRANSFER.topic], block, block)]


def test_a_dense_scan_side_by_side_and_ahead_gets_every_log_in_order(
        spammed: tuple[str, str, int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    url, spammer, first, last = spammed
    plain = _one_window_each_block(url, spammer, first, last)
    assert len(plain) == PER_BLOCK * BLOCKS
    assert [TRANSFER.decode(log.topics, log.data)["value"] for log in plain] == list(range(PER_BLOCK * BLOCKS))
    monkeypatch.setattr(reader, "TARGET_LOGS_PER_WINDOW", 6 * PER_BLOCK)  # 6-block windows: a dense range
    monkeypatch.setattr(reader, "FIRST_LOG_SPAN_ALONE", 1)
    side_by_side: list[int] = []
    send = HttpTransport._send_side_by_side

    def spy(self: HttpTransport, calls: Any, apart: Any) -> Any:
        side_by_side.append(len(apart))
        return send(self, calls, apart)

    monkeypatch.setattr(HttpTransport, "_send_side_by_side", spy)
    client = _client(url)
    assert list(client.scan_logs([spammer], [TRANSFER.topic], first, last)) == plain
    # a 1-block first window, whose density puts the target at 6 blocks (less than 16x wider: the range is dense),
    # then windows of a third of the target (DENSE_SPLIT), 2 blocks, DENSE_WINDOWS asked for at once, each its own
    # request (the pin took one more)
    assert reader.DENSE_SPLIT == 3 and reader.LOG_SPAN_GROWTH > 6
    assert client.stats.calls["eth_getLogs"] == client.stats.http_requests - 1 == 1 + -(-(BLOCKS - 1) // 2)
    assert side_by_side and max(side_by_side) == reader.DENSE_WINDOWS == 2 * APART_AT_ONCE
    # a provider that refuses windows over 2 blocks: narrowed, asked again, nothing lost or repeated
    with FaultProxy(url, max_log_span=2) as proxy:
        refused = _client(proxy.url)
        assert list(refused.scan_logs([spammer], [TRANSFER.topic], first, last)) == plain


def test_a_damaged_cache_entry_or_evidence_is_never_believed(spammed: tuple[str, str, int, int],
                                                             tmp_path: Path) -> None:
    url, spammer, first, _last = spammed
    plain = _one_window_each_block(url, spammer, first, first)
    cache = SqliteCache(tmp_path / "cache.sqlite3")
    client = _client(url, cache=cache)
    assert list(client.scan_logs([spammer], [TRANSFER.topic], first, first)) == plain
    rows = cache.db.execute("SELECT key, answer FROM answers").fetchall()
    assert rows
    damaged = [(key, answer.replace('"0x', '"0xg', 1)) for key, answer in rows]
    cache.db.executemany("UPDATE answers SET answer = ? WHERE key = ?", [(a, k) for k, a in damaged])
    cache.db.commit()
    again = _client(url, cache=cache)
    assert list(again.scan_logs([spammer], [TRANSFER.topic], first, first)) == plain
    assert again.stats.calls["eth_getLogs"] == 1  # asked the node again instead of reading the damage

    window = Call("eth_getLogs", ({"fromBlock": hex(first), "toBlock": hex(first)},))
    bundle = Bundle()
    bundle.add("ethereum", window, {"result": [{"address": "0xnot an address"}]})
    answer = ReplayLayer(bundle, "ethereum").send([window])[0]
    assert "malformed log" in answer["error"]["message"]
    layered = CachingLayer(ReplayLayer(bundle, "ethereum"), cache, "ns", Stats())
    assert "error" in layered.send([window])[0]
    scan = reader._Scan(client, None, [], first, first)
    scan.calls()
    with pytest.raises(ChainError, match="malformed log"):  # what the scan does with such an answer: stops
        scan.take([answer])


@READERS
def test_windows_decoded_into_wire_logs_give_the_plain_logs_and_evidence_keeps_whole_answers(
        compiled: bool, spammed: tuple[str, str, int, int], tmp_path: Path) -> None:
    with log_reader(compiled):
        _decoded_windows_give_the_plain_logs(spammed, tmp_path)


def _decoded_windows_give_the_plain_logs(spammed: tuple[str, str, int, int], tmp_path: Path) -> None:
    url, spammer, first, last = spammed
    plain = _one_window_each_block(url, spammer, first, last)
    fast = _client(url)
    assert fast.wire.typed_logs  # type: ignore[attr-defined]
    assert list(fast.scan_logs([spammer], [TRANSFER.topic], first, last)) == plain
    cache = SqliteCache(tmp_path / "cache.sqlite3")
    for _ in range(2):  # stored as JSON objects, then answered from the cache
        cached = _client(url, cache=cache)
        assert list(cached.scan_logs([spammer], [TRANSFER.topic], first, last)) == plain
    assert cached.stats.cache_hits >= 1 and cached.stats.calls["eth_getLogs"] == 0
    bundle = Bundle()
    recorded = _client(url, record=bundle)
    assert not recorded.wire.typed_logs  # type: ignore[attr-defined]
    assert list(recorded.scan_logs([spammer], [TRANSFER.topic], first, last)) == plain
    windows = [entry["answer"]["result"] for entries in bundle.content()["chains"].values() for entry in entries
               if entry["request"][0] == "eth_getLogs"]
    assert windows and all("removed" in item for window in windows for item in window)  # the node's every field


GOOD_LOG = {"address": "0x" + "ab" * 20, "topics": ["0x" + "00" * 32, "0x" + "0F" * 32], "data": "0x" + "01" * 32,
            "blockNumber": "0xf", "logIndex": "0x0", "transactionHash": "0x" + "11" * 32,
            "blockHash": "0x" + "22" * 32, "removed": False}


@pytest.mark.parametrize("field, value", [
    ("data", "0x123"), ("data", "0x12g4"), ("data", "1234"), ("data", "0X12"), ("data", "0x12\u00e9f"),
    ("address", "0x" + "ab" * 19), ("address", "0x" + "ab" * 21), ("address", "0x" + "ag" * 20),
    ("address", "00x" + "ab" * 19 + "a"), ("transactionHash", "0x" + "1" * 63), ("transactionHash", "0x" + "1" * 65),
    ("blockHash", "0x" + "2" * 63 + "|"), ("blockHash", "1x" + "2" * 64), ("blockNumber", "0x"),
    ("blockNumber", "0x1_0"), ("blockNumber", "0x9"), ("blockNumber", "0x15"), ("logIndex", "0x"),
    ("logIndex", " 0x1"), ("topics", ["0x" + "00" * 31]), ("topics", ["0x" + "00" * 31 + "0g"]),
    ("topics", ["0x" + "00" * 32, "0x" + "00" * 33]), ("topics", "0x" + "00" * 32), ("topics", [1]),
    ("blockNumber", 15), ("data", None),
])
@READERS
def test_every_check_of_the_fast_decoding_refuses_what_it_is_for(compiled: bool, field: str, value: Any) -> None:
    """Each thing msgspec, the wire check or the compiled reader must catch, in a window of good logs: the reply is
    decoded plainly and refused with the plain check's message."""
    good = [GOOD_LOG, {**GOOD_LOG, "logIndex": "0x1", "data": "0x"}]
    with log_reader(compiled) as checked:
        assert type(_decode_logs_reply(WINDOW, json.dumps({"id": 0, "result": good}).encode())["result"]) is checked
        for wrong in ([0], [1], [0, 1]):  # in one log, or in all (the only distinct value of its column)
            items = copy.deepcopy(good)
            for at in wrong:
                items[at][field] = value
            body = json.dumps({"id": 0, "result": items}).encode()
            fast = _decode_logs_reply(WINDOW, body)
            assert fast == _decode_json(body)
            assert malformed(WINDOW, fast["result"]) == _malformed_logs(WINDOW, items) is not None


def test_the_collector_is_paused_only_while_a_window_is_decoded_or_built() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # off already: left off
    finally:
        gc.enable()
    assert "result" in _decode_logs_reply(WINDOW, b'{"id":0,"result":[1]}')  # does not fit: decoded plainly
    assert gc.isenabled()
    with pytest.raises(ValueError):
        _decode_logs_reply(WINDOW, b'{"id":0,"result":[')
    assert gc.isenabled()
    assert reader.LogColumns([]).rows() == [] and gc.isenabled()


def test_the_decoder_without_checksums_gives_the_same_fields_in_lower_case() -> None:
    lower = EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)", checksum=False)
    sender, recipient = "0x1597E4B7cF6D2877A1d690b6088668afDb045763", "0x" + "c" * 40
    topics = (lower.topic, "0x" + "00" * 12 + sender[2:].lower(), "0x" + "00" * 12 + recipient[2:].upper())
    data = (7).to_bytes(32, "big")
    assert TRANSFER.decode(topics, data) == {"from": sender, "to": to_checksum(recipient), "value": 7}
    assert lower.decode(topics, data) == {"from": sender.lower(), "to": recipient, "value": 7}
    for decoder in (TRANSFER, lower):
        with pytest.raises(ValueError, match="malformed Transfer log"):
            decoder.decode((*topics, "0x" + "00" * 32), data)  # an ERC-721 Transfer: four topics
        with pytest.raises(ValueError, match="malformed Transfer log"):
            decoder.decode(topics, data[:31])
    assert set(string.hexdigits) >= set(lower.decode(topics, data)["to"][2:])


# ---------------------------------------------------------------- whole columns against a log at a time

_EVENTS = [
    EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)"),
    EventDecoder("Transfer(address indexed from,address indexed to,uint256 value)", checksum=False),
    EventDecoder("Borrow(bytes32 indexed id,address caller,address indexed onBehalf,uint256 assets,int256 d)"),
    EventDecoder("Flag(uint64 indexed n,bool on,bytes4 tag,address who)", checksum=False),
    EventDecoder("Deposit(uint256 indexed id,address who,uint128 a,uint256 b)", checksum=False),  # words in data
    EventDecoder("Note(bytes32 indexed id,address caller,string memo)"),  # not static: decoded a log at a time
]


@st.composite
def _window(draw: st.DrawFn) -> tuple[EventDecoder, list[tuple[str, ...]], list[str]]:
    """A window of logs of one event, some of them another event's, short of data or with a topic too many."""
    decoder = draw(st.sampled_from(_EVENTS))
    topics: list[tuple[str, ...]] = []
    data: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        indexed = sum(1 for _n, _k, is_indexed in decoder.fields if is_indexed)
        words = [draw(_hex_text(64)) for _ in range(indexed)]
        first = decoder.topic if draw(st.integers(0, 5)) else draw(_hex_text(64))
        extra = [draw(_hex_text(64))] if not draw(st.integers(0, 5)) else []
        topics.append((first, *words, *extra))
        size = 32 * (len(decoder.fields) - indexed) + (64 if decoder.name == "Note" else 0)
        cut = draw(st.integers(0, 3)) if not draw(st.integers(0, 5)) else 0
        data.append("0x" + draw(st.binary(min_size=size, max_size=size)).hex()[: 2 * size - 2 * cut])
    return decoder, topics, data


@settings(max_examples=300, deadline=None)
@given(_window())
def test_a_window_decoded_by_columns_is_its_logs_decoded_one_at_a_time(
    window: tuple[EventDecoder, list[tuple[str, ...]], list[str]],
) -> None:
    decoder, topics, data = window
    rows: list[dict[str, Any]] = []
    expected: list[int] = []
    for position, (log_topics, log_data) in enumerate(zip(topics, data, strict=True)):
        try:
            rows.append(decoder.decode(log_topics, bytes.fromhex(log_data[2:])))
        except ValueError:
            continue
        expected.append(position)
    columns, kept = decoder.decode_columns(topics, data)
    assert kept == expected
    assert columns == {name: [row[name] for row in rows] for name, _kind, _indexed in decoder.fields}


def test_columns_of_a_window_are_its_logs_field_by_field(spammed: tuple[str, str, int, int]) -> None:
    url, spammer, first, last = spammed
    client = _client(url)
    windows = list(client.scan_log_columns([spammer], [TRANSFER.topic], first, last))
    logs = list(client.scan_logs([spammer], [TRANSFER.topic], first, last))
    assert len(windows) > 1 and sum(map(len, windows)) == len(logs) == PER_BLOCK * BLOCKS
    rows = [log for window in windows for log in window.rows()]
    assert rows == logs
    by_column = [Log(*fields) for window in windows for fields in zip(
        window.address, window.topics, [bytes.fromhex(d[2:]) for d in window.data], window.block_number,
        window.log_index, window.tx_hash, window.block_hash, strict=True)]
    assert by_column == logs
    decoded = [TRANSFER.decode_columns(window.topics, window.data) for window in windows]
    assert [i for columns, kept in decoded for i in kept] == [i for w in windows for i in range(len(w))]
    assert [v for columns, _kept in decoded for v in columns["value"]] == [
        TRANSFER.decode(log.topics, log.data)["value"] for log in logs]
