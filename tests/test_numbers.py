"""The one numbers module: exact data spellings and the display formats every output shares."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from auditor import numbers


def test_exact_spelling_keeps_every_digit_and_one_form_per_value() -> None:
    assert numbers.exact(Decimal("1234.50")) == "1234.5"
    assert numbers.exact(Decimal("-0.000")) == "0"
    assert numbers.exact(Decimal("1e40")) == "1" + "0" * 40
    assert numbers.exact(Decimal("0.2499999999")) == "0.2499999999"
    assert numbers.exact(None) is None
    assert numbers.exact(200) == "200"
    assert numbers.exact(Decimal("1896365.283412")) == "1896365.283412"


def test_display_formats() -> None:
    assert numbers.usd(Decimal("1896365.283412")) == "$1,896,365.28"
    assert numbers.usd(Decimal("14500000")) == "$14,500,000.00"
    assert numbers.usd(Decimal("-0.001")) == "$0.00" and numbers.usd("-1.5") == "-$1.50"
    assert numbers.usd(None) == "n/a" and numbers.usd("1e999999") == "n/a"
    assert numbers.short(Decimal("14500000")) == "14.5M" and numbers.short(Decimal("1896364.66")) == "1.9M"
    assert numbers.short(Decimal("999960")) == "1M"
    assert numbers.multiple(Decimal("7.646209")) == "7.6x"
    assert numbers.multiple(Decimal("123.4")) == "123x"
    assert numbers.multiple(None) == "unbounded"
    assert numbers.percent(Decimal("0.130784")) == "13.1%"
    assert numbers.apy(Decimal("0.18")) == "18.00% APY"
    assert numbers.tokens(Decimal("1234.5678"), "xUSD") == "1,234.57 xUSD"
    assert numbers.tokens(Decimal("0.000001"), "WETH") == "0.000001 WETH"
    assert numbers.digits("14500000.5") == "14,500,000.5"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=18, min_value=-10**30, max_value=10**30))
def test_exact_round_trips(value: Decimal) -> None:
    text = numbers.exact(value)
    assert Decimal(text) == value
    assert "E" not in text and "e" not in text
    assert numbers.exact(Decimal(text)) == text
