"""Screener: never misses an exactly liquidatable user, and actually filters.

"Exact" is always the reference ``health.calculate_account_data``; the screen is checked
on positions tuned to within 1 wei of HF = 1e18, on dust positions where the contract's
roundings dominate, and on a 20k-user random book.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping

import pytest

from bot.adapters.aave_v3.config import ReserveConfig
from bot.adapters.aave_v3.health import (
    ZERO_ADDRESS,
    EModeCategory,
    ReserveState,
    UserReserve,
    calculate_account_data,
)
from bot.adapters.aave_v3.math import RAY, WAD
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.screening import MIN_MARGIN, Screener
from bot.adapters.aave_v3.state import UserPosition

TS = 1_700_000_000
ORACLE = "0x" + "0" * 39 + "1"

BASE_CFG = ReserveConfig(
    ltv=8000,
    liquidation_threshold=8250,
    liquidation_bonus=10500,
    decimals=18,
    stable_borrowing_enabled=True,
    reserve_factor=1000,
    liquidation_protocol_fee=1000,
)


def make_reserve(
    rid: int,
    decimals: int,
    price: int,
    threshold: int,
    *,
    emode: int = 0,
    income: int = RAY,
    debt_index: int = RAY,
    rates: tuple[int, int] = (0, 0),
    last_update: int = TS,
) -> ReserveState:
    cfg = dataclasses.replace(
        BASE_CFG,
        decimals=decimals,
        ltv=max(threshold - 500, 0),
        liquidation_threshold=threshold,
        emode_category=emode,
    )
    return ReserveState(
        f"0x{rid + 0xA0:040x}", rid, cfg, income, debt_index, rates[0], rates[1], last_update, price
    )


def random_market(rng: random.Random, n: int = 5) -> tuple[MarketState, dict[int, int]]:
    reserves = {}
    for rid in range(n):
        reserves[rid] = make_reserve(
            rid,
            rng.randint(6, 18),
            rng.randint(1, 10**13),
            rng.choice([0, rng.randint(1, 9500), rng.randint(6000, 9000)]),
            emode=rng.choice([0, 0, 1, 2]),
            income=rng.randint(RAY, 3 * RAY),
            debt_index=rng.randint(RAY, 3 * RAY),
            rates=(rng.randint(0, 2 * RAY), rng.randint(0, 2 * RAY)),
            last_update=TS - rng.randint(0, 10**7),
        )
    categories = {
        1: EModeCategory(1, 9000, 9300, 10100, ZERO_ADDRESS, "no oracle"),
        # Threshold 0 in e-mode: such collateral dilutes the average without adding to it.
        2: EModeCategory(2, 0, rng.choice([0, 9500]), 10100, ORACLE, "oracle"),
    }
    return MarketState(1, reserves, {}, categories), {2: rng.randint(1, 10**13)}


def exact_hf(position: UserPosition, market: MarketState, prices: Mapping[int, int] | None) -> int:
    return calculate_account_data(
        position.reserves, market.reserves, position.emode, market.emode_categories, TS, prices
    ).health_factor


def assert_screen_is_sound(
    screener: Screener,
    users: Mapping[str, UserPosition],
    market: MarketState,
    prices: Mapping[int, int] | None,
) -> tuple[int, int]:
    """Every exactly liquidatable user is a candidate; no debt-free user is. (liq, cand)."""
    candidates = set(screener.candidates(market, TS, emode_prices=prices))
    liquidatable = {u for u, p in users.items() if exact_hf(p, market, prices) < WAD}
    assert liquidatable <= candidates, sorted(liquidatable - candidates)[:5]
    for user in candidates:
        assert any(r.borrowing for r in users[user].reserves.values())
    return len(liquidatable), len(candidates)


# --- positions tuned to the wei around HF = 1 --------------------------------------------


def tune(
    build: Callable[[int], UserPosition], hf_of: Callable[[UserPosition], int], target: int
) -> UserPosition | None:
    """Smallest scaled debt whose exact HF is <= target; None if that HF is not target."""
    lo, hi = 1, 1
    while hf_of(build(hi)) > target:
        lo, hi = hi, hi * 2
    while lo < hi:  # HF is non-increasing in the debt
        mid = (lo + hi) // 2
        if hf_of(build(mid)) <= target:
            hi = mid
        else:
            lo = mid + 1
    position = build(lo)
    return position if hf_of(position) == target else None


TARGETS = (WAD - 1, WAD - 1000, WAD, WAD + 1)


@pytest.mark.parametrize(
    ("coll", "debt", "second_coll", "emode"),
    [
        # (decimals, price) of collateral / debt; optional second collateral; e-mode.
        ((18, 3000 * 10**8), (6, 10**8), None, 0),
        ((6, 10**8), (18, 3000 * 10**8), None, 0),
        ((8, 6 * 10**12), (18, 10**13), (6, 99_999_999), 0),
        ((18, 1), (8, 10**13), (12, 7 * 10**9), 0),
        ((6, 10**13), (6, 10**13), None, 1),
        ((18, 2500 * 10**8), (18, 2400 * 10**8), (18, 10**8), 2),
    ],
)
def test_wei_close_to_one_are_candidates(
    coll: tuple[int, int],
    debt: tuple[int, int],
    second_coll: tuple[int, int] | None,
    emode: int,
) -> None:
    reserves = {
        0: make_reserve(0, *coll, 8250, emode=emode, income=RAY + 12345678901234567),
        1: make_reserve(1, *debt, 7000, emode=emode, debt_index=RAY + RAY // 7, rates=(0, 0)),
    }
    if second_coll is not None:
        # A second collateral with another threshold: the weighted average is floored.
        reserves[2] = make_reserve(2, *second_coll, 7333, income=2 * RAY + 1)
    categories = {
        1: EModeCategory(1, 9000, 9300, 10100, ZERO_ADDRESS, "eth"),
        2: EModeCategory(2, 9000, 9377, 10100, ORACLE, "oracle"),
    }
    market = MarketState(1, reserves, {}, categories)
    prices = {2: 2450 * 10**8}
    debt_step = max(1, debt[1] // 10 ** debt[0]) * 2  # base units per scaled-debt wei, rounded up
    # Collateral worth ~1e21 base units * debt_step: the HF moves by < 0.01 per debt wei,
    # so every HF value near 1e18 is reachable.
    scaled_coll = 10**21 * debt_step * 10 ** coll[0] // coll[1] + 1
    users: dict[str, UserPosition] = {}
    for target in TARGETS:
        for wiggle in range(8):
            extra = {}
            if second_coll is not None:
                extra[2] = UserReserve(10**3 * 10 ** second_coll[0] + wiggle, 0, 0, 0, 0, True)

            def build(
                v: int, wiggle: int = wiggle, extra: dict[int, UserReserve] = extra
            ) -> UserPosition:
                return UserPosition(
                    emode,
                    {
                        0: UserReserve(scaled_coll + wiggle * 7919, collateral_enabled=True),
                        1: UserReserve(scaled_variable_debt=v),
                        **extra,
                    },
                )

            position = tune(build, lambda p: exact_hf(p, market, prices), target)
            if position is not None:
                users[f"{target}-{wiggle}"] = position
                break
        else:
            pytest.fail(f"could not reach HF {target} exactly")
    hfs = {u: exact_hf(p, market, prices) for u, p in users.items()}
    assert sorted(hfs.values()) == sorted(TARGETS)
    candidates = set(Screener(users, sorted(reserves)).candidates(market, TS, emode_prices=prices))
    for user, hf in hfs.items():
        if hf < WAD:
            assert user in candidates, (user, hf)


def test_dust_positions_where_rounding_dominates() -> None:
    """Balances of a few wei: the floors are 100 % errors, the screen must still hold."""
    rng = random.Random(99)
    for _ in range(10):
        market, prices = random_market(rng)
        users: dict[str, UserPosition] = {}
        for k in range(300):
            reserves = {}
            for rid in rng.sample(sorted(market.reserves), rng.randint(1, 3)):
                reserves[rid] = UserReserve(
                    scaled_atoken=rng.randint(0, 10 ** rng.randint(0, 4)),
                    scaled_variable_debt=rng.choice([0, rng.randint(1, 10 ** rng.randint(0, 3))]),
                    collateral_enabled=rng.random() < 0.7,
                )
            users[f"d{k}"] = UserPosition(rng.choice([0, 1, 2]), reserves)
        liquidatable, _ = assert_screen_is_sound(
            Screener(users, sorted(market.reserves)), users, market, prices
        )
        assert liquidatable > 0


# (decimals, price, threshold, liquidity index, variable borrow index) per reserve and
# (scaled aToken, scaled variable debt, collateral bit) per user reserve. Found by random
# search as cases where one specific slack term of the bound is what catches the user.
ROUNDING_CASES = [
    pytest.param(
        [
            (2, 10**8, 5000, 1341378936400333881260312418, RAY),
            (8, 7047984205641, 0, RAY, 2778681553119698498906654234),
        ],
        [(1, 0, True), (0, 3, False)],
        id="collateral-floor",
    ),
    pytest.param(
        [
            (3, 1, 5000, 2288998180123680727091965523, 2699305628011959418252067781),
            (18, 1, 2, 2891580856364605337967254918, 2400864252090476288497237218),
            (8, 7058288479171, 2, RAY, RAY),
            (11, 2290646537194, 1, RAY, 1618576764008449281653333376),
        ],
        [(77, 9024, True), (1, 0, False), (50, 0, True), (371, 9, True)],
        id="average-threshold-floor",
    ),
    pytest.param(
        [
            (7, 10**10, 0, RAY, RAY),
            (6, 3137159257730, 5000, 1335553611642055208935209824, RAY),
            (1, 1, 0, 1109617246739317218051181489, RAY),
        ],
        [(9472, 14118, True), (7, 0, True), (0, 0, True)],
        id="collateral-floor-2",
    ),
]


def test_debt_rounded_up_by_half_a_token() -> None:
    """rayMul(1, 1.5 RAY) = 2: one 1e13-base-unit token of debt rounds up by half a token."""
    reserves = {
        0: make_reserve(0, 8, 10**8, 8000),  # 1 wei = 1 base unit
        1: make_reserve(1, 0, 10**13, 8000, debt_index=3 * RAY // 2),
    }
    market = MarketState(1, reserves, {}, {})
    # 2e13 base units of debt; collateral with N = 2e13 - 1 just short of covering it,
    # while the unrounded debt (1.5e13) would look comfortably covered.
    position = UserPosition(
        0,
        {
            0: UserReserve((2 * 10**13 - 1) * 10_000 // 8000, collateral_enabled=True),
            1: UserReserve(scaled_variable_debt=1),
        },
    )
    assert exact_hf(position, market, None) < WAD
    assert Screener({"x": position}, [0, 1]).candidates(market, TS) == ["x"]


@pytest.mark.parametrize(("specs", "balances"), ROUNDING_CASES)
def test_rounding_worst_cases(
    specs: list[tuple[int, int, int, int, int]], balances: list[tuple[int, int, bool]]
) -> None:
    reserves = {
        rid: make_reserve(rid, d, p, t, income=i, debt_index=di)
        for rid, (d, p, t, i, di) in enumerate(specs)
    }
    market = MarketState(1, reserves, {}, {})
    position = UserPosition(
        0, {rid: UserReserve(a, v, 0, 0, 0, bit) for rid, (a, v, bit) in enumerate(balances)}
    )
    assert exact_hf(position, market, None) < WAD
    assert Screener({"x": position}, sorted(reserves)).candidates(market, TS) == ["x"]


def test_zero_threshold_emode_collateral_dilutes_the_average_to_zero() -> None:
    """In-category collateral with an e-mode threshold of 0 still counts in the total.

    A large such balance next to a small normal one floors the weighted average threshold
    to 0, so the exact HF is 0 although the normal collateral alone covers the debt.
    """
    reserves = {
        0: make_reserve(0, 18, 10**8, 8000, emode=3),
        1: make_reserve(1, 18, 10**8, 8000),
        2: make_reserve(2, 6, 10**8, 8000),
    }
    categories = {3: EModeCategory(3, 0, 0, 10100, ZERO_ADDRESS, "zero")}
    market = MarketState(1, reserves, {}, categories)
    position = UserPosition(
        3,
        {
            0: UserReserve(10**6 * 10**18, collateral_enabled=True),
            1: UserReserve(100 * 10**18, collateral_enabled=True),
            2: UserReserve(scaled_variable_debt=10 * 10**6),
        },
    )
    assert exact_hf(position, market, None) == 0
    assert Screener({"x": position}, [0, 1, 2]).candidates(market, TS) == ["x"]


# --- a large random book -------------------------------------------------------------------


def random_book(
    rng: random.Random, market: MarketState, prices: Mapping[int, int], n: int
) -> dict[str, UserPosition]:
    """Users with a target HF mostly in (0.9, 3): about 5 % liquidatable."""
    ids = sorted(market.reserves)
    users: dict[str, UserPosition] = {}
    for k in range(n):
        emode = rng.choice([0, 0, 0, 1, 2])
        reserves: dict[int, UserReserve] = {}
        for rid in rng.sample(ids, rng.randint(1, 3)):
            r = market.reserves[rid]
            value = rng.randint(10**8, 10**14)  # $1 .. $1M in 1e-8 USD
            scaled = value * 10**r.config.decimals * RAY // (r.price * r.liquidity_index) + 1
            reserves[rid] = UserReserve(scaled_atoken=scaled, collateral_enabled=True)
        no_debt = {i: UserReserve(u.scaled_atoken, 0, 0, 0, 0, True) for i, u in reserves.items()}
        data = calculate_account_data(
            no_debt, market.reserves, emode, market.emode_categories, TS, prices
        )
        capacity = data.total_collateral_base * data.current_liquidation_threshold // 10_000
        if capacity == 0 or rng.random() < 0.1:
            users[f"n{k}"] = UserPosition(emode, no_debt)  # no debt: never a candidate
            continue
        debt_value = int(capacity / rng.uniform(0.9, 3.0))
        rid = rng.choice(ids)
        r = market.reserves[rid]
        amount = debt_value * 10**r.config.decimals // r.price
        current = reserves.get(rid, UserReserve())
        if rng.random() < 0.05:
            debt = dataclasses.replace(
                current,
                stable_debt_principal=amount + 1,
                stable_rate=rng.randint(0, RAY),
                stable_last_update=TS - rng.randint(0, 10**7),
            )
        else:
            debt = dataclasses.replace(
                current, scaled_variable_debt=amount * RAY // r.variable_borrow_index + 1
            )
        reserves[rid] = debt
        users[f"u{k}"] = UserPosition(emode, reserves)
    return users


def test_random_book_of_20k_is_screened_soundly_and_selectively() -> None:
    rng = random.Random(4242)
    reserves = {
        rid: make_reserve(
            rid,
            decimals,
            price,
            threshold,
            emode=emode,
            income=rng.randint(RAY, 3 * RAY),
            debt_index=rng.randint(RAY, 3 * RAY),
        )
        for rid, (decimals, price, threshold, emode) in enumerate(
            [
                (18, 3000 * 10**8, 8300, 1),
                (6, 10**8, 8000, 0),
                (8, 60_000 * 10**8, 7800, 0),
                (18, 2900 * 10**8, 7500, 1),
                (18, 10**8, 0, 2),  # not collateral at all, but borrowable
                (12, 7 * 10**7, 6500, 2),
            ]
        )
    }
    categories = {
        1: EModeCategory(1, 9000, 9300, 10100, ZERO_ADDRESS, "eth"),
        2: EModeCategory(2, 9000, 9500, 10100, ORACLE, "oracle"),
    }
    market = MarketState(1, reserves, {}, categories)
    prices = {2: 10**8}
    users = random_book(rng, market, prices, 20_000)
    screener = Screener(users, sorted(reserves))
    liquidatable, candidates = assert_screen_is_sound(screener, users, market, prices)
    assert 0.02 * len(users) < liquidatable < 0.1 * len(users)
    assert candidates < 0.2 * len(users)
    # The bound is only ~1 bp conservative: hardly anyone above 1 is screened in.
    assert candidates - liquidatable < 0.01 * len(users)


def test_random_markets_with_stable_debt_and_emode_oracles() -> None:
    rng = random.Random(5)
    for _ in range(6):
        market, prices = random_market(rng, n=6)
        users = random_book(rng, market, prices, 500)
        assert_screen_is_sound(Screener(users, sorted(market.reserves)), users, market, prices)


# --- row maintenance and unusual inputs ----------------------------------------------------


def simple_market() -> MarketState:
    reserves = {
        0: make_reserve(0, 18, 2000 * 10**8, 8000, emode=1),
        1: make_reserve(1, 6, 10**8, 8500),
        2: make_reserve(2, 8, 50_000 * 10**8, 7500),
    }
    categories = {1: EModeCategory(1, 9000, 9300, 10100, ZERO_ADDRESS, "eth")}
    return MarketState(1, reserves, {}, categories)


def loan(hf_percent: int, emode: int = 0, debt_reserve: int = 1) -> UserPosition:
    """1 WETH (2000 USD) of collateral and USDC debt for roughly the given HF (80 % LT)."""
    debt_usd = 2000 * 80 // hf_percent
    debt = UserReserve(scaled_variable_debt=debt_usd * 10**6)
    if debt_reserve == 2:
        debt = UserReserve(scaled_variable_debt=debt_usd * 10**8 // 50_000)
    return UserPosition(
        emode, {0: UserReserve(10**18, collateral_enabled=True), debt_reserve: debt}
    )


def test_updates_and_removals_are_reflected() -> None:
    market = simple_market()
    ids = [0, 1, 2]
    screener = Screener({"healthy": loan(150), "sick": loan(90), "idle": UserPosition()}, ids)
    assert set(screener.candidates(market, TS)) == {"sick"}

    screener.update("healthy", loan(95))
    screener.update("sick", loan(200))
    assert set(screener.candidates(market, TS)) == {"healthy"}
    # Moving to e-mode (93 % LT) makes 95 healthy; the row moves to the e-mode block.
    screener.update("healthy", loan(95, emode=1))
    assert screener.candidates(market, TS) == []
    screener.update("new", loan(50))
    assert set(screener.candidates(market, TS)) == {"new"}
    screener.remove("new")
    screener.remove("never-added")
    assert screener.candidates(market, TS) == []
    assert "new" not in screener and len(screener) == 3
    # A position in a reserve the screener has no column for: always a candidate.
    screener.update("sick", loan(500, debt_reserve=7))
    assert screener.candidates(market, TS) == ["sick"]
    screener.update("sick", loan(500))
    assert screener.candidates(market, TS) == []


def test_many_random_updates_match_a_fresh_build() -> None:
    rng = random.Random(11)
    market = simple_market()
    ids = [0, 1, 2]
    book: dict[str, UserPosition] = {}
    screener = Screener({}, ids)
    for step in range(1500):  # grows past the initial capacity, swaps rows on removal
        user = f"u{rng.randrange(300)}"
        if user in book and rng.random() < 0.3:
            del book[user]
            screener.remove(user)
        else:
            position = loan(rng.randint(60, 200), rng.choice([0, 1]), rng.choice([1, 2]))
            if rng.random() < 0.1:
                position.reserves[1] = UserReserve(
                    stable_debt_principal=10**9, stable_rate=RAY // 10, stable_last_update=TS - 10
                )
            book[user] = position
            screener.update(user, position)
        if step % 100 == 0:
            assert sorted(screener.candidates(market, TS)) == sorted(
                Screener(book, ids).candidates(market, TS)
            )
    assert len(screener) == len(book)
    assert_screen_is_sound(screener, book, market, None)


def test_removal_moves_rows_of_stable_debt_users() -> None:
    market = simple_market()
    stable = UserPosition(
        0,
        {
            0: UserReserve(10**18, collateral_enabled=True),
            1: UserReserve(stable_debt_principal=1900 * 10**6, stable_last_update=TS),
        },
    )
    screener = Screener({"a": loan(300), "s": stable, "b": loan(300)}, [0, 1, 2])
    assert screener.candidates(market, TS) == ["s"]
    screener.remove("a")  # "b" moves into row 0
    screener.remove("b")  # now "s" moves into row 0
    assert screener.candidates(market, TS) == ["s"]
    screener.update("c", loan(300))
    assert screener.candidates(market, TS) == ["s"]


def test_stable_debt_is_grown_to_the_screening_timestamp() -> None:
    later = TS + 365 * 86_400
    reserves = {
        rid: dataclasses.replace(r, last_update_timestamp=TS)
        for rid, r in simple_market().reserves.items()
    }
    market = MarketState(1, reserves, {}, simple_market().emode_categories)
    position = UserPosition(
        0,
        {
            0: UserReserve(10**18, collateral_enabled=True),
            # 1500 USDC at 30 %/year: HF 1.07 now, ~0.8 after a year.
            1: UserReserve(
                stable_debt_principal=1500 * 10**6, stable_rate=3 * RAY // 10, stable_last_update=TS
            ),
        },
    )
    screener = Screener({"s": position}, [0, 1, 2])
    assert screener.candidates(market, TS) == []
    hf_later = calculate_account_data(position.reserves, reserves, 0, {}, later).health_factor
    assert hf_later < WAD
    assert screener.candidates(market, later) == ["s"]


def test_unresolvable_market_data_forces_candidates() -> None:
    market = simple_market()
    users = {"a": loan(300), "b": loan(300, debt_reserve=2), "c": loan(300, emode=1)}
    screener = Screener(users, [0, 1, 2])
    assert screener.candidates(market, TS) == []
    # Reserve 2 missing from the market: only its user is handed over.
    no_wbtc = dataclasses.replace(market, reserves={i: market.reserves[i] for i in (0, 1)})
    assert screener.candidates(no_wbtc, TS) == ["b"]
    # E-mode category with a price source but no price: its users are handed over.
    oracle = {1: dataclasses.replace(market.emode_categories[1], price_source=ORACLE)}
    assert screener.candidates(dataclasses.replace(market, emode_categories=oracle), TS) == ["c"]
    # A reserve updated after ts: its indexes revert, so its users are handed over.
    future = dict(market.reserves)
    future[1] = dataclasses.replace(future[1], last_update_timestamp=TS + 1)
    assert sorted(screener.candidates(dataclasses.replace(market, reserves=future), TS)) == [
        "a",
        "c",
    ]


def test_margin_below_float_error_is_refused() -> None:
    screener = Screener({}, [0])
    with pytest.raises(ValueError):
        screener.candidates(simple_market(), TS, margin=MIN_MARGIN / 10)
