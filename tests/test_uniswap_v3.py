"""Uniswap v3 on anvil, against the real v3-core 1.0.1 bytecode: spot price, TWAP and exit liquidity computed by
auditor.adapters.uniswap_v3 equal what the pools themselves report and execute, to the unit."""

from __future__ import annotations

import decimal
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.adapters import uniswap_v3 as v3
from auditor.chain.plan import Plan, run_plan
from auditor.chain.reader import ChainClient
from auditor.chain.rpc import HttpTransport, Stats
from auditor.lab.deploy import Contract, deploy_lab_token
from auditor.lab.node import rpc
from auditor.lab.uniswap import Swap, UniswapLab, block_timestamp, deploy_uniswap, mine, set_next_timestamp
from auditor.numbers import context
from auditor.spec import Pool
from tests.conftest import Lab

BIG = 10**45  # raw units minted to the trader of every token
DROPS = v3.DEFAULT_DROPS


# ------------------------------------------------------------------ pure maths


def test_tick_math_at_the_bounds_and_zero() -> None:
    assert v3.get_sqrt_ratio_at_tick(v3.MIN_TICK) == v3.MIN_SQRT_RATIO
    assert v3.get_sqrt_ratio_at_tick(v3.MAX_TICK) == v3.MAX_SQRT_RATIO
    assert v3.get_sqrt_ratio_at_tick(0) == v3.Q96
    assert v3.get_tick_at_sqrt_ratio(v3.MIN_SQRT_RATIO) == v3.MIN_TICK
    assert v3.get_tick_at_sqrt_ratio(v3.MAX_SQRT_RATIO - 1) == v3.MAX_TICK - 1
    assert v3.get_tick_at_sqrt_ratio(v3.Q96) == 0
    assert v3.get_tick_at_sqrt_ratio(v3.Q96 - 1) == -1
    for bad in (v3.MIN_TICK - 1, v3.MAX_TICK + 1):
        with pytest.raises(ValueError):
            v3.get_sqrt_ratio_at_tick(bad)
    for bad in (v3.MIN_SQRT_RATIO - 1, v3.MAX_SQRT_RATIO):
        with pytest.raises(ValueError):
            v3.get_tick_at_sqrt_ratio(bad)


@pytest.mark.parametrize("tick", [-887272, -500000, -200311, -60, -1, 1, 60, 131224, 500000, 887271])
def test_tick_math_is_sqrt_1_0001_pow_tick_and_inverts(tick: int) -> None:
    ratio = v3.get_sqrt_ratio_at_tick(tick)
    with decimal.localcontext(context()) as ctx:
        exact = (Decimal("1.0001") ** tick).sqrt(ctx) * (Decimal(2) ** 96)
    # Q128.128 products truncated up to 19 times: at |tick| near the bounds the running ratio is about 2**-64, so
    # only ~64 bits are kept (2e-20 relative at MAX_TICK); one wrong factor would be off by far more. Exactness is
    # checked against the bounds above and against the pool below.
    assert abs(Decimal(ratio) - exact) <= exact * Decimal("1e-18") + 1  # + 1: the final round-up to Q64.96
    assert v3.get_tick_at_sqrt_ratio(ratio) == tick
    if tick > v3.MIN_TICK:
        assert v3.get_tick_at_sqrt_ratio(ratio - 1) == tick - 1
        assert v3.get_sqrt_ratio_at_tick(tick - 1) < ratio < v3.get_sqrt_ratio_at_tick(tick + 1)


def test_mean_tick_rounds_towards_negative_infinity() -> None:
    assert v3.mean_tick(0, -7, 2) == -4  # -3.5: Solidity gives -3, OracleLibrary then steps down to -4
    assert v3.mean_tick(0, -8, 2) == -4
    assert v3.mean_tick(0, 7, 2) == 3
    assert v3.mean_tick(100, 93, 7) == -1


def test_sell_limit_is_the_furthest_integer_price_within_the_drop() -> None:
    price = 3 * v3.Q96 + 12345
    for drop in (Fraction(1, 50), Fraction(1, 10), Fraction(99, 100)):
        low = v3.sell_limit(price, drop, base_is_token0=True)
        assert Fraction(low * low) >= price * price * (1 - drop) > Fraction((low - 1) ** 2)
        high = v3.sell_limit(price, drop, base_is_token0=False)
        assert Fraction(high * high) * (1 - drop) <= price * price < Fraction((high + 1) ** 2) * (1 - drop)


def test_bitmap_walk_on_a_hand_made_word() -> None:
    bitmap = {0: (1 << 3) | (1 << 200), -1: 1 << 255}
    assert v3.next_initialized_tick_within_one_word(bitmap, 250 * 60, 60, True) == (200 * 60, True)
    assert v3.next_initialized_tick_within_one_word(bitmap, 199 * 60, 60, True) == (3 * 60, True)
    assert v3.next_initialized_tick_within_one_word(bitmap, 2 * 60, 60, True) == (0, False)
    assert v3.next_initialized_tick_within_one_word(bitmap, -1, 60, True) == (-60, True)  # compressed -1: word -1
    assert v3.next_initialized_tick_within_one_word(bitmap, 3 * 60, 60, False) == (200 * 60, True)
    assert v3.next_initialized_tick_within_one_word(bitmap, 201 * 60, 60, False) == (255 * 60, False)
    with pytest.raises(v3.OutOfRange):
        v3.next_initialized_tick_within_one_word(bitmap, 256 * 60, 60, True)
    assert v3.initialized_ticks(-1, 1 << 255, 60) == [-60]


# ------------------------------------------------------------------ the lab


@dataclass
class V3:
    lab: Lab
    uni: UniswapLab
    trader: str
    tokens: dict[str, Contract]  # symbol -> token; A 18 decimals, B 6, C 18, D 8
    decimals: dict[str, int]
    pool: Contract  # A/B, fee 3000, several overlapping ranges, traded
    spacing: int


def _sorted_pair(a: Contract, b: Contract) -> tuple[Contract, Contract]:
    return (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)


def _initial_sqrt(token0_decimals: int, token1_decimals: int, whole_price_of_token0: Fraction) -> int:
    raw = whole_price_of_token0 * Fraction(10) ** (token1_decimals - token0_decimals)
    return math.isqrt(raw.numerator * (1 << 192) // raw.denominator)


@pytest.fixture(scope="module")
def env(lab: Lab) -> Iterator[V3]:
    """v3 factory and helper, four lab tokens, and one A/B pool with overlapping ranges and some trading; deployed
    once for this module and rolled back after it."""
    snapshot = rpc(lab.url, "evm_snapshot")
    try:
        uni = deploy_uniswap(lab.url, lab.deployer)
        trader = lab.accounts[4]
        specs = {"A": 18, "B": 6, "C": 18, "D": 8}
        tokens = {
            sym: deploy_lab_token(lab.url, f"v3 {sym}", sym, dec, sender=lab.deployer, compiled=lab.lab_contracts)
            for sym, dec in specs.items()
        }
        for token in tokens.values():
            token.transact("mint", trader, BIG, sender=lab.deployer)
        uni.approve_helper(list(tokens.values()), trader)
        token0, token1 = _sorted_pair(tokens["A"], tokens["B"])
        # 1 A = 2000 B
        price0 = Fraction(2000) if token0 is tokens["A"] else Fraction(1, 2000)
        start = _initial_sqrt(specs[_sym(tokens, token0)], specs[_sym(tokens, token1)], price0)
        pool = uni.create_pool(token0.address, token1.address, 3000, start)
        spacing = 60
        c = uni.slot0(pool).tick // spacing * spacing
        for lower, upper, liquidity in [
            (c - 600, c + 600, 3 * 10**15),
            (c - 1200, c - 60, 2 * 10**15),
            (c - 300, c + 1800, 10**15),
            (c - 2400, c - 1500, 5 * 10**15),  # beyond a gap below c - 1200
            (c + 120, c + 240, 7 * 10**15),
        ]:
            uni.mint(pool, lower, upper, liquidity, trader)
        # some trading either way, so the price is off the initial one and fees have accrued
        sell = {tokens["A"].address: 3 * 10**17, tokens["B"].address: 300 * 10**6}  # 0.3 A, 300 B (~1/7 of depth)
        uni.swap(pool, True, sell[token0.address], trader)
        uni.swap(pool, False, sell[token1.address] // 2, trader)
        yield V3(lab, uni, trader, tokens, specs, pool, spacing)
    finally:
        rpc(lab.url, "evm_revert", [snapshot])


def _sym(tokens: dict[str, Contract], token: Contract) -> str:
    return next(s for s, t in tokens.items() if t is token)


def _client(lab: Lab) -> ChainClient:
    stats = Stats()
    client = ChainClient("ethereum", lab.chain_id, HttpTransport("ethereum", lab.url, stats), stats)
    client.check_chain_id()
    client.pin(None)
    return client


def _run(lab: Lab, plan: Plan[Any]) -> Any:
    return run_plan(_client(lab), plan)


def _rounds(lab: Lab, plan: Plan[Any]) -> tuple[Any, int]:
    """Drive a plan by hand: its result and how many rounds of reads it asked for."""
    client, answer, rounds = _client(lab), None, 0
    while True:
        try:
            request = plan.send(answer)
        except StopIteration as stop:
            return stop.value, rounds
        rounds += 1
        answer = client.read(request.reads)


def _spec(pool: Contract, base: Contract, quote: Contract) -> Pool:
    return Pool(chain="ethereum", name="lab v3", address=pool.address, kind=v3.KIND, base=base.address,
                quote=quote.address)


def _token0(uni: UniswapLab, pool: Contract) -> str:
    return str(pool.call("token0")).lower()


def _snapshot_swap(env: V3, pool: Contract, zero_for_one: bool, amount: int, limit: int | None = None) -> Swap:
    """A real swap of `amount` (exact input, no price limit unless given), undone afterwards."""
    snap = rpc(env.lab.url, "evm_snapshot")
    try:
        return env.uni.swap(pool, zero_for_one, amount, env.trader, limit)
    finally:
        assert rpc(env.lab.url, "evm_revert", [snap])


def _check_depths(env: V3, pool: Contract, base: Contract, quote: Contract) -> list[v3.ExitDepth]:
    """Compute exit liquidity for selling `base`, then execute each amount (and one unit more) on the pool."""
    depths, reason = _run(env.lab, v3.exit_liquidity(_spec(pool, base, quote)))
    assert depths is not None, reason
    base_is_token0 = _token0(env.uni, pool) == base.address.lower()
    start = env.uni.slot0(pool).sqrt_price_x96
    for depth in depths:
        keep = 1 - Fraction(depth.drop)
        assert depth.limit_sqrt_price_x96 == v3.sell_limit(start, Fraction(depth.drop), base_is_token0)
        if depth.base_in_raw:
            swap = _snapshot_swap(env, pool, base_is_token0, depth.base_in_raw)
            paid, got = (swap.amount0, swap.amount1) if base_is_token0 else (swap.amount1, swap.amount0)
            assert paid == depth.base_in_raw
            assert -got == depth.quote_out_raw
            assert swap.sqrt_price_x96 == depth.end_sqrt_price_x96
            end = swap.sqrt_price_x96
            # the base price after the sale is still within the drop
            if base_is_token0:
                assert Fraction(end * end) >= start * start * keep
            else:
                assert Fraction(end * end) * keep <= start * start
        # One unit more crosses the limit. The swap gets a limit halfway to zero from there: if it reaches it, it
        # has crossed; if not, it ran exactly as without one (and on an empty pool it would otherwise walk every
        # bitmap word to the end of the price range, past anvil's block gas limit at tick spacing 1).
        far = v3.sell_limit(start, (1 + Fraction(depth.drop)) / 2, base_is_token0)
        far = max(far, v3.MIN_SQRT_RATIO + 1) if base_is_token0 else min(far, v3.MAX_SQRT_RATIO - 1)
        over = _snapshot_swap(env, pool, base_is_token0, depth.base_in_raw + 1, far)
        end = over.sqrt_price_x96
        if base_is_token0:
            assert Fraction(end * end) < start * start * keep
        else:
            assert Fraction(end * end) * keep > start * start
        assert depth.base_in == Decimal(depth.base_in_raw).scaleb(-env.decimals[_sym(env.tokens, base)])
        assert depth.quote_out == Decimal(depth.quote_out_raw).scaleb(-env.decimals[_sym(env.tokens, quote)])
    amounts = [d.base_in_raw for d in depths]
    assert amounts == sorted(amounts)
    return depths


# ------------------------------------------------------------------ on the pool


def test_spot_price_is_the_pools_sqrt_price_for_either_base(env: V3) -> None:
    a, b = env.tokens["A"], env.tokens["B"]
    sqrt_price = env.uni.slot0(env.pool).sqrt_price_x96
    a_is_token0 = _token0(env.uni, env.pool) == a.address.lower()
    raw = Fraction(sqrt_price**2, 2**192)  # token1 per token0
    a_raw = raw if a_is_token0 else 1 / raw
    with decimal.localcontext(context()):
        expected_a = Decimal((a_raw * 10**12).numerator) / Decimal((a_raw * 10**12).denominator)  # B per A, whole
        expected_b = Decimal((1 / (a_raw * 10**12)).numerator) / Decimal((1 / (a_raw * 10**12)).denominator)
    assert _run(env.lab, v3.quote(_spec(env.pool, a, b))) == (expected_a, "")
    assert _run(env.lab, v3.quote(_spec(env.pool, b, a))) == (expected_b, "")
    assert Decimal(1900) < expected_a < Decimal(2100)


def test_quote_says_why_there_is_no_price(env: V3) -> None:
    c, d = env.tokens["C"], env.tokens["D"]
    snap = rpc(env.lab.url, "evm_snapshot")
    try:
        token0, token1 = _sorted_pair(c, d)
        env.uni.factory.transact("createPool", token0.address, token1.address, 500, sender=env.trader)
        bare = env.uni.pool(env.uni.factory.call("getPool", token0.address, token1.address, 500))
        assert _run(env.lab, v3.quote(_spec(bare, c, d))) == (None, "is empty")
        bare.transact("initialize", v3.Q96, sender=env.trader)
        assert _run(env.lab, v3.quote(_spec(bare, c, d))) == (None, "has no liquidity at its price")
        assert _run(env.lab, v3.quote(_spec(env.pool, c, d))) == (None, "does not pair its base and quote tokens")
        depths, _ = _run(env.lab, v3.exit_liquidity(_spec(bare, c, d)))
        assert [(x.base_in_raw, x.quote_out_raw) for x in depths] == [(0, 0)] * 3
    finally:
        assert rpc(env.lab.url, "evm_revert", [snap])


@pytest.mark.parametrize("base_symbol", ["A", "B"])
def test_exit_liquidity_is_what_the_pool_executes(env: V3, base_symbol: str) -> None:
    base = env.tokens[base_symbol]
    quote = env.tokens["B" if base_symbol == "A" else "A"]
    depths = _check_depths(env, env.pool, base, quote)
    assert all(d.base_in_raw > 0 and d.quote_out_raw > 0 for d in depths)
    # three rounds of reads: the pool, the bitmap words, the initialized ticks
    _result, rounds = _rounds(env.lab, v3.exit_liquidity(_spec(env.pool, base, quote)))
    assert rounds == 3


def test_exit_prices_lie_between_the_limit_and_the_start_less_fee(env: V3) -> None:
    """A sanity bound independent of the walk: every sale's average price (quote out per base in) is below the start
    price less the 0.3% fee, and above the limit price less the fee (the marginal price only falls during a sale)."""
    a, b = env.tokens["A"], env.tokens["B"]
    a_is_token0 = _token0(env.uni, env.pool) == a.address.lower()
    start = env.uni.slot0(env.pool).sqrt_price_x96
    depths, _ = _run(env.lab, v3.exit_liquidity(_spec(env.pool, a, b)))
    for depth in depths:
        raw_start = Fraction(start**2, 2**192)
        raw_limit = Fraction(depth.limit_sqrt_price_x96**2, 2**192)
        if not a_is_token0:
            raw_start, raw_limit = 1 / raw_start, 1 / raw_limit
        average = Fraction(depth.quote_out_raw, depth.base_in_raw)
        less_fee = Fraction(997, 1000)
        assert raw_limit * less_fee * Fraction(999, 1000) < average < raw_start * less_fee


def test_tick_math_matches_the_pool(env: V3) -> None:
    snap = rpc(env.lab.url, "evm_snapshot")
    try:
        here = env.uni.slot0(env.pool).tick
        for offset in (-1, 7, -250, 300, -1111):
            target = here + offset
            env.uni.move_to_tick(env.pool, target, env.trader)
            slot0 = env.uni.slot0(env.pool)
            assert slot0.sqrt_price_x96 == v3.get_sqrt_ratio_at_tick(target)
            assert v3.get_tick_at_sqrt_ratio(slot0.sqrt_price_x96) == target
    finally:
        assert rpc(env.lab.url, "evm_revert", [snap])


def _words_around(ticks: Sequence[int], spacing: int) -> list[int]:
    return list(range(((min(ticks) // spacing) >> 8) - 1, ((max(ticks) // spacing) >> 8) + 2))


def _compare_swaps(env: V3, pool: Contract, rng: random.Random, ticks: Sequence[int], n: int) -> None:
    """Random exact-input and exact-output swaps, both directions, with limits inside the read range: the
    simulation equals the pool's Swap event (amounts, price, tick, liquidity)."""
    spacing = int(pool.call("tickSpacing"))
    state = _run(env.lab, v3.read_state(pool.address, _words_around(ticks, spacing)))
    assert state is not None
    lo, hi = min(ticks), max(ticks)
    for _ in range(n):
        zero_for_one = rng.random() < 0.5
        limit_tick = rng.randint(lo, state.tick) if zero_for_one else rng.randint(state.tick + 1, hi)
        limit = v3.get_sqrt_ratio_at_tick(limit_tick)
        if (limit < state.sqrt_price_x96) != zero_for_one or limit == state.sqrt_price_x96:
            continue
        amount = rng.choice([1, rng.randint(1, 10**6), rng.randint(1, 10**18), 10**30])
        amount = amount if rng.random() < 0.5 else -amount
        expected = v3.simulate_swap(state, zero_for_one, amount, limit)
        snap = rpc(env.lab.url, "evm_snapshot")
        try:
            got = env.uni.swap(pool, zero_for_one, amount, env.trader, limit)
        finally:
            assert rpc(env.lab.url, "evm_revert", [snap])
        assert (got.amount0, got.amount1, got.sqrt_price_x96, got.tick, got.liquidity) == (
            expected.amount0, expected.amount1, expected.sqrt_price_x96, expected.tick, expected.liquidity)


def test_simulated_swaps_equal_the_pools_in_both_directions(env: V3) -> None:
    here = env.uni.slot0(env.pool).tick
    _compare_swaps(env, env.pool, random.Random(7), [here - 3000, here + 2500], 12)


def test_twap_is_the_mean_of_the_ticks_held(env: V3) -> None:
    """Ticks held for controlled times: the mean over a window that starts inside a segment and the price of it."""
    c, d = env.tokens["C"], env.tokens["D"]
    url = env.lab.url
    snap = rpc(url, "evm_snapshot")
    try:
        token0, token1 = _sorted_pair(c, d)
        pool = env.uni.create_pool(token0.address, token1.address, 500, v3.get_sqrt_ratio_at_tick(-1003),
                                   cardinality=16)
        env.uni.mint(pool, -3000, 3000, 10**18, env.trader)
        t0 = block_timestamp(url)
        # tick -1003 until t0 + 100, then -1777 until t0 + 137, then 413 until t0 + 1000 (the read block)
        set_next_timestamp(url, t0 + 100)
        env.uni.move_to_tick(pool, -1777, env.trader)
        assert env.uni.slot0(pool).tick == -1777
        set_next_timestamp(url, t0 + 137)
        env.uni.move_to_tick(pool, 413, env.trader)
        assert env.uni.slot0(pool).tick == 413
        mine(url, t0 + 1000)
        window = 1000 - 60  # from t0 + 60: 40 s at -1003, 37 s at -1777, 863 s at 413
        total = 40 * -1003 + 37 * -1777 + 863 * 413
        assert total == 250_550
        assert v3.mean_tick(0, total, window) == 266  # 266.54...
        c_is_token0 = token0 is c
        with decimal.localcontext(context()):
            raw = Fraction(v3.get_sqrt_ratio_at_tick(266) ** 2, 2**192)
            whole = (raw if c_is_token0 else 1 / raw) * Fraction(10) ** (18 - 8)
            expected = Decimal(whole.numerator) / Decimal(whole.denominator)
        assert _run(env.lab, v3.twap(_spec(pool, c, d), window)) == (expected, "")
        # a window reaching before the pool's first observation
        assert _run(env.lab, v3.twap(_spec(pool, c, d), 5000)) == (None, "window exceeds the pool's observations")
    finally:
        assert rpc(url, "evm_revert", [snap])


def test_twap_rounds_negative_means_down(env: V3) -> None:
    c, d = env.tokens["C"], env.tokens["D"]
    url = env.lab.url
    snap = rpc(url, "evm_snapshot")
    try:
        token0, token1 = _sorted_pair(c, d)
        pool = env.uni.create_pool(token0.address, token1.address, 500, v3.get_sqrt_ratio_at_tick(-20),
                                   cardinality=8)
        env.uni.mint(pool, -3000, 3000, 10**18, env.trader)
        t0 = block_timestamp(url)
        set_next_timestamp(url, t0 + 50)
        env.uni.move_to_tick(pool, -21, env.trader)
        mine(url, t0 + 53)
        # window of 3 s at -21 then... window 3: mean -21; window 7: 4 s at -20, 3 s at -21 = -143/7 = -20.43
        total = 4 * -20 + 3 * -21
        assert int(total / 7) == -20 and v3.mean_tick(0, total, 7) == -21  # truncation would say -20
        c_is_token0 = token0 is c
        with decimal.localcontext(context()):
            raw = Fraction(v3.get_sqrt_ratio_at_tick(-21) ** 2, 2**192)
            whole = (raw if c_is_token0 else 1 / raw) * Fraction(10) ** (18 - 8)
            expected = Decimal(whole.numerator) / Decimal(whole.denominator)
        assert _run(env.lab, v3.twap(_spec(pool, c, d), 7)) == (expected, "")
    finally:
        assert rpc(url, "evm_revert", [snap])


# ------------------------------------------------------------------ random layouts


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_layouts_exit_liquidity_and_swaps_equal_the_pool(env: V3, seed: int) -> None:
    rng = random.Random(seed)
    c, d = env.tokens["C"], env.tokens["D"]
    fee, spacing = rng.choice([(100, 1), (500, 10), (3000, 60), (10000, 200)])
    url = env.lab.url
    snap = rpc(url, "evm_snapshot")
    try:
        token0, token1 = _sorted_pair(c, d)
        start_tick = rng.randint(-40000, 40000)
        pool = env.uni.create_pool(token0.address, token1.address, fee, v3.get_sqrt_ratio_at_tick(start_tick))
        reach = max(1500, 30 * spacing)  # ticks either side where ranges may start and end
        base = start_tick // spacing * spacing
        ticks = [base - reach - spacing, base + reach + spacing]
        for _ in range(rng.randint(2, 5)):
            lower = base + rng.randint(-reach // spacing, reach // spacing - 1) * spacing
            upper = lower + rng.randint(1, max(1, (base + reach - lower) // spacing)) * spacing
            env.uni.mint(pool, lower, upper, rng.randint(10**12, 10**17), env.trader)
            ticks += [lower, upper]
        if rng.random() < 0.7:  # trade off the initial price
            zero_for_one = rng.random() < 0.5
            limit = v3.get_sqrt_ratio_at_tick(base + (-1 if zero_for_one else 1) * rng.randint(1, reach // 2))
            if (limit < env.uni.slot0(pool).sqrt_price_x96) == zero_for_one:
                env.uni.swap(pool, zero_for_one, 10**30, env.trader, limit)
        _check_depths(env, pool, c, d)
        _check_depths(env, pool, d, c)
        _compare_swaps(env, pool, rng, ticks, 3)
    finally:
        assert rpc(url, "evm_revert", [snap])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_exit_depths_are_maximal_on_random_states(seed: int) -> None:
    """Pure maths, no node: each depth's amount, swapped without a limit by the simulator, ends within the drop,
    and one unit more ends beyond it (the search resumes from checkpoints; this walks from the start)."""
    rng = random.Random(seed)
    spacing = rng.choice([1, 10, 60, 200])
    tick = rng.randint(-50000, 50000)
    state = v3.PoolState(v3.get_sqrt_ratio_at_tick(tick) + rng.randint(0, 10**9), tick, 0,
                         rng.choice([100, 500, 3000, 10000]), spacing)
    base = tick // spacing * spacing
    for _ in range(rng.randint(0, 6)):
        lower = base + rng.randint(-40, 39) * spacing
        upper = lower + rng.randint(1, 40) * spacing
        liquidity = rng.randint(1, 10**20)
        state.liquidity_net[lower] = state.liquidity_net.get(lower, 0) + liquidity
        state.liquidity_net[upper] = state.liquidity_net.get(upper, 0) - liquidity
        state.liquidity += liquidity if lower <= tick < upper else 0
    state.liquidity_net = {t: n for t, n in state.liquidity_net.items() if n}
    word = (base // spacing) >> 8
    state.bitmap = dict.fromkeys(range(word - 40, word + 40), 0)
    for t in state.liquidity_net:
        state.bitmap[(t // spacing) >> 8] |= 1 << ((t // spacing) % 256)
    base_is_token0 = rng.random() < 0.5
    for depth in v3.exit_depths(state, base_is_token0, 18, 6, [Decimal("0.001"), Decimal("0.03"), Decimal("0.3")]):
        limit = depth.limit_sqrt_price_x96
        if depth.base_in_raw:
            swap = v3.simulate_swap(state, base_is_token0, depth.base_in_raw)
            paid_and_got = (swap.amount0, -swap.amount1) if base_is_token0 else (swap.amount1, -swap.amount0)
            assert paid_and_got == (depth.base_in_raw, depth.quote_out_raw)
            assert swap.sqrt_price_x96 == depth.end_sqrt_price_x96
            assert swap.sqrt_price_x96 >= limit if base_is_token0 else swap.sqrt_price_x96 <= limit
        over = v3.simulate_swap(state, base_is_token0, depth.base_in_raw + 1, stop_beyond=limit)
        assert over.stopped_early
