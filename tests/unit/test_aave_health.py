"""calculateUserAccountData / liquidation amounts against hand-derived Aave V3 values."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from bot.adapters.aave_v3.config import ReserveConfig
from bot.adapters.aave_v3.health import (
    CLOSE_FACTOR_HF_THRESHOLD,
    ZERO_ADDRESS,
    AccountData,
    EModeCategory,
    LiquidationAmounts,
    ReserveState,
    UserReserve,
    calculate_account_data,
    calculate_available_collateral_to_liquidate,
    liquidation_amounts,
    normalized_debt,
    normalized_income,
    stable_debt_balance,
)
from bot.adapters.aave_v3.math import RAY, SECONDS_PER_YEAR, UINT256_MAX, WAD

TS = 1_700_000_000
S = SECONDS_PER_YEAR
# A per-second rate of exactly 1e18 ray: compounded over 2 s is RAY + 2e18 + 1e9 exactly
# (see test_aave_math.test_compounded_interest_exact_powers).
PER_SECOND_RATE = S * 10**18
ORACLE = "0x" + "0" * 39 + "1"

BASE_CFG = ReserveConfig(
    ltv=8000,
    liquidation_threshold=8250,
    liquidation_bonus=10500,
    decimals=18,
    reserve_factor=1000,
)


def reserve(
    rid: int,
    price: int,
    *,
    liquidity_index: int = RAY,
    variable_borrow_index: int = RAY,
    liquidity_rate: int = 0,
    borrow_rate: int = 0,
    last_update: int = TS,
    **cfg: Any,
) -> ReserveState:
    return ReserveState(
        asset=f"0x{rid + 0xA0:040x}",
        id=rid,
        config=dataclasses.replace(BASE_CFG, **cfg),
        liquidity_index=liquidity_index,
        variable_borrow_index=variable_borrow_index,
        current_liquidity_rate=liquidity_rate,
        current_variable_borrow_rate=borrow_rate,
        last_update_timestamp=last_update,
        price=price,
    )


WETH = reserve(0, 2000 * 10**8, emode_category=1, liquidation_protocol_fee=1000)
USDC = reserve(1, 10**8, decimals=6, ltv=7700, liquidation_threshold=8000, liquidation_bonus=10450)
WSTETH = reserve(2, 2200 * 10**8, ltv=7000, liquidation_threshold=7500, emode_category=1)
# 8 decimals at price 1e8: the base-currency value equals the raw balance.
ZERO_LTV = reserve(3, 10**8, decimals=8, ltv=0, liquidation_threshold=7000)
NO_THRESHOLD = reserve(4, 10**8, decimals=8, ltv=0, liquidation_threshold=0)
RESERVES = {r.id: r for r in (WETH, USDC, WSTETH, ZERO_LTV, NO_THRESHOLD)}

EMODE_ETH = EModeCategory(1, 9000, 9300, 10100, ZERO_ADDRESS, "ETH correlated")
EMODE_OTHER = EModeCategory(2, 9700, 9750, 10100, ZERO_ADDRESS, "stables")
EMODES = {1: EMODE_ETH, 2: EMODE_OTHER}
EMODES_WITH_ORACLE = {1: dataclasses.replace(EMODE_ETH, price_source=ORACLE), 2: EMODE_OTHER}


def collateral(scaled: int) -> UserReserve:
    return UserReserve(scaled_atoken=scaled, collateral_enabled=True)


def variable_debt(scaled: int) -> UserReserve:
    return UserReserve(scaled_variable_debt=scaled)


def account(
    users: Mapping[int, UserReserve],
    *,
    reserves: Mapping[int, ReserveState] = RESERVES,
    emode: int = 0,
    emodes: Mapping[int, EModeCategory] = EMODES,
    emode_prices: Mapping[int, int] | None = None,
) -> AccountData:
    return calculate_account_data(users, reserves, emode, emodes, TS, emode_prices)


# --- indexes and balances ---------------------------------------------------------------


def test_normalized_income_is_linear() -> None:
    # half a year at 10%: RAY + 1e26 * (S/2) / S = 1.05e27; rayMul(1.05e27, 1.02e27) = 1.071e27
    r = reserve(9, 1, liquidity_index=102 * 10**25, liquidity_rate=10**26, last_update=TS - S // 2)
    assert normalized_income(r, TS) == 1071 * 10**24
    # Updated in this block: the stored index wins even with a non-zero rate.
    assert normalized_income(dataclasses.replace(r, last_update_timestamp=TS), TS) == 102 * 10**25
    with pytest.raises(ValueError):
        normalized_income(r, TS - S)  # timestamp before the last update underflows


def test_normalized_debt_is_compounded() -> None:
    # rayMul(RAY + 2e18 + 1e9, 2e27) = 2e27 + 4e18 + 2e9
    r = reserve(
        9, 1, variable_borrow_index=2 * RAY, borrow_rate=PER_SECOND_RATE, last_update=TS - 2
    )
    assert normalized_debt(r, TS) == 2 * RAY + 4 * 10**18 + 2 * 10**9
    assert normalized_debt(r, TS - 2) == 2 * RAY


def test_stable_debt_balance() -> None:
    # rayMul(1000e6, RAY + 2e18 + 1e9) = 1000e6 + (2e27 + 1e18 + 0.5e27) // 1e27 = 1000e6 + 2
    u = UserReserve(
        stable_debt_principal=1000 * 10**6, stable_rate=PER_SECOND_RATE, stable_last_update=TS - 2
    )
    assert stable_debt_balance(u, TS) == 1000 * 10**6 + 2
    # No principal: 0 before any interest maths (a future timestamp must not revert).
    assert stable_debt_balance(UserReserve(stable_rate=RAY, stable_last_update=TS + 9), TS) == 0


# --- calculateUserAccountData -----------------------------------------------------------


def test_basic_account_data() -> None:
    # collateral: rayMul(1e18, 1.05e27) = 1.05e18 WETH * 2000e8 / 1e18 = 2100e8
    # debt: rayMul(1000e6, 1.2e27) = 1200e6 USDC * 1e8 / 1e6 = 1200e8
    # HF = percentMul(2100e8, 8250) = 1732.5e8; wadDiv(1732.5e8, 1200e8) = 1.44375e18
    # available = percentMul(2100e8, 8000) - 1200e8 = 480e8
    reserves = {
        **RESERVES,
        0: dataclasses.replace(WETH, liquidity_index=105 * 10**25),
        1: dataclasses.replace(USDC, variable_borrow_index=12 * 10**26),
    }
    users = {0: collateral(10**18), 1: variable_debt(1000 * 10**6)}
    assert account(users, reserves=reserves) == AccountData(
        total_collateral_base=2100 * 10**8,
        total_debt_base=1200 * 10**8,
        available_borrows_base=480 * 10**8,
        current_liquidation_threshold=8250,
        ltv=8000,
        health_factor=1_443_750_000_000_000_000,
    )


def test_accrual_since_last_update() -> None:
    # WETH income over half a year at 10% = 1.05 -> 2100e8 collateral.
    # USDC variable: rayMul(1000e6, RAY + 2e18 + 1e9) = 1000e6 + 2; stable the same -> the
    # debt is 2000000004 wei -> 2000000004 * 1e8 / 1e6 = 200000000400 base.
    # HF = wadDiv(1732.5e8, 200000000400) = 0.866249998267500003|46 -> ...003
    reserves = {
        **RESERVES,
        0: dataclasses.replace(
            WETH, current_liquidity_rate=10**26, last_update_timestamp=TS - S // 2
        ),
        1: dataclasses.replace(
            USDC, current_variable_borrow_rate=PER_SECOND_RATE, last_update_timestamp=TS - 2
        ),
    }
    debt = UserReserve(
        scaled_variable_debt=1000 * 10**6,
        stable_debt_principal=1000 * 10**6,
        stable_rate=PER_SECOND_RATE,
        stable_last_update=TS - 2,
    )
    data = account({0: collateral(10**18), 1: debt}, reserves=reserves)
    assert (data.total_collateral_base, data.total_debt_base) == (2100 * 10**8, 200_000_000_400)
    assert data.health_factor == 866_249_998_267_500_003


def test_empty_user_and_no_debt() -> None:
    empty = AccountData(0, 0, 0, 0, 0, UINT256_MAX)
    assert account({}) == empty
    # Entries with neither bit set are skipped, exactly like an empty user config.
    assert account({0: UserReserve(scaled_atoken=10**18)}) == empty
    # Collateral bit set on a zero balance: walked, but adds nothing.
    assert account({0: collateral(0)}) == empty
    # Collateral only: HF is uint256.max, available = percentMul(2000e8, 8000).
    assert account({0: collateral(10**18)}) == AccountData(
        2000 * 10**8, 0, 1600 * 10**8, 8250, 8000, UINT256_MAX
    )


def test_collateral_bit_off_means_zero_hf() -> None:
    # The aToken balance is ignored without the bit: HF = wadDiv(0, debt) = 0.
    users = {0: UserReserve(scaled_atoken=10**18), 1: variable_debt(10**6)}
    assert account(users) == AccountData(0, 10**8, 0, 0, 0, 0)


def test_averages_and_prices_truncate() -> None:
    a = reserve(5, 10**8, decimals=8, ltv=8000, liquidation_threshold=8500)
    b = reserve(6, 10**8, decimals=8, ltv=7000, liquidation_threshold=7002)
    odd_usdc = dataclasses.replace(USDC, price=100_000_123)
    reserves = {5: a, 6: b, 1: odd_usdc}
    # collateral base 2 + 1; avg LTV = (2*8000 + 7000) // 3 = 7666 (7666.67 floored),
    # avg threshold = (2*8500 + 7002) // 3 = 8000 (8000.67 floored).
    # debt 1 USDC-wei * 100000123 // 1e6 = 100 (truncated).
    # HF = wadDiv(percentMul(3, 8000) = (24000 + 5000) // 1e4 = 2, 100) = 2e16.
    # available: percentMul(3, 7666) = 2 < 100 -> 0.
    users = {5: collateral(2), 6: collateral(1), 1: variable_debt(1)}
    assert account(users, reserves=reserves) == AccountData(3, 100, 0, 8000, 7666, 2 * 10**16)


def test_ltv_zero_collateral() -> None:
    # WETH 2000e8 (8000/8250) + zero-LTV 2000e8 (0/7000), debt 1000e8.
    # avg LTV = 2000e8 * 8000 / 4000e8 = 4000: the zero-LTV balance stays in the divisor.
    # avg threshold = (8250 + 7000) / 2 = 7625; HF = 4000e8 * 0.7625 / 1000e8 = 3.05
    # available = percentMul(4000e8, 4000) - 1000e8 = 600e8
    users = {0: collateral(10**18), 3: collateral(2000 * 10**8), 1: variable_debt(1000 * 10**6)}
    assert account(users) == AccountData(
        4000 * 10**8, 1000 * 10**8, 600 * 10**8, 7625, 4000, 305 * 10**16
    )


def test_threshold_zero_reserve_is_not_collateral_but_its_debt_counts() -> None:
    both = UserReserve(
        scaled_atoken=1000 * 10**8, scaled_variable_debt=100 * 10**8, collateral_enabled=True
    )
    # HF = percentMul(2000e8, 8250) / 100e8 = 16.5
    assert account({0: collateral(10**18), 4: both}) == AccountData(
        2000 * 10**8, 100 * 10**8, 1500 * 10**8, 8250, 8000, 165 * 10**17
    )


def test_emode_overrides_only_the_users_category() -> None:
    users = {0: collateral(10**18), 1: collateral(1000 * 10**6)}  # 2000e8 WETH + 1000e8 USDC
    # e-mode 1: WETH at 9000/9300, USDC keeps 7700/8000.
    # LTV = (2*9000 + 7700) // 3 = 8566; threshold = (2*9300 + 8000) // 3 = 8866
    in_emode = account(users, emode=1)
    assert (in_emode.ltv, in_emode.current_liquidation_threshold) == (8566, 8866)
    # No e-mode, or another category: own params. LTV = (2*8000 + 7700) // 3 = 7900,
    # threshold = (2*8250 + 8000) // 3 = 8166.
    for emode in (0, 2):
        data = account(users, emode=emode)
        assert (data.ltv, data.current_liquidation_threshold) == (7900, 8166)


def test_emode_does_not_lift_a_zero_ltv_reserve() -> None:
    zero_ltv_eth = reserve(
        7, 10**8, decimals=8, ltv=0, liquidation_threshold=7500, emode_category=1
    )
    # The zero-LTV test reads the reserve's LTV, so e-mode's 9000 never applies here,
    # while its 9300 threshold does.
    data = account({7: collateral(1000 * 10**8)}, reserves={7: zero_ltv_eth}, emode=1)
    assert data == AccountData(1000 * 10**8, 0, 0, 9300, 0, UINT256_MAX)


def test_emode_price_source() -> None:
    users = {0: collateral(10**18), 2: variable_debt(5 * 10**17), 1: variable_debt(100 * 10**6)}
    # WETH and wstETH (category 1) both at the e-mode price 1900e8, USDC at its own price:
    # collateral 1900e8; debt 0.5 * 1900e8 + 100e8 = 1050e8.
    # HF = percentMul(1900e8, 9300) = 1767e8 / 1050e8 = 1.682857142857142857|14
    # available = percentMul(1900e8, 9000) - 1050e8 = 660e8
    data = account(users, emode=1, emodes=EMODES_WITH_ORACLE, emode_prices={1: 1900 * 10**8})
    assert data == AccountData(
        1900 * 10**8, 1050 * 10**8, 660 * 10**8, 9300, 9000, 1_682_857_142_857_142_857
    )
    # A zero oracle answer for the source falls back to each asset's own price.
    fallback = account(users, emode=1, emodes=EMODES_WITH_ORACLE, emode_prices={1: 0})
    assert (fallback.total_collateral_base, fallback.total_debt_base) == (
        2000 * 10**8,
        1100 * 10**8 + 100 * 10**8,
    )
    with pytest.raises(ValueError):
        account(users, emode=1, emodes=EMODES_WITH_ORACLE)


def test_inconsistent_inputs_raise() -> None:
    with pytest.raises(ValueError):
        account({8: collateral(1)})  # reserve 8 unknown
    with pytest.raises(ValueError):
        account({0: collateral(1)}, emode=3)  # category 3 unknown
    with pytest.raises(ValueError):
        account({1: collateral(1)}, reserves={1: WETH})  # id mismatch


# --- liquidation ------------------------------------------------------------------------


def liquidate(
    coll: ReserveState,
    debt: ReserveState,
    user_coll: UserReserve,
    user_debt: UserReserve,
    *,
    hf: int,
    cover: int = UINT256_MAX,
    emode: int = 0,
    emodes: Mapping[int, EModeCategory] = EMODES,
    emode_prices: Mapping[int, int] | None = None,
) -> LiquidationAmounts:
    return liquidation_amounts(
        health_factor=hf,
        collateral_reserve=coll,
        debt_reserve=debt,
        user_collateral=user_coll,
        user_debt=user_debt,
        user_emode=emode,
        emode_categories=emodes,
        debt_to_cover=cover,
        ts=TS,
        emode_prices=emode_prices,
    )


def hf_of(users: Mapping[int, UserReserve]) -> int:
    return account(users).health_factor


def test_close_factor_half_when_hf_above_095() -> None:
    users = {0: collateral(10**18), 1: variable_debt(1700 * 10**6)}
    hf = hf_of(users)
    assert hf == 970_588_235_294_117_647  # 1650e8 / 1700e8
    # max debt = percentMul(1700e6, 5000) = 850e6.
    # base collateral = 1e8 * 850e6 * 1e18 / (2000e8 * 1e6) = 0.425e18; with 5% bonus
    # 0.44625e18. Bonus part = 0.44625e18 - percentDiv(.., 10500) = 0.02125e18, 10% of it
    # (2.125e15) goes to the treasury, the rest (0.444125e18) to the liquidator.
    assert liquidate(WETH, USDC, users[0], users[1], hf=hf) == (
        850 * 10**6,
        444_125_000_000_000_000,
        2_125_000_000_000_000,
    )


def test_close_factor_full_when_hf_at_or_below_095() -> None:
    users = {0: collateral(10**18), 1: variable_debt(1800 * 10**6)}
    hf = hf_of(users)  # 1650 / 1800 = 0.9166..
    # All 1800e6: base 0.9e18, seized 0.945e18, bonus 0.045e18, fee 4.5e15.
    assert liquidate(WETH, USDC, users[0], users[1], hf=hf) == (
        1800 * 10**6,
        9405 * 10**14,
        45 * 10**14,
    )
    # A smaller debt_to_cover wins: base 0.5e18, seized 0.525e18, fee 2.5e15.
    assert liquidate(WETH, USDC, users[0], users[1], hf=hf, cover=1000 * 10**6) == (
        1000 * 10**6,
        5225 * 10**14,
        25 * 10**14,
    )


def test_close_factor_boundary_and_rounding() -> None:
    debt = variable_debt(1_000_001)
    coll = collateral(10**18)
    # HF == 0.95e18 is not "> threshold": the whole debt is liquidatable.
    full = liquidate(WETH, USDC, coll, debt, hf=CLOSE_FACTOR_HF_THRESHOLD)
    assert full.actual_debt_to_liquidate == 1_000_001
    # One wei above: percentMul(1000001, 5000) = 500000.5 -> 500001 (half up).
    half = liquidate(WETH, USDC, coll, debt, hf=CLOSE_FACTOR_HF_THRESHOLD + 1)
    assert half.actual_debt_to_liquidate == 500_001


def test_collateral_cap_shrinks_the_debt_repaid() -> None:
    users = {0: collateral(10**18), 1: variable_debt(2000 * 10**6)}
    hf = hf_of(users)  # 0.825 -> close factor 1
    # base 1e18 WETH, * 1.05 = 1.05e18 > the 1e18 balance -> seize 1e18 and repay
    # percentDiv(2000e8 * 1e18 * 1e6 / (1e8 * 1e18) = 2000e6, 10500) = 1904761905.
    # bonus part = 1e18 - percentDiv(1e18, 10500) = 1e18 - 952380952380952381;
    # fee = percentMul(47619047619047619, 1000) = 4761904761904761.9 -> ..762.
    assert liquidate(WETH, USDC, users[0], users[1], hf=hf) == (
        1_904_761_905,
        995_238_095_238_095_238,
        4_761_904_761_904_762,
    )


def test_treasury_fee_clamped_to_remaining_scaled_balance() -> None:
    usdt = reserve(8, 10**8, decimals=6, liquidation_protocol_fee=1000, liquidity_index=15 * 10**26)
    coll = collateral(63)  # rayMul(63, 1.5e27) = 94.5 -> 95 wei
    # The cap binds: seize 95, repay percentDiv(95, 10500) = 90; bonus 95 - 90 = 5,
    # fee = percentMul(5, 1000) = 0.5 -> 1, so 94 to the liquidator.
    raw = calculate_available_collateral_to_liquidate(
        collateral_price=10**8,
        debt_price=10**8,
        collateral_decimals=6,
        debt_decimals=6,
        debt_to_cover=1000 * 10**6,
        user_collateral_balance=95,
        liquidation_bonus=10500,
        liquidation_protocol_fee_bps=1000,
    )
    assert raw == (90, 94, 1)
    # On chain, 94 leaves as rayDiv(94, 1.5e27) = 62.67 -> 63 scaled: nothing is left, the
    # fee's rayDiv(1, 1.5e27) = 1 > 0, so the treasury gets rayMul(0, index) = 0.
    assert liquidate(usdt, USDC, coll, variable_debt(1000 * 10**6), hf=WAD // 2) == (90, 94, 0)


def test_bonus_part_uses_half_up_percent_div() -> None:
    # Cap binds at 22 wei: repay percentDiv(22, 10500) = (220000 + 5250) // 10500 = 21.
    # Bonus part = 22 - percentDiv(22, 10500) = 22 - 21 (20.95 rounds up) = 1, and a 100%
    # protocol fee takes all of it: 21 to the liquidator, 1 to the treasury.
    result = calculate_available_collateral_to_liquidate(
        collateral_price=10**8,
        debt_price=10**8,
        collateral_decimals=6,
        debt_decimals=6,
        debt_to_cover=10**6,
        user_collateral_balance=22,
        liquidation_bonus=10500,
        liquidation_protocol_fee_bps=10000,
    )
    assert result == (21, 21, 1)


def test_no_protocol_fee() -> None:
    # USDC collateral has no protocol fee: the full 5% bonus goes to the liquidator.
    # debt 0.1 wstETH * 2200e8 -> base = 2200e8 * 1e17 * 1e6 / (1e8 * 1e18) = 220e6 USDC;
    # percentMul(220e6, 10450) = 229.9e6
    result = liquidate(USDC, WSTETH, collateral(10**12), variable_debt(10**17), hf=WAD // 2)
    assert result == (10**17, 229_900_000, 0)


def test_variable_and_stable_debt_add_up() -> None:
    debt = UserReserve(
        scaled_variable_debt=500 * 10**6,
        stable_debt_principal=500 * 10**6,
        stable_rate=0,
        stable_last_update=TS - 100,
    )
    # total 1000e6 (a zero stable rate compounds to RAY); close factor 0.5 -> 500e6
    result = liquidate(WETH, USDC, collateral(10**18), debt, hf=96 * 10**16)
    assert result.actual_debt_to_liquidate == 500 * 10**6


def test_emode_liquidation_bonus_and_price() -> None:
    prices = {1: 1900 * 10**8}
    # WETH collateral, wstETH debt, both category 1: both at 1900e8 so base = debt amount,
    # e-mode bonus 1.01: seize 0.505e18; bonus part 5e15, 10% fee 5e14.
    result = liquidate(
        WETH,
        WSTETH,
        collateral(10**18),
        variable_debt(5 * 10**17),
        hf=WAD // 2,
        emode=1,
        emodes=EMODES_WITH_ORACLE,
        emode_prices=prices,
    )
    assert result == (5 * 10**17, 5045 * 10**14, 5 * 10**14)

    # USDC collateral outside the category: its own 10450 bonus and 1e8 price, but the
    # debt still takes the e-mode price: 1900e8 * 1e17 * 1e6 / (1e8 * 1e18) = 190e6,
    # percentMul(190e6, 10450) = 198.55e6.
    result = liquidate(
        USDC,
        WSTETH,
        collateral(10**12),
        variable_debt(10**17),
        hf=WAD // 2,
        emode=1,
        emodes=EMODES_WITH_ORACLE,
        emode_prices=prices,
    )
    assert result == (10**17, 198_550_000, 0)


def test_emode_price_applies_to_out_of_category_debt() -> None:
    # _getConfigurationData switches the debt price to the e-mode source without checking
    # the debt's category: 100 USDC is priced at 1900e8 each, unlike in the HF maths.
    # base = 100e18 WETH > balance -> seize 1e18 and repay
    # percentDiv(1900e8 * 1e18 * 1e6 / (1900e8 * 1e18) = 1e6, 10100) = 990099;
    # fee = percentMul(1e18 - 990099009900990099, 1000) = 990099009900990.1 -> ..990
    result = liquidate(
        WETH,
        USDC,
        collateral(10**18),
        variable_debt(100 * 10**6),
        hf=WAD // 2,
        emode=1,
        emodes=EMODES_WITH_ORACLE,
        emode_prices={1: 1900 * 10**8},
    )
    assert result == (990_099, 10**18 - 990_099_009_900_990, 990_099_009_900_990)
    # Without a price source only the bonus changes.
    plain = liquidate(
        WETH, USDC, collateral(10**18), variable_debt(100 * 10**6), hf=WAD // 2, emode=1
    )
    # base = 1e8 * 100e6 * 1e18 / (2000e8 * 1e6) = 0.05e18; * 1.01 = 0.0505e18;
    # bonus part 5e14, fee 5e13.
    assert plain == (100 * 10**6, 505 * 10**14 - 5 * 10**13, 5 * 10**13)


@pytest.mark.parametrize(
    ("coll", "user_coll", "debt", "hf", "code"),
    [
        (WETH, collateral(10**18), variable_debt(10**6), WAD, "45"),
        (WETH, UserReserve(scaled_atoken=10**18), variable_debt(10**6), WAD // 2, "46"),
        (NO_THRESHOLD, collateral(10**8), variable_debt(10**6), WAD // 2, "46"),
        (WETH, collateral(10**18), UserReserve(), WAD // 2, "47"),
        (
            dataclasses.replace(WETH, config=dataclasses.replace(WETH.config, paused=True)),
            collateral(10**18),
            variable_debt(10**6),
            WAD // 2,
            "29",
        ),
        (
            dataclasses.replace(WETH, config=dataclasses.replace(WETH.config, active=False)),
            collateral(10**18),
            variable_debt(10**6),
            WAD // 2,
            "27",
        ),
    ],
)
def test_liquidation_reverts(
    coll: ReserveState, user_coll: UserReserve, debt: UserReserve, hf: int, code: str
) -> None:
    with pytest.raises(ValueError, match=f"^{code} "):
        liquidate(coll, USDC, user_coll, debt, hf=hf)
