"""Uniswap v3 pools as a price and exit-liquidity venue: spot price, TWAP, and how much can be sold into a pool.

Everything here is pure maths plus read plans (auditor.chain.plan): nothing talks to a node. The swap maths
reimplements, in Python integers, what a v3-core 1.0.1 pool computes (TickMath, SqrtPriceMath, SwapMath,
TickBitmap and the swap loop of UniswapV3Pool), with the same integer rounding and the same overflow
fallbacks, so an amount computed here is what the pool would execute, to the unit. The formulas follow the
Uniswap v3 whitepaper (section 6: sqrt prices as Q64.96, 1.0001^tick) and the v3-core library specifications
(for example: "getTickAtSqrtRatio: the greatest tick such that getSqrtRatioAtTick(tick) <= ratio").

Prices are whole quote tokens per whole base token. The pool's own price is token1 per token0 in raw units,
(sqrtPriceX96 / 2**96)**2; which side the registry's base token is, is read from the pool (token0()).
"""

from __future__ import annotations

import decimal
import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from auditor.adapters import Quote, depth_source, price_source, twap_source
from auditor.chain.plan import Plan, reads
from auditor.chain.reader import Read, ReadResult
from auditor.model import EXIT_DROPS
from auditor.numbers import context
from auditor.spec import Pool

__all__ = [
    "DEFAULT_DROPS",
    "KIND",
    "MAX_SQRT_RATIO",
    "MAX_TICK",
    "MIN_SQRT_RATIO",
    "MIN_TICK",
    "Q96",
    "Checkpoint",
    "ExitDepth",
    "OutOfRange",
    "PoolState",
    "SwapResult",
    "compute_swap_step",
    "exit_depths",
    "exit_liquidity",
    "get_amount0_delta",
    "get_amount1_delta",
    "get_next_sqrt_price_from_input",
    "get_next_sqrt_price_from_output",
    "get_sqrt_ratio_at_tick",
    "get_tick_at_sqrt_ratio",
    "initialized_ticks",
    "mean_tick",
    "next_initialized_tick_within_one_word",
    "price_of_sqrt",
    "quote",
    "read_state",
    "sell_limit",
    "simulate_swap",
    "spot",
    "twap",
]

KIND = "uniswap_v3"

# TickMath (v3-core 1.0.1): ticks are bounded so that 1.0001**tick stays within (2**-128, 2**128).
MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739  # getSqrtRatioAtTick(MIN_TICK)
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342  # getSqrtRatioAtTick(MAX_TICK)
Q96 = 1 << 96
_UINT256 = 1 << 256
_UINT160 = 1 << 160
_INT256_MAX = (1 << 255) - 1
_FEE_DENOMINATOR = 1_000_000  # fees are in hundredths of a bip (pips)

DEFAULT_DROPS: tuple[Decimal, ...] = EXIT_DROPS

# 2**128 / sqrt(1.0001)**(2**i) for i = 0..19, as Q128.128 (TickMath.getSqrtRatioAtTick's published constants:
# the binary expansion of |tick| multiplies these factors, rounding down after each product).
_TICK_FACTORS = (
    0xFFFCB933BD6FAD37AA2D162D1A594001,
    0xFFF97272373D413259A46990580E213A,
    0xFFF2E50F5F656932EF12357CF3C7FDCC,
    0xFFE5CACA7E10E4E61C3624EAA0941CD0,
    0xFFCB9843D60F6159C9DB58835C926644,
    0xFF973B41FA98C081472E6896DFB254C0,
    0xFF2EA16466C96A3843EC78B326B52861,
    0xFE5DEE046A99A2A811C461F1969C3053,
    0xFCBE86C7900A88AEDCFFC83B479AA3A4,
    0xF987A7253AC413176F2B074CF7815E54,
    0xF3392B0822B70005940C7A398E4B70F3,
    0xE7159475A2C29B7443B29C7FA6E889D9,
    0xD097F3BDFD2022B8845AD8F792AA5825,
    0xA9F746462D870FDF8A65DC1F90E061E5,
    0x70D869A156D2A1B890BB3DF62BAF32F7,
    0x31BE135F97D08FD981231505542FCFA6,
    0x9AA508B5B7A84E1C677DE54F3E99BC9,
    0x5D6AF8DEDB81196699C329225EE604,
    0x2216E584F5FA1EA926041BEDFE98,
    0x48A170391F7DC42444E8FA2,
)

SLOT0 = ("uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool")
TICK_INFO = ("uint128", "int128", "uint256", "uint256", "int56", "uint160", "uint32", "bool")
OBSERVE = ("int56[]", "uint160[]")

# Reads per round of bitmap words at most; a 10% move spans about 1,054 ticks: 5 words at tick spacing 1.
_MAX_WORDS_PER_ROUND = 256
_MAX_ROUNDS = 8


# ------------------------------------------------------------------ integer helpers (FullMath, UnsafeMath)


def _mul_div(a: int, b: int, d: int) -> int:
    """FullMath.mulDiv: floor(a*b/d) at full precision; reverts when d is 0 or the result exceeds uint256."""
    if d == 0:
        raise ArithmeticError("mulDiv by zero")
    result = a * b // d
    if result >= _UINT256:
        raise ArithmeticError("mulDiv overflow")
    return result


def _mul_div_up(a: int, b: int, d: int) -> int:
    """FullMath.mulDivRoundingUp: ceil(a*b/d); reverts like mulDiv, and when rounding up overflows."""
    result = _mul_div(a, b, d)
    if a * b % d:
        result += 1
        if result >= _UINT256:
            raise ArithmeticError("mulDivRoundingUp overflow")
    return result


def _div_up(a: int, b: int) -> int:
    """UnsafeMath.divRoundingUp (b is never 0 where the pool calls it)."""
    return -(-a // b)


def _to_uint160(value: int) -> int:
    if not 0 <= value < _UINT160:
        raise ArithmeticError("uint160 overflow")
    return value


# ------------------------------------------------------------------ TickMath


def get_sqrt_ratio_at_tick(tick: int) -> int:
    """sqrt(1.0001**tick) * 2**96, exactly as TickMath.getSqrtRatioAtTick rounds it (up, to Q64.96)."""
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise ValueError(f"tick {tick} is outside [{MIN_TICK}, {MAX_TICK}]")
    ratio = _TICK_FACTORS[0] if abs_tick & 1 else 1 << 128
    for bit in range(1, len(_TICK_FACTORS)):
        if abs_tick & (1 << bit):
            ratio = (ratio * _TICK_FACTORS[bit]) >> 128
    if tick > 0:
        ratio = (_UINT256 - 1) // ratio
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """The greatest tick whose get_sqrt_ratio_at_tick is <= sqrt_price_x96 (TickMath.getTickAtSqrtRatio's
    specification), found from a floating-point estimate corrected against the exact get_sqrt_ratio_at_tick."""
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise ValueError(f"sqrt price {sqrt_price_x96} is outside [MIN_SQRT_RATIO, MAX_SQRT_RATIO)")
    # log base sqrt(1.0001) of sqrt_price / 2**96; math.log takes big ints exactly enough for an estimate.
    estimate = (math.log(sqrt_price_x96) - 96 * math.log(2)) * 2 / math.log(1.0001)
    tick = max(MIN_TICK, min(MAX_TICK - 1, math.floor(estimate)))
    while tick > MIN_TICK and get_sqrt_ratio_at_tick(tick) > sqrt_price_x96:
        tick -= 1
    while tick < MAX_TICK and get_sqrt_ratio_at_tick(tick + 1) <= sqrt_price_x96:
        tick += 1
    return tick


# ------------------------------------------------------------------ SqrtPriceMath


def _next_sqrt_from_amount0_rounding_up(sqrt_price: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp, with its overflow fallback (which rounds differently)."""
    if amount == 0:
        return sqrt_price
    numerator1 = liquidity << 96
    product = amount * sqrt_price
    if add:
        if product < _UINT256:
            denominator = numerator1 + product
            if denominator < _UINT256:
                return _to_uint160(_mul_div_up(numerator1, sqrt_price, denominator))
        # liquidity / (liquidity / sqrtP + amount), rounded up; `.add` reverts on overflow
        divisor = numerator1 // sqrt_price + amount
        if divisor >= _UINT256:
            raise ArithmeticError("overflow in getNextSqrtPriceFromAmount0RoundingUp")
        return _to_uint160(_div_up(numerator1, divisor))
    if product >= _UINT256 or numerator1 <= product:
        raise ArithmeticError("getNextSqrtPriceFromAmount0RoundingUp: output exceeds reserves")
    return _to_uint160(_mul_div_up(numerator1, sqrt_price, numerator1 - product))


def _next_sqrt_from_amount1_rounding_down(sqrt_price: int, liquidity: int, amount: int, add: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown (both of its branches give the same quotient)."""
    if add:
        quotient = amount * Q96 // liquidity
        return _to_uint160(sqrt_price + quotient)
    quotient = _div_up(amount * Q96, liquidity)
    if sqrt_price <= quotient:
        raise ArithmeticError("getNextSqrtPriceFromAmount1RoundingDown: output exceeds reserves")
    return sqrt_price - quotient


def get_next_sqrt_price_from_input(sqrt_price: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromInput: rounds so the price never passes the exact target."""
    if sqrt_price <= 0 or liquidity <= 0:
        raise ArithmeticError("getNextSqrtPriceFromInput needs a price and liquidity")
    if zero_for_one:
        return _next_sqrt_from_amount0_rounding_up(sqrt_price, liquidity, amount_in, True)
    return _next_sqrt_from_amount1_rounding_down(sqrt_price, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_price: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    """SqrtPriceMath.getNextSqrtPriceFromOutput."""
    if sqrt_price <= 0 or liquidity <= 0:
        raise ArithmeticError("getNextSqrtPriceFromOutput needs a price and liquidity")
    if zero_for_one:
        return _next_sqrt_from_amount1_rounding_down(sqrt_price, liquidity, amount_out, False)
    return _next_sqrt_from_amount0_rounding_up(sqrt_price, liquidity, amount_out, False)


def get_amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta: liquidity * (sqrtB - sqrtA) / (sqrtA * sqrtB), rounded in two steps."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if sqrt_a <= 0:
        raise ArithmeticError("getAmount0Delta with a zero price")
    numerator1, numerator2 = liquidity << 96, sqrt_b - sqrt_a
    if round_up:
        return _div_up(_mul_div_up(numerator1, numerator2, sqrt_b), sqrt_a)
    return _mul_div(numerator1, numerator2, sqrt_b) // sqrt_a


def get_amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta: liquidity * (sqrtB - sqrtA) / 2**96."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if round_up:
        return _mul_div_up(liquidity, sqrt_b - sqrt_a, Q96)
    return _mul_div(liquidity, sqrt_b - sqrt_a, Q96)


# ------------------------------------------------------------------ SwapMath


def compute_swap_step(
    sqrt_current: int, sqrt_target: int, liquidity: int, amount_remaining: int, fee_pips: int
) -> tuple[int, int, int, int]:
    """SwapMath.computeSwapStep: (next sqrt price, amount in, amount out, fee) of one step towards the target.

    amount_remaining > 0 is an exact input (fee included), < 0 an exact output, as in the pool.
    """
    zero_for_one = sqrt_current >= sqrt_target
    exact_in = amount_remaining >= 0
    amount_in = amount_out = 0
    if exact_in:
        less_fee = _mul_div(amount_remaining, _FEE_DENOMINATOR - fee_pips, _FEE_DENOMINATOR)
        amount_in = (
            get_amount0_delta(sqrt_target, sqrt_current, liquidity, True)
            if zero_for_one
            else get_amount1_delta(sqrt_current, sqrt_target, liquidity, True)
        )
        if less_fee >= amount_in:
            sqrt_next = sqrt_target
        else:
            sqrt_next = get_next_sqrt_price_from_input(sqrt_current, liquidity, less_fee, zero_for_one)
    else:
        amount_out = (
            get_amount1_delta(sqrt_target, sqrt_current, liquidity, False)
            if zero_for_one
            else get_amount0_delta(sqrt_current, sqrt_target, liquidity, False)
        )
        if -amount_remaining >= amount_out:
            sqrt_next = sqrt_target
        else:
            sqrt_next = get_next_sqrt_price_from_output(sqrt_current, liquidity, -amount_remaining, zero_for_one)
    reached = sqrt_target == sqrt_next
    if zero_for_one:
        if not (reached and exact_in):
            amount_in = get_amount0_delta(sqrt_next, sqrt_current, liquidity, True)
        if not (reached and not exact_in):
            amount_out = get_amount1_delta(sqrt_next, sqrt_current, liquidity, False)
    else:
        if not (reached and exact_in):
            amount_in = get_amount1_delta(sqrt_current, sqrt_next, liquidity, True)
        if not (reached and not exact_in):
            amount_out = get_amount0_delta(sqrt_current, sqrt_next, liquidity, False)
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_next != sqrt_target:
        fee = amount_remaining - amount_in  # the rest of the input is all fee
    else:
        fee = _mul_div_up(amount_in, fee_pips, _FEE_DENOMINATOR - fee_pips)
    return sqrt_next, amount_in, amount_out, fee


# ------------------------------------------------------------------ TickBitmap and the swap loop


class OutOfRange(Exception):
    """The swap walked into a bitmap word that was not read; `word` is its position."""

    def __init__(self, word: int) -> None:
        super().__init__(f"tick bitmap word {word} was not read")
        self.word = word


@dataclass
class PoolState:
    """What a swap needs of a pool: slot0's price and tick, in-range liquidity, fee (pips), tick spacing, and the
    part of the tick bitmap (word position -> word) and of the initialized ticks (tick -> liquidityNet) read."""

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    tick_spacing: int
    bitmap: dict[int, int] = field(default_factory=dict)
    liquidity_net: dict[int, int] = field(default_factory=dict)


def _compress(tick: int, spacing: int) -> int:
    # Solidity's int division truncates; TickBitmap then steps negative non-multiples down: a floor division.
    return tick // spacing


def next_initialized_tick_within_one_word(
    bitmap: dict[int, int], tick: int, spacing: int, lte: bool
) -> tuple[int, bool]:
    """TickBitmap.nextInitializedTickWithinOneWord: the next initialized tick at or left of `tick` (lte) or right
    of it, looking within one 256-bit word only; else that word's edge, not initialized. Raises OutOfRange when
    the word was not read."""
    compressed = _compress(tick, spacing)
    if not lte:
        compressed += 1
    word_pos, bit_pos = compressed >> 8, compressed % 256
    if word_pos not in bitmap:
        raise OutOfRange(word_pos)
    word = bitmap[word_pos]
    if lte:
        masked = word & ((1 << (bit_pos + 1)) - 1)
        if masked:
            return (compressed - (bit_pos - (masked.bit_length() - 1))) * spacing, True
        return (compressed - bit_pos) * spacing, False
    masked = word & ~((1 << bit_pos) - 1) & (_UINT256 - 1)
    if masked:
        lsb = (masked & -masked).bit_length() - 1
        return (compressed + (lsb - bit_pos)) * spacing, True
    return (compressed + (255 - bit_pos)) * spacing, False


@dataclass(frozen=True)
class SwapResult:
    """A swap as the pool would end it: its signed deltas (positive: paid into the pool) and its final state."""

    amount0: int
    amount1: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    stopped_early: bool = False  # the walk was cut at `stop_beyond` (see simulate_swap); amounts are partial


class Checkpoint(NamedTuple):
    """The swap loop's state at the start of a step: specified amount used so far, the other side's amount so far
    (negative: paid out, for an exact input), price, tick and in-range liquidity. A swap of the same direction and
    kind whose amount exceeds `used` passes through the same checkpoint (every earlier step reached its target),
    so it can resume from there."""

    used: int
    calculated: int
    sqrt_price_x96: int
    tick: int
    liquidity: int


def simulate_swap(
    state: PoolState,
    zero_for_one: bool,
    amount_specified: int,
    sqrt_price_limit_x96: int | None = None,
    *,
    stop_beyond: int | None = None,
    checkpoints: list[Checkpoint] | None = None,
) -> SwapResult:
    """UniswapV3Pool.swap's loop on `state` (unchanged): amounts and the final price, exactly as the pool computes.

    A positive `amount_specified` is an exact input, a negative one an exact output. The default limit is the
    furthest the pool allows (MIN_SQRT_RATIO + 1 or MAX_SQRT_RATIO - 1). `stop_beyond`, a sqrt price: stop as
    soon as a step ends beyond it (below it for zero_for_one), marking the result stopped_early; the walk then
    never needs bitmap words past that price. Raises ValueError where the pool reverts ('AS', 'SPL') and
    OutOfRange when it needs a bitmap word that is not in `state`. `checkpoints`, a list: the loop's state at the
    start of every step is appended to it (see Checkpoint).
    """
    if amount_specified == 0:
        raise ValueError("AS: a swap of zero")
    limit = sqrt_price_limit_x96
    if limit is None:
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    price = state.sqrt_price_x96
    in_range = MIN_SQRT_RATIO < limit < price if zero_for_one else price < limit < MAX_SQRT_RATIO
    if not in_range:
        raise ValueError("SPL: price limit on the wrong side of the price or outside the pool's range")
    exact_in = amount_specified > 0
    remaining, calculated = amount_specified, 0
    tick, liquidity = state.tick, state.liquidity
    stopped = False
    while remaining != 0 and price != limit:
        if checkpoints is not None:
            checkpoints.append(Checkpoint(amount_specified - remaining, calculated, price, tick, liquidity))
        start = price
        tick_next, initialized = next_initialized_tick_within_one_word(
            state.bitmap, tick, state.tick_spacing, zero_for_one
        )
        tick_next = max(MIN_TICK, min(MAX_TICK, tick_next))
        sqrt_next = get_sqrt_ratio_at_tick(tick_next)
        target = limit if (sqrt_next < limit if zero_for_one else sqrt_next > limit) else sqrt_next
        price, amount_in, amount_out, fee = compute_swap_step(price, target, liquidity, remaining, state.fee)
        if exact_in:
            remaining -= amount_in + fee
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee
        if price == sqrt_next:
            if initialized:
                net = state.liquidity_net[tick_next]
                liquidity += -net if zero_for_one else net
                if liquidity < 0 or liquidity >= 1 << 128:
                    raise ArithmeticError("LS/LA: liquidity out of range")
            tick = tick_next - 1 if zero_for_one else tick_next
        elif price != start:
            tick = get_tick_at_sqrt_ratio(price)
        if stop_beyond is not None and (price < stop_beyond if zero_for_one else price > stop_beyond):
            stopped = True
            break
    if zero_for_one == exact_in:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    return SwapResult(amount0, amount1, price, tick, liquidity, stopped)


# ------------------------------------------------------------------ prices


def price_of_sqrt(sqrt_price_x96: int, base_is_token0: bool, base_decimals: int, quote_decimals: int) -> Decimal:
    """Whole quote tokens per whole base token at a pool sqrt price (exact to auditor.numbers' precision)."""
    raw = Fraction(sqrt_price_x96 * sqrt_price_x96, 1 << 192)  # token1 per token0, raw units
    if not base_is_token0:
        raw = 1 / raw
    whole = raw * Fraction(10) ** (base_decimals - quote_decimals)
    with decimal.localcontext(context()):
        return Decimal(whole.numerator) / Decimal(whole.denominator)


def mean_tick(tick_cumulative_start: int, tick_cumulative_end: int, seconds: int) -> int:
    """Arithmetic mean tick over `seconds`, rounded towards negative infinity as the v3 periphery OracleLibrary
    does (Solidity's division truncates towards zero; a negative non-integral mean is then stepped down one)."""
    if seconds <= 0:
        raise ValueError("a TWAP window must be at least one second")
    delta = tick_cumulative_end - tick_cumulative_start
    return delta // seconds  # Python's floor division is exactly that rounding


def sell_limit(sqrt_price_x96: int, drop: Fraction, base_is_token0: bool) -> int:
    """The pool sqrt price at which the base token's price has fallen by `drop` from `sqrt_price_x96`, rounded so
    that the base price there is still >= (1 - drop) times today's: the furthest integer sqrt price allowed.

    Base as token0: its price is sqrtP**2 (up to constants), the limit is the least L with L**2 >= sqrtP**2*(1-drop).
    Base as token1: its price is 1/sqrtP**2, the limit is the greatest L with L**2 <= sqrtP**2/(1-drop).
    """
    if not 0 < drop < 1:
        raise ValueError(f"a price drop must be between 0 and 1, not {drop}")
    keep = 1 - drop
    square = sqrt_price_x96 * sqrt_price_x96
    if base_is_token0:
        bound = -(-square * keep.numerator // keep.denominator)  # ceil(square * keep)
        root = math.isqrt(bound)
        return root if root * root == bound else root + 1
    return math.isqrt(square * keep.denominator // keep.numerator)


# ------------------------------------------------------------------ exit liquidity (pure part)


@dataclass(frozen=True)
class ExitDepth:
    """How much base can be sold into a pool, in one exact-input swap without a price limit, before the pool's
    price of base falls by `drop`: the largest such amount (`base_in_raw`, fee included, what the swap takes),
    the quote tokens it pays out, and the pool's sqrt price after it. Raw units and whole tokens."""

    drop: Decimal
    limit_sqrt_price_x96: int
    base_in_raw: int
    quote_out_raw: int
    end_sqrt_price_x96: int
    base_in: Decimal
    quote_out: Decimal


def _max_sale(state: PoolState, base_is_token0: bool, limit: int) -> tuple[int, SwapResult | None]:
    """The largest exact input of base whose swap (no price limit) ends at or before the limit sqrt price, and that
    swap (None for an amount of zero). A search over amounts; each candidate resumes from the last checkpoint of
    the swap to the limit that it passes, so it costs a step or two, not a walk over every tick."""
    if limit == state.sqrt_price_x96:
        return 0, None
    # The amount that drives the price exactly to the limit bounds the answer up to rounding: the unlimited swap of
    # it ends at or past the limit (every step rounds the price towards the limit).
    marks: list[Checkpoint] = []
    to_limit = simulate_swap(state, base_is_token0, _INT256_MAX, limit, checkpoints=marks)
    used = [mark.used for mark in marks]

    def within(amount: int) -> SwapResult | None:
        mark = marks[max(0, bisect_left(used, amount) - 1)]  # the last checkpoint with less used than `amount`
        resumed = simulate_swap(
            replace(state, sqrt_price_x96=mark.sqrt_price_x96, tick=mark.tick, liquidity=mark.liquidity),
            base_is_token0, amount - mark.used, stop_beyond=limit,
        )
        if resumed.stopped_early:
            return None
        if base_is_token0:
            return replace(resumed, amount0=resumed.amount0 + mark.used, amount1=resumed.amount1 + mark.calculated)
        return replace(resumed, amount0=resumed.amount0 + mark.calculated, amount1=resumed.amount1 + mark.used)

    reach = to_limit.amount0 if base_is_token0 else to_limit.amount1
    low, high = 0, reach + 1
    while within(high) is not None:
        low, high = high, reach + 2 * (high - reach)
    best: SwapResult | None = None if low == 0 else within(low)
    while high - low > 1:
        middle = (low + high) // 2
        found = within(middle)
        if found is None:
            high = middle
        else:
            low, best = middle, found
    return low, best


def exit_depths(
    state: PoolState,
    base_is_token0: bool,
    base_decimals: int,
    quote_decimals: int,
    drops: Iterable[Decimal],
) -> list[ExitDepth]:
    """exit_liquidity's arithmetic on a read pool state (raises OutOfRange when a bitmap word is missing)."""
    found: list[ExitDepth] = []
    for drop in drops:
        limit = _clamped_limit(state.sqrt_price_x96, drop, base_is_token0)
        amount, swap = _max_sale(state, base_is_token0, limit)
        if swap is None:
            quote_out, end = 0, state.sqrt_price_x96
        else:
            quote_out = -(swap.amount1 if base_is_token0 else swap.amount0)
            end = swap.sqrt_price_x96
        with decimal.localcontext(context()):
            found.append(
                ExitDepth(drop, limit, amount, quote_out, end,
                          Decimal(amount).scaleb(-base_decimals), Decimal(quote_out).scaleb(-quote_decimals))
            )
    return found


def _clamped_limit(sqrt_price_x96: int, drop: Decimal, base_is_token0: bool) -> int:
    limit = sell_limit(sqrt_price_x96, Fraction(drop), base_is_token0)
    # A swap can never take the price to MIN_SQRT_RATIO / MAX_SQRT_RATIO themselves.
    if base_is_token0:
        return max(limit, MIN_SQRT_RATIO + 1)
    return min(limit, MAX_SQRT_RATIO - 1)


def _words_to(state: PoolState, base_is_token0: bool, limit: int) -> list[int]:
    """Bitmap word positions a sale from the current price to `limit` can touch (one word of margin)."""
    spacing = state.tick_spacing
    limit_tick = get_tick_at_sqrt_ratio(min(max(limit, MIN_SQRT_RATIO), MAX_SQRT_RATIO - 1))
    if base_is_token0:  # price falls: words from the current one leftwards
        first, last = _compress(limit_tick - 1, spacing) >> 8, _compress(state.tick, spacing) >> 8
        return list(range(first - 1, last + 1))
    first, last = (_compress(state.tick, spacing) + 1) >> 8, (_compress(limit_tick, spacing) + 1) >> 8
    return list(range(first, last + 2))


def initialized_ticks(word_pos: int, word: int, spacing: int) -> list[int]:
    """The ticks a bitmap word marks initialized."""
    ticks: list[int] = []
    bit = 0
    while word:
        if word & 1:
            ticks.append(((word_pos << 8) + bit) * spacing)
        word >>= 1
        bit += 1
    return ticks


# ------------------------------------------------------------------ read plans


def _pool_reads(pool: Pool) -> list[Read]:
    return [
        Read(pool.address, "slot0()", returns=SLOT0),
        Read(pool.address, "token0()", returns=("address",)),
        Read(pool.address, "token1()", returns=("address",)),
        Read(pool.base, "decimals()", returns=("uint8",)),
        Read(pool.quote, "decimals()", returns=("uint8",)),
    ]


@dataclass(frozen=True)
class _Head:
    """The first round's answers: the price and which side the base token is."""

    sqrt_price_x96: int
    tick: int
    base_is_token0: bool
    base_decimals: int
    quote_decimals: int


def _head(pool: Pool, results: Sequence[ReadResult]) -> tuple[_Head | None, str]:
    if not all(r.ok for r in results[:5]):
        return None, "could not be read"
    slot0, token0, token1 = results[0].value, str(results[1].one).lower(), str(results[2].one).lower()
    base, quote_token = pool.base.lower(), pool.quote.lower()
    if {token0, token1} != {base, quote_token}:
        return None, "does not pair its base and quote tokens"
    if slot0[0] == 0:
        return None, "is empty"
    return _Head(int(slot0[0]), int(slot0[1]), token0 == base, int(results[3].one), int(results[4].one)), ""


@price_source(KIND)
def spot(pool: Pool) -> Plan[Quote]:
    """The registry's `kind: uniswap_v3` pools as market prices (the audit's and the oracle checks' samples):
    `quote`'s spot price with the reads it came from, and whether the node failed to answer."""
    results = yield from reads([*_pool_reads(pool), Read(pool.address, "liquidity()", returns=("uint128",))])
    failed = Quote.of(results)
    if failed is not None:
        return failed
    head, reason = _head(pool, results)
    if head is None:
        return Quote(None, reason, results=tuple(results))
    if results[5].one == 0:
        return Quote(None, "has no liquidity at its price", results=tuple(results))
    price = price_of_sqrt(head.sqrt_price_x96, head.base_is_token0, head.base_decimals, head.quote_decimals)
    return Quote(price, results=tuple(results))


def quote(pool: Pool) -> Plan[tuple[Decimal | None, str]]:
    """Spot price of the pool's base token: whole quote tokens per whole base token from slot0's sqrtPriceX96,
    exact to auditor.numbers' precision; None and why when there is none ("could not be read: ...", "is empty"
    for an uninitialized pool, "has no liquidity at its price" when nothing backs the price and anyone can move
    it). One round of reads: slot0, token0, token1, liquidity and both tokens' decimals."""
    found = yield from spot(pool)
    return found.price, found.why


@twap_source(KIND)
def twap(pool: Pool, seconds: int) -> Plan[tuple[Decimal | None, str]]:
    """Time-weighted average price of base, in whole quote tokens per whole base token, over the `seconds` before
    the read block, from the pool's oracle: observe([seconds, 0]) gives tick cumulatives, their difference over
    `seconds` is the arithmetic mean tick, rounded towards negative infinity (see mean_tick), and the price is
    that tick's, get_sqrt_ratio_at_tick(mean)**2 / 2**192 (1.0001**tick as the pool rounds it). None and why when
    the window reaches past the oldest observation the pool keeps ("window exceeds the pool's observations": the
    pool reverts 'OLD'; raise its observationCardinalityNext to keep more), or it cannot be read. One round of reads."""
    if seconds <= 0:
        return None, "a TWAP window must be at least one second"
    results = yield from reads(
        [*_pool_reads(pool), Read(pool.address, "observe(uint32[])", args=([seconds, 0],), returns=OBSERVE)]
    )
    head, reason = _head(pool, results)
    if head is None:
        return None, reason
    observed = results[5]
    if not observed.ok:
        # An initialized pool's observe reverts only with 'OLD' (a target older than its oldest observation);
        # the reader keeps just the start of revert data, so a revert is read as that.
        if not observed.unavailable:
            return None, "window exceeds the pool's observations"
        return None, "could not be read"
    cumulatives = observed.value[0]
    tick = mean_tick(int(cumulatives[0]), int(cumulatives[1]), seconds)
    return price_of_sqrt(get_sqrt_ratio_at_tick(tick), head.base_is_token0, head.base_decimals, head.quote_decimals), ""


@depth_source(KIND)
def exit_liquidity(
    pool: Pool, drops: Sequence[Decimal] = DEFAULT_DROPS
) -> Plan[tuple[list[ExitDepth] | None, str]]:
    """For each fraction in `drops` (each in (0, 1)): the most base that can be sold into the pool in one swap
    before the pool's price of base falls by that fraction, and the quote tokens that sale pays out, computed as
    the pool would execute it (fee included, ticks crossed with their liquidityNet). See ExitDepth.

    Rounds of reads: (1) slot0, tokens, decimals, liquidity, fee, tick spacing; (2) every bitmap word between
    today's tick and the largest drop's limit; (3) ticks() of every initialized tick those words mark. More
    rounds only when a walk needs words beyond them (it does not, by construction, but the maths decides).
    None and why when the pool has no price or cannot be read.
    """
    wanted = [Decimal(d) for d in drops]
    if any(not 0 < d < 1 for d in wanted):
        return None, "a price drop must be between 0 and 1"
    results = yield from reads(
        [
            *_pool_reads(pool),
            Read(pool.address, "liquidity()", returns=("uint128",)),
            Read(pool.address, "fee()", returns=("uint24",)),
            Read(pool.address, "tickSpacing()", returns=("int24",)),
        ]
    )
    head, reason = _head(pool, results)
    if head is None:
        return None, reason
    if not all(r.ok for r in results[5:]):
        return None, "could not be read"
    state = PoolState(head.sqrt_price_x96, head.tick, int(results[5].one), int(results[6].one),
                      int(results[7].one))
    if not wanted:
        return [], ""
    furthest = max(wanted)
    words = _words_to(state, head.base_is_token0, _clamped_limit(state.sqrt_price_x96, furthest,
                                                                  head.base_is_token0))
    for _round in range(_MAX_ROUNDS):
        ok, reason = yield from _read_words(pool.address, state, words)
        if not ok:
            return None, reason
        try:
            return exit_depths(state, head.base_is_token0, head.base_decimals, head.quote_decimals, wanted), ""
        except OutOfRange as missing:
            words = [missing.word]
    return None, "needs more of the tick bitmap than the reader fetches"


def read_state(address: str, words: Sequence[int]) -> Plan[PoolState | None]:
    """A pool's swap state with bitmap `words` and their initialized ticks (None when a read fails): three rounds.
    For tests and tools that simulate arbitrary swaps with simulate_swap."""
    results = yield from reads([
        Read(address, "slot0()", returns=SLOT0),
        Read(address, "liquidity()", returns=("uint128",)),
        Read(address, "fee()", returns=("uint24",)),
        Read(address, "tickSpacing()", returns=("int24",)),
    ])
    if not all(r.ok for r in results):
        return None
    state = PoolState(int(results[0].value[0]), int(results[0].value[1]), int(results[1].one), int(results[2].one),
                      int(results[3].one))
    ok, _reason = yield from _read_words(address, state, words)
    return state if ok else None


def _read_words(address: str, state: PoolState, words: Sequence[int]) -> Plan[tuple[bool, str]]:
    """Read bitmap `words` (at most _MAX_WORDS_PER_ROUND a round), then every initialized tick in them."""
    todo = [w for w in dict.fromkeys(words) if w not in state.bitmap and -(1 << 15) <= w < 1 << 15]
    if not todo and words:
        return False, "needs a tick bitmap word outside the pool's range"
    fresh: list[int] = []
    for start in range(0, len(todo), _MAX_WORDS_PER_ROUND):
        chunk = todo[start : start + _MAX_WORDS_PER_ROUND]
        answers = yield from reads([Read(address, "tickBitmap(int16)", args=(w,)) for w in chunk])
        if not all(a.ok for a in answers):
            return False, "could not be read"
        for word, answer in zip(chunk, answers, strict=True):
            state.bitmap[word] = int(answer.one)
            fresh += initialized_ticks(word, int(answer.one), state.tick_spacing)
    if fresh:
        answers = yield from reads([Read(address, "ticks(int24)", args=(t,), returns=TICK_INFO) for t in fresh])
        if not all(a.ok for a in answers):
            return False, "could not be read"
        for tick, answer in zip(fresh, answers, strict=True):
            state.liquidity_net[tick] = int(answer.value[1])
    return True, ""
