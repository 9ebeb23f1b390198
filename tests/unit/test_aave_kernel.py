"""The compiled kernel (PackedBook) against the reference calculate_account_data, to the wei.

The kernel must agree with the reference on every field for thousands of random markets
and positions, flag exactly the users for which the reference raises, and stay exact as
the packed book is updated, shrunk and compacted. The CI machine has a C compiler: these
tests fail, rather than skip, when the kernel cannot be built.
"""

from __future__ import annotations

import ctypes
import dataclasses
import random

import numpy as np
import pytest
from aave_random import TS, random_market, random_position, reference, small_market

from bot.adapters.aave_v3 import kernel as kernel_module
from bot.adapters.aave_v3.health import AccountData, UserReserve, calculate_account_data
from bot.adapters.aave_v3.kernel import HealthBatch, PackedBook
from bot.adapters.aave_v3.math import RAY, UINT256_MAX
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.native import NativeUnavailable, load

WAD = 10**18


def assert_matches(
    batch: HealthBatch,
    positions: dict[str, UserPosition],
    market: MarketState,
    prices: dict[int, int] | None,
    ts: int = TS,
) -> int:
    """Every user's batch result equals the reference (or both raise); returns HF < 1 count."""
    below = 0
    for i, user in enumerate(batch.users):
        try:
            p = positions[user]
            expected = calculate_account_data(
                p.reserves, market.reserves, p.emode, market.emode_categories, ts, prices
            )
        except ValueError:
            assert user in batch.errors, (user, positions[user])
            assert not batch.below[i]
            continue
        assert user not in batch.errors
        assert batch.account(i) == expected, (positions[user], expected)
        assert batch.health_factor(i) == expected.health_factor
        assert bool(batch.below[i]) == (expected.health_factor < WAD)
        below += expected.health_factor < WAD
    return below


def test_kernel_is_built_here() -> None:
    load("aave_hf")  # raises NativeUnavailable: the suite must not silently test the fallback


def test_random_books_match_reference_exactly() -> None:
    rng = random.Random(20261121)
    checked = referred = 0
    for _ in range(60):
        market, prices = random_market(rng)
        positions = {f"u{k}": random_position(rng, market) for k in range(60)}
        batch = PackedBook(positions).evaluate(market, TS, prices)
        assert list(batch.users) == list(positions)
        assert_matches(batch, positions, market, prices)
        checked += len(positions)
        referred += batch.referred
    assert checked >= 3000
    # Stable debt and unpriced e-mode categories go to the reference; the rest must not.
    assert referred < checked // 2


def test_positions_near_one_match_and_are_flagged() -> None:
    rng = random.Random(11)
    below = 0
    for _ in range(40):
        market, prices = random_market(rng)
        positions = {}
        for k in range(40):
            position = random_position(rng, market)
            position.reserves = {
                rid: dataclasses.replace(
                    u,
                    scaled_atoken=rng.choice([0, rng.randint(1, 10**20)]),
                    scaled_variable_debt=rng.choice([0, rng.randint(1, 10**20)]),
                    stable_debt_principal=0,
                )
                for rid, u in position.reserves.items()
            }
            positions[f"u{k}"] = position
        batch = PackedBook(positions).evaluate(market, TS, prices)
        below += assert_matches(batch, positions, market, prices)
        unpriced = {
            cid
            for cid, c in market.emode_categories.items()
            if cid not in prices and int(c.price_source, 16)
        }
        assert batch.referred == sum(p.emode in unpriced for p in positions.values() if p.reserves)
        assert set(batch.liquidatable()) == {u for i, u in enumerate(batch.users) if batch.below[i]}
    assert below > 100


@pytest.mark.parametrize(
    "position",
    [
        UserPosition(0, {}),
        UserPosition(5, {}),
        UserPosition(0, {9: UserReserve(scaled_atoken=10)}),
        UserPosition(0, {0: UserReserve(collateral_enabled=True)}),
        UserPosition(0, {9: UserReserve(scaled_variable_debt=1)}),
        UserPosition(5, {0: UserReserve(scaled_atoken=1, collateral_enabled=True)}),
        UserPosition(1, {0: UserReserve(10**18, 10**17, collateral_enabled=True)}),
        # Overflows where the contract reverts, and values just inside uint256 that work.
        UserPosition(0, {0: UserReserve(UINT256_MAX, collateral_enabled=True)}),
        UserPosition(0, {0: UserReserve(2**200, 1, collateral_enabled=True)}),
        UserPosition(0, {0: UserReserve(2**150, 2**150, collateral_enabled=True)}),
        UserPosition(0, {0: UserReserve(2**120, 2**100, collateral_enabled=True)}),
        UserPosition(0, {1: UserReserve(scaled_variable_debt=2**240)}),
        UserPosition(0, {0: UserReserve(-1, collateral_enabled=True)}),
        UserPosition(0, {0: UserReserve(1, 5, 3, RAY, TS, True)}),
        # Tiny debt against huge collateral: a health factor far above 2**128.
        UserPosition(0, {0: UserReserve(10**30, collateral_enabled=True), 1: UserReserve(0, 1)}),
    ],
)
@pytest.mark.parametrize("prices", [None, {1: 0}, {1: 7}, {1: 1900 * 10**8}])
def test_edge_cases_match_reference(position: UserPosition, prices: dict[int, int] | None) -> None:
    market = small_market()
    batch = PackedBook({"u": position}).evaluate(market, TS, prices)
    assert_matches(batch, {"u": position}, market, prices)


def test_bad_market_data_defers_to_the_reference() -> None:
    positions = {
        "collateral": UserPosition(0, {0: UserReserve(10**18, collateral_enabled=True)}),
        "debt": UserPosition(0, {0: UserReserve(scaled_variable_debt=10**18)}),
        "usd": UserPosition(0, {0: UserReserve(collateral_enabled=False), 1: UserReserve(0, 5)}),
    }
    for market, ts in [
        (small_market(), TS - 101),  # reserve 0 last updated after ts: its indexes revert
        (small_market(decimals=200), TS),
        (small_market(ltv=70_000), TS),
        (small_market(liquidation_threshold=0), TS),
    ]:
        batch = PackedBook(positions).evaluate(market, ts, None)
        assert_matches(batch, positions, market, None, ts)


def test_incremental_updates_equal_a_fresh_pack() -> None:
    rng = random.Random(3)
    market, prices = random_market(rng)
    positions = {f"u{k}": random_position(rng, market) for k in range(300)}
    book = PackedBook(positions)
    for step in range(3000):
        user = f"u{rng.randrange(400)}"
        if user in book and rng.random() < 0.3:
            book.remove(user)
            del positions[user]
        else:
            positions[user] = random_position(rng, market)
            book.update(user, positions[user])
        if step % 500 == 0:
            assert set(book.users) == set(positions)
    subset = rng.sample(sorted(positions), 50)
    partial = book.evaluate(market, TS, prices, subset)
    assert list(partial.users) == subset
    assert_matches(partial, positions, market, prices)
    full = book.evaluate(market, TS, prices)
    fresh = PackedBook(positions).evaluate(market, TS, prices)
    assert sorted(full.accounts().items()) == sorted(fresh.accounts().items())
    assert_matches(full, positions, market, prices)


def test_without_the_kernel_results_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(8)
    market, prices = random_market(rng)
    positions = {f"u{k}": random_position(rng, market) for k in range(200)}
    native = PackedBook(positions).evaluate(market, TS, prices)

    def unavailable(name: str) -> None:
        raise NativeUnavailable("test")

    monkeypatch.setattr(kernel_module, "load", unavailable)
    python = PackedBook(positions).evaluate(market, TS, prices)
    assert native.accounts() == python.accounts()
    assert native.errors.keys() == python.errors.keys()


def test_health_floats_follow_the_exact_values() -> None:
    market = small_market()
    positions = {
        f"u{k}": UserPosition(
            0, {0: UserReserve(10**18, collateral_enabled=True), 1: UserReserve(0, debt)}
        )
        for k, debt in enumerate([10**8, 10**9, 1_500 * 10**6, 10**12])
    }
    batch = PackedBook(positions).evaluate(market, TS)
    floats = batch.health_floats()
    for i in range(len(batch)):
        assert floats[i] == pytest.approx(batch.health_factor(i) / WAD, rel=1e-12)


# --- 256-bit division (Knuth's algorithm D), the one non-trivial primitive ---


def _divide(pairs: list[tuple[int, int]]) -> tuple[list[int], int]:
    lib = load("aave_hf")
    n = len(pairs)
    a = np.frombuffer(b"".join(x.to_bytes(32, "little") for x, _ in pairs), np.uint64).copy()
    b = np.frombuffer(b"".join(y.to_bytes(32, "little") for _, y in pairs), np.uint64).copy()
    q = np.zeros(4 * n, dtype=np.uint64)
    fn = lib.liqbot_u256_divide
    fn.restype = ctypes.c_uint64
    addbacks = fn(
        ctypes.c_int64(n),
        ctypes.c_void_p(a.ctypes.data),
        ctypes.c_void_p(b.ctypes.data),
        ctypes.c_void_p(q.ctypes.data),
    )
    raw = q.tobytes()
    return [int.from_bytes(raw[32 * i : 32 * i + 32], "little") for i in range(n)], addbacks


def _digit_pattern(rng: random.Random, digits: int) -> int:
    """Numbers built from the 32-bit digits that stress quotient estimation."""
    value = 0
    for _ in range(digits):
        d = rng.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, rng.getrandbits(32)])
        value = (value << 32) | d
    return value


def test_u256_division_matches_python() -> None:
    rng = random.Random(99)
    pairs: list[tuple[int, int]] = []
    for _ in range(20_000):
        a = rng.getrandbits(rng.randint(1, 256))
        b = rng.getrandbits(rng.randint(1, 256)) or 1
        pairs.append((a, b))
    for _ in range(60_000):
        a = _digit_pattern(rng, rng.randint(1, 8))
        b = _digit_pattern(rng, rng.randint(1, 8)) or 1
        pairs.append((a, b))
    pairs += [(UINT256_MAX, 1), (UINT256_MAX, UINT256_MAX), (0, 7), (2**255, 2**128 + 1)]
    quotients, addbacks = _divide(pairs)
    for (a, b), q in zip(pairs, quotients, strict=True):
        assert q == a // b, (hex(a), hex(b))
    assert addbacks > 0, "the rare add-back step of algorithm D was never exercised"


def test_account_data_layout() -> None:
    """The word order of HealthBatch is AccountData's field order."""
    market = small_market()
    position = UserPosition(
        0, {0: UserReserve(10**18, collateral_enabled=True), 1: UserReserve(0, 10**9)}
    )
    batch = PackedBook({"u": position}).evaluate(market, TS)
    expected = reference(position, market, None)
    assert isinstance(expected, AccountData)
    assert batch.accounts() == {"u": expected}
    assert batch.account(0).total_collateral_base > batch.account(0).total_debt_base > 0
