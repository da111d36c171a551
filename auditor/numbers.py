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


def to_decimal(value: Any) -> Decimal | None:
    """A figure from typed data (Decimal, int, exact string); None, '' and non-finite values are None."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (decimal.InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


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
    """USD for people: cents under a million ($1,896,365.28 stays exact to the cent), whole dollars above."""
    number = to_decimal(value)
    if number is None:
        return missing
    places = 0 if abs(number) >= 1_000_000 else 2
    sign = "-" if _rounded(number, places) < 0 else ""
    return f"{sign}${_grouped(abs(number), places)}"


def usd_short(value: Any, *, missing: str = "n/a") -> str:
    """Headline USD: $14.5M, $1.9M, $980K, $12.34."""
    number = to_decimal(value)
    if number is None:
        return missing
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    for index, (scale, suffix) in enumerate(_SCALES):
        if magnitude >= scale:
            scaled = _rounded(magnitude / scale, 1 if magnitude / scale < 100 else 0)
            if scaled >= 1000 and index > 0:  # 999,960 would read 1000.0K: say 1M
                return f"{sign}$1{_SCALES[index - 1][1]}"
            return f"{sign}${format(scaled.normalize(), 'f')}{suffix}"
    return f"{sign}${_grouped(magnitude, 2)}"


def multiple(value: Any, *, unbounded: str = "unbounded") -> str:
    """An expansion ratio or leverage: 7.646209 -> 7.6x; None (division by zero backing) -> unbounded."""
    number = to_decimal(value)
    if number is None:
        return unbounded
    return f"{_grouped(number, 2 if abs(number) < 10 else 1)}x".replace(".00x", "x")


def percent(value: Any, *, missing: str = "n/a") -> str:
    """A share or a rate: 0.131 -> 13.1%; small shares keep two decimals (0.00123 -> 0.12%)."""
    number = to_decimal(value)
    if number is None:
        return missing
    scaled = number * 100
    return f"{_grouped(scaled, 1 if abs(scaled) >= 10 else 2)}%"


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


def raw_amount(raw: int, decimals: int) -> Decimal:
    """Raw token units (an int read from the chain) as whole tokens, exactly."""
    return Decimal(raw).scaleb(-decimals)
