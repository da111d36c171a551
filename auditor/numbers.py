"""The one way figures are spelled: exact strings for data (JSON), rounded text for people (every other output)."""

from __future__ import annotations

import decimal
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, overload

# Significant digits kept by every computation and by the exact spelling: far beyond any token's decimals, so
# the JSON never rounds a figure a reader could recompute from the evidence.
PRECISION = 60

_SCALES = ((Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "K"))


def context() -> decimal.Context:
    # Default traps (InvalidOperation, DivisionByZero, Overflow) stay on: a bug must raise, never leak a NaN.
    return decimal.Context(prec=PRECISION, rounding=ROUND_HALF_EVEN)


# Numbers whose exponent is beyond this are not figures (formatting "1e999999999" would print a billion digits).
MAX_EXPONENT = 60


def to_decimal(value: Any) -> Decimal | None:
    """A figure from typed data (Decimal, int, float, exact text); None for anything else or absurd exponents."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except decimal.InvalidOperation:
            return None
    else:
        return None
    if not number.is_finite() or (number and abs(number.adjusted()) > MAX_EXPONENT):
        return None
    return number


@overload
def exact(value: Decimal | int) -> str: ...


@overload
def exact(value: None) -> None: ...


@overload
def exact(value: Decimal | int | None) -> str | None: ...


def exact(value: Decimal | int | None) -> str | None:
    """The data spelling of a figure: every significant digit, plain notation, no trailing zeros ('1234.5').

    One spelling per value, so canonical JSON (and with it a signed digest) is the same on every run.
    """
    if value is None:
        return None
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"a figure cannot be {number}")
    if number.is_zero():
        return "0"
    with decimal.localcontext(context()) as ctx:
        ctx.prec = max(PRECISION, number.adjusted() + 1)
        text = format(number.normalize(ctx), "f")
    return text


def _rounded(number: Decimal, places: int) -> Decimal:
    with decimal.localcontext(context()) as ctx:
        ctx.prec = max(PRECISION, number.adjusted() + places + 2)
        result = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return abs(result) if result.is_zero() else result


def _grouped(number: Decimal, places: int) -> str:
    return format(_rounded(number, places), f",.{places}f")


def usd(value: Any, *, missing: str = "n/a") -> str:
    """USD for people, to the cent with thousands separators: $1,896,382.37."""
    number = to_decimal(value)
    if number is None:
        return missing
    sign = "-" if _rounded(number, 2) < 0 else ""
    return f"{sign}${_grouped(abs(number), 2)}"


def short(value: Any, *, missing: str = "n/a") -> str:
    """Big figures for headlines, two or three significant figures: 14500000 -> 14.5M, 1896364.66 -> 1.9M."""
    number = to_decimal(value)
    if number is None:
        return missing
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    if magnitude == 0:
        return "0"
    for index, (scale, suffix) in enumerate((*_SCALES, (Decimal(1), ""))):
        if magnitude >= scale or scale == 1:
            text = _significant(magnitude / scale)
            if text == "1000" and index > 0:  # 999,960 rounds to 1000K: say 1M
                return f"{sign}1{_SCALES[index - 1][1]}"
            return f"{sign}{text}{suffix}"
    raise AssertionError("unreachable: the last scale is 1")  # pragma: no cover


def _significant(number: Decimal) -> str:
    places = 0 if number >= 100 else (1 if number >= 1 else 2)
    text = format(_rounded(number, places), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def multiple(value: Any, *, unbounded: str = "unbounded") -> str:
    """An expansion ratio or leverage: 7.646209 -> 7.6x (whole above 100); None (zero backing) -> unbounded."""
    number = to_decimal(value)
    if number is None:
        return unbounded
    return f"{_grouped(number, 0 if abs(number) >= 100 else 1)}x"


def percent(value: Any, *, missing: str = "n/a") -> str:
    """A share or a rate given as a fraction: 0.130784 -> 13.1%."""
    number = to_decimal(value)
    if number is None:
        return missing
    return f"{format(_rounded(number * 100, 1), 'f')}%"


def digits(value: Any, *, missing: str = "n/a") -> str:
    """Every digit given, with thousands separators (raw amounts in evidence): 14500000.5 -> 14,500,000.5."""
    number = to_decimal(value)
    return missing if number is None else format(number, ",f")


def apy(value: Any, *, missing: str = "n/a") -> str:
    """An annual rate: 0.18 -> 18.00% APY."""
    number = to_decimal(value)
    if number is None:
        return missing
    return f"{_grouped(number * 100, 2)}% APY"


def tokens(value: Any, symbol: str = "", *, missing: str = "n/a") -> str:
    """A token amount for people: up to 2 decimals above 1, 6 below, with the symbol: 1,234.57 xUSD."""
    number = to_decimal(value)
    if number is None:
        return missing
    places = 2 if abs(number) >= 1 or number.is_zero() else 6
    text = _grouped(number, places)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {symbol}".rstrip()
