"""The hand-laid static codec (auditor/chain/abi.py, auditor/chain/multicall.py) against eth-abi as the oracle:
identical bytes, identical values, and an exception (of the same eth-abi type) exactly when eth-abi raises one."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auditor.chain.abi as abi_module
import auditor.chain.multicall as multicall_module
from auditor.addresses import to_checksum
from auditor.chain.abi import _static_type, decode_values, encode_call, parse_signature, split_types
from auditor.chain.multicall import AGGREGATE3_SELECTOR, decode_aggregate3, encode_aggregate3

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ELEMENTARY = st.sampled_from(
    [f"uint{n}" for n in range(8, 257, 8)]
    + [f"int{n}" for n in range(8, 257, 8)]
    + [f"bytes{n}" for n in range(1, 33)]
    + ["address", "bool"]
)


def _tuple_of(parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(parts, min_size=1, max_size=4).map(lambda names: "(" + ",".join(names) + ")")


LEVEL1 = _tuple_of(ELEMENTARY)
LEVEL2 = _tuple_of(st.one_of(ELEMENTARY, LEVEL1))
STATIC_TYPE = st.one_of(ELEMENTARY, ELEMENTARY, LEVEL1, LEVEL2)  # depth <= 2, elementary types twice as likely
TYPES = st.lists(STATIC_TYPE, max_size=5).map(tuple)


def _address_value(raw: bytes) -> st.SearchStrategy[Any]:
    text = raw.hex()
    return st.sampled_from([
        "0x" + text, to_checksum_address("0x" + text), "0x" + text.upper(), text, raw, bytearray(raw),
    ])


def values_for(kind: str) -> st.SearchStrategy[Any]:
    """Valid values of a static type, in every form eth-abi accepts."""
    if kind.startswith("("):
        return st.tuples(*(values_for(part) for part in split_types(kind[1:-1])))
    if kind == "address":
        return st.binary(min_size=20, max_size=20).flatmap(_address_value)
    if kind == "bool":
        return st.booleans()
    if kind.startswith("uint"):
        bits = int(kind[4:])
        return st.one_of(st.integers(0, 2**bits - 1), st.sampled_from([0, 2**bits - 1]))
    if kind.startswith("int"):
        bits = int(kind[3:])
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return st.one_of(st.integers(low, high), st.sampled_from([low, high, -1]))
    size = int(kind[5:])
    return st.one_of(st.binary(max_size=size), st.binary(max_size=size).map(bytearray))


def wild_values_for(kind: str) -> st.SearchStrategy[Any]:
    """Values eth-abi may or may not take for the type: wrong kinds, out of range, wrong lengths."""
    wrong = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**257), 2**257), st.floats(allow_nan=False), st.text(max_size=4),
        st.binary(max_size=34),
    )
    if kind.startswith("("):
        parts = split_types(kind[1:-1])
        return st.one_of(
            wrong,
            st.tuples(*(wild_values_for(part) for part in parts)),
            st.lists(st.integers(0, 1), max_size=len(parts) + 1),
            st.tuples(*(wild_values_for(part) for part in parts)).map(list),
        )
    if kind == "address":
        hex_text = st.text("0123456789abcdefABCDEFxX", min_size=38, max_size=43)
        return st.one_of(wrong, values_for(kind), hex_text, st.binary(min_size=19, max_size=21))
    if kind.startswith("uint"):
        bits = int(kind[4:])
        return st.one_of(wrong, values_for(kind), st.sampled_from([-1, 2**bits, True]))
    if kind.startswith("int"):
        bits = int(kind[3:])
        return st.one_of(wrong, values_for(kind), st.sampled_from([-(2 ** (bits - 1)) - 1, 2 ** (bits - 1)]))
    if kind == "bool":
        return st.one_of(wrong, st.sampled_from([0, 1]))
    size = int(kind[5:])
    return st.one_of(wrong, values_for(kind), st.binary(min_size=size, max_size=size + 2))


def checksummed(kind: str, value: Any) -> Any:
    """eth-abi's decoded value with addresses checksummed by eth-utils (independently of the code under test)."""
    if kind == "address":
        return to_checksum_address(value)
    if kind.startswith("("):
        return tuple(checksummed(k, v) for k, v in zip(split_types(kind[1:-1]), value, strict=True))
    return value


def oracle_decode(types: tuple[str, ...], data: bytes) -> tuple[Any, ...]:
    return tuple(checksummed(kind, value) for kind, value in zip(types, decode(list(types), data), strict=True))


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except Exception as exc:
        return "raised", type(exc)


def signature_of(types: tuple[str, ...]) -> str:
    return f"probe({','.join(types)})"


@SETTINGS
@given(st.data())
def test_encode_is_byte_identical_to_eth_abi(data: st.DataObject) -> None:
    types = data.draw(TYPES)
    assert all(_static_type(kind) is not None for kind in types)
    values = data.draw(st.tuples(*(values_for(kind) for kind in types)))
    selector, _ = parse_signature(signature_of(types))
    expected = selector + (encode(list(types), list(values)) if types else b"")
    assert encode_call(signature_of(types), *values) == expected


@SETTINGS
@given(st.data())
def test_encode_refuses_exactly_what_eth_abi_refuses(data: st.DataObject) -> None:
    types = data.draw(TYPES.filter(bool))
    aligned = st.tuples(*(wild_values_for(kind) for kind in types)).map(list)
    misaligned = st.lists(st.one_of(*(wild_values_for(kind) for kind in types)), max_size=len(types) + 1)
    values = data.draw(st.one_of(aligned, aligned, aligned, misaligned))
    selector, _ = parse_signature(signature_of(types))
    expected = outcome(lambda: selector + encode(list(types), list(values)))
    assert outcome(encode_call, signature_of(types), *values) == expected


EDGE_VALUES: list[Any] = [
    0, 1, -1, 127, 128, -128, -129, 255, 256, 2**255 - 1, 2**255, -(2**255), -(2**255) - 1, 2**256 - 1, 2**256,
    True, False, None, 1.0, "1", "0x" + "ab" * 20, "0X" + "AB" * 20, "ab" * 20, "0x" + "ab" * 19, "0x" + "ab" * 21,
    "0x" + "ab" * 20 + "\n", "0x" + "g" * 40, b"", b"\x01", b"\x01" * 20, bytearray(20), b"\x01" * 32, b"\x01" * 33,
    (), (1,), [1, 2], "",
]


@pytest.mark.parametrize("kind", ["uint8", "uint256", "int8", "int256", "bool", "address", "bytes1", "bytes20",
                                  "bytes32", "(uint8,bool)"])
def test_edge_values_encode_like_eth_abi(kind: str) -> None:
    for value in EDGE_VALUES:
        expected = outcome(lambda value=value: parse_signature(f"f({kind})")[0] + encode([kind], [value]))
        assert outcome(encode_call, f"f({kind})", value) == expected, value


@SETTINGS
@given(st.data())
def test_decode_gives_eth_abi_values_with_checksummed_addresses(data: st.DataObject) -> None:
    types = data.draw(TYPES)
    values = data.draw(st.tuples(*(values_for(kind) for kind in types)))
    encoded = encode(list(types), list(values)) + data.draw(st.binary(max_size=40))  # trailing bytes are ignored
    assert decode_values(types, encoded) == oracle_decode(types, encoded)


def _mutated(encoded: bytes, data: st.DataObject) -> bytes:
    action = data.draw(st.sampled_from(["truncate", "flip", "extend", "misalign", "garbage"]))
    if action == "truncate":
        return encoded[: data.draw(st.integers(0, max(len(encoded) - 1, 0)))]
    if action == "flip" and encoded:
        at = data.draw(st.integers(0, len(encoded) - 1))
        return encoded[:at] + bytes([encoded[at] ^ data.draw(st.integers(1, 255))]) + encoded[at + 1 :]
    if action == "extend":
        return encoded + data.draw(st.binary(min_size=1, max_size=64))
    if action == "misalign":
        shift = data.draw(st.integers(1, 31))
        return encoded[shift:] if data.draw(st.booleans()) else bytes(shift) + encoded
    return data.draw(st.binary(max_size=len(encoded) + 64))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_decode_raises_if_and_only_if_eth_abi_raises(data: st.DataObject) -> None:
    types = data.draw(TYPES)
    values = data.draw(st.tuples(*(values_for(kind) for kind in types)))
    raw = _mutated(encode(list(types), list(values)), data)
    assert outcome(decode_values, types, raw) == outcome(oracle_decode, types, raw)


@pytest.mark.parametrize("kind", ["uint8", "uint128", "int8", "int24", "int256", "bool", "address", "bytes4",
                                  "bytes31"])
def test_every_word_of_a_narrow_type_against_eth_abi(kind: str) -> None:
    # Words at the edges of each type's range, and words with one dirty byte at each position.
    words = [bytes(32), b"\xff" * 32, (1).to_bytes(32, "big"), (2).to_bytes(32, "big")]
    words += [bytes(at) + b"\x80" + bytes(31 - at) for at in range(32)]
    words += [b"\xff" * at + b"\x7f" + b"\xff" * (31 - at) for at in range(32)]
    for word in words:
        assert outcome(decode_values, (kind,), word) == outcome(oracle_decode, (kind,), word), word.hex()


@pytest.mark.parametrize("kind", ["uint", "int", "uint7", "uint264", "uint08", "bytes0", "bytes33", "()",
                                  "(uint8, bool)", "(uint8,)", "uint256[2]", "(uint8)[1]", "string", "bytes",
                                  "address[]", "(uint256,string)", "fixed128x18", "((uint8)", "(uint8))", "uint8 "])
def test_types_outside_the_fast_path_go_to_eth_abi(kind: str) -> None:
    assert _static_type(kind) is None
    data = encode(["uint256"], [32]) + encode(["uint256"], [1]) + bytes(64)
    assert outcome(decode_values, (kind,), data) == outcome(oracle_decode, (kind,), data)


def test_dynamic_types_still_decode_through_eth_abi() -> None:
    sender = "0x1597E4B7cF6D2877A1d690b6088668afDb045763"
    data = encode(["(uint256,string)", "address[]"], [(5, "x"), [sender.lower()]])
    assert decode_values(("(uint256,string)", "address[]"), data) == ((5, "x"), (sender,))
    assert decode_values(("address",), bytearray(encode(["address"], [sender]))) == (sender,)


COMMON_READS = [
    ("balanceOf(address)", ("0x1597E4B7cF6D2877A1d690b6088668afDb045763",)),
    ("getReserveData(address)", ("0x1597e4b7cf6d2877a1d690b6088668afdb045763",)),
    ("getBlockHash(uint256)", (123,)),
    ("ticks(int24)", (-887272,)),
    ("market(bytes32)", (b"\x01" * 32,)),
    ("allowance(address,address)", ("0x" + "ab" * 20, "0x" + "cd" * 20)),
    ("f((uint128,bool),uint8)", ((1, True), 2)),
]
COMMON_RETURNS = [
    ("uint256",), ("uint8",), ("address",), ("bool",), ("bytes32",), ("int24",), ("uint128", "uint128", "uint128"),
    ("(uint128,uint128,uint128)",), ("(address,address,address,address,uint256)",), ("uint160", "int24", "uint16"),
]


def test_common_types_never_fall_back_to_eth_abi(monkeypatch: pytest.MonkeyPatch) -> None:
    expected_calls = [(sig, encode_call(sig, *args)) for sig, args in COMMON_READS]
    payloads = {types: bytes(32 * 5) for types in COMMON_RETURNS}
    expected_values = {types: decode_values(types, payload) for types, payload in payloads.items()}

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("eth-abi called on the fast path")

    monkeypatch.setattr(abi_module, "encode", refuse)
    monkeypatch.setattr(abi_module, "decode", refuse)
    abi_module._static_encoder.cache_clear()
    abi_module._static_decoder.cache_clear()
    abi_module._static_type.cache_clear()
    abi_module._call_encoder.cache_clear()
    for (sig, args), (_, data) in zip(COMMON_READS, expected_calls, strict=True):
        assert encode_call(sig, *args) == data
    for types, payload in payloads.items():
        assert decode_values(types, payload) == expected_values[types]
    with pytest.raises(AssertionError, match="fast path"):
        decode_values(("string",), payload)  # the patch is live: only dynamic types reach eth-abi
    assert not hasattr(multicall_module, "encode")
    assert encode_aggregate3([("0x" + "ab" * 20, True, b"\x01")])[:4] == AGGREGATE3_SELECTOR


def _target() -> st.SearchStrategy[Any]:
    return st.binary(min_size=20, max_size=20).flatmap(_address_value)


CALLS = st.lists(
    st.tuples(_target(), st.one_of(st.booleans(), st.integers(0, 2)),
              st.one_of(st.binary(max_size=100), st.just(b""), st.binary(min_size=500, max_size=3000))),
    max_size=12,
)


@SETTINGS
@given(CALLS)
def test_encode_aggregate3_is_byte_identical_to_eth_abi(calls: list[tuple[Any, Any, bytes]]) -> None:
    payload = [(target, bool(allow), bytes(data)) for target, allow, data in calls]
    assert encode_aggregate3(calls) == AGGREGATE3_SELECTOR + encode(["(address,bool,bytes)[]"], [payload])


def test_encode_aggregate3_long_and_empty_calls() -> None:
    calls = [("0x" + "11" * 20, False, b""), ("0x" + "22" * 20, True, bytes(range(256)) * 40),
             ("0x" + "33" * 20, True, b"\x07" * 32), ("0x" + "44" * 20, True, b"\x07" * 33)]
    payload = [(t, bool(a), d) for t, a, d in calls]
    assert encode_aggregate3(calls) == AGGREGATE3_SELECTOR + encode(["(address,bool,bytes)[]"], [payload])
    assert encode_aggregate3([]) == AGGREGATE3_SELECTOR + encode(["(address,bool,bytes)[]"], [[]])


@SETTINGS
@given(st.one_of(st.text(max_size=44), st.binary(max_size=22), st.integers(), st.none()))
def test_encode_aggregate3_refuses_targets_eth_abi_refuses(target: Any) -> None:
    calls = [(target, True, b"\x01\x02")]
    expected = outcome(lambda: AGGREGATE3_SELECTOR + encode(["(address,bool,bytes)[]"], [calls]))
    assert outcome(encode_aggregate3, calls) == expected


def reference_decode_aggregate3(data: bytes) -> list[tuple[bool, bytes]]:
    """decode_aggregate3 as it was before the codec (one bounds-checked word read at a time): the reference."""

    def word(at: int) -> int:
        if at < 0 or at + 32 > len(data):
            raise ValueError("read past the end")
        return int.from_bytes(data[at : at + 32], "big")

    if word(0) != 32:
        raise ValueError("the array does not follow its offset")
    count = word(32)
    if count > (len(data) - 64) // 32:
        raise ValueError("cannot fit")
    out = []
    for index in range(count):
        offset = word(64 + 32 * index)
        if offset < 32 * count:
            raise ValueError("points into the heads")
        item = 64 + offset
        success = word(item)
        if success > 1 or word(item + 32) != 64:
            raise ValueError("not a (bool, bytes) tuple")
        size = word(item + 64)
        end = item + 96 + size
        padded = end + (-size) % 32
        if padded > len(data) or any(data[end:padded]):
            raise ValueError("badly padded")
        out.append((bool(success), data[item + 96 : end]))
    return out


RESULTS = st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=70), st.binary(min_size=300, max_size=600))),
                   max_size=6)


# Every result one word (balances, prices): the layout decode_aggregate3 reads in bulk before its general walk.
WORD_RESULTS = st.lists(st.tuples(st.booleans(), st.binary(min_size=32, max_size=32)), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(RESULTS, WORD_RESULTS), st.data())
def test_decode_aggregate3_accepts_and_refuses_like_before(results: list[tuple[bool, bytes]],
                                                           data: st.DataObject) -> None:
    encoded = encode(["(bool,bytes)[]"], [results])
    assert decode_aggregate3(encoded) == results
    raw = _mutated(encoded, data)
    ours, reference = outcome(decode_aggregate3, raw), outcome(reference_decode_aggregate3, raw)
    assert ours == reference
    if ours[0] == "ok":  # never looser than eth-abi
        assert [(bool(ok), bytes(b)) for ok, b in decode(["(bool,bytes)[]"], raw)[0]] == ours[1]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.sampled_from(["lower", "upper", "mixed"]))
def test_eip55_checksum_equals_eth_utils(raw: bytes, case: str) -> None:
    """The integer-step EIP-55 (auditor.addresses) against eth_utils' reference, on any address in any case."""
    text = "0x" + raw.hex()
    given_text = {"lower": text, "upper": "0x" + raw.hex().upper(), "mixed": to_checksum_address(text)}[case]
    assert to_checksum(given_text) == to_checksum_address(text)
