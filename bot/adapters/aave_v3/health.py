"""Exact Aave V3 account health and liquidation amounts, as pure integer functions.

Reproduces, for core-v3 1.19.3 (protocol v3.0.x):

* ``ReserveLogic.getNormalizedIncome`` / ``getNormalizedDebt``
* ``StableDebtToken.balanceOf``
* ``GenericLogic.calculateUserAccountData`` + ``calculateAvailableBorrows``, i.e. what
  ``Pool.getUserAccountData`` returns
* ``LiquidationLogic.executeLiquidationCall``'s amounts (``_calculateDebt``,
  ``_getConfigurationData``, ``_calculateAvailableCollateralToLiquidate`` and the
  treasury-fee clamp).

Every input is a snapshot read from chain at timestamp ``ts``; nothing here does I/O.
Where the contract would revert, ``ValueError`` is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from bot.adapters.aave_v3.config import ReserveConfig
from bot.adapters.aave_v3.math import (
    UINT256_MAX,
    WAD,
    calculate_compounded_interest,
    calculate_linear_interest,
    checked,
    checked_mul,
    percent_div,
    percent_mul,
    ray_div,
    ray_mul,
    wad_div,
)

# ValidationLogic.HEALTH_FACTOR_LIQUIDATION_THRESHOLD
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD
# LiquidationLogic constants (bps and wad).
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16

NO_DEBT_HEALTH_FACTOR = UINT256_MAX
ZERO_ADDRESS = "0x" + "0" * 40


@dataclass(frozen=True, slots=True)
class ReserveState:
    """One reserve's ``ReserveData`` plus its AaveOracle price, as read at some block."""

    asset: str
    id: int
    config: ReserveConfig
    liquidity_index: int
    variable_borrow_index: int
    current_liquidity_rate: int
    current_variable_borrow_rate: int
    last_update_timestamp: int
    price: int


@dataclass(frozen=True, slots=True)
class EModeCategory:
    """``DataTypes.EModeCategory`` (percentages in bps)."""

    id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_source: str = ZERO_ADDRESS
    label: str = ""


@dataclass(frozen=True, slots=True)
class UserReserve:
    """A user's raw token state in one reserve.

    ``collateral_enabled`` is the user-config collateral bit, not "has a balance": the bit
    can be set with a zero aToken balance and the contract then counts a zero balance.
    """

    scaled_atoken: int = 0
    scaled_variable_debt: int = 0
    stable_debt_principal: int = 0
    stable_rate: int = 0
    stable_last_update: int = 0
    collateral_enabled: bool = False

    @property
    def borrowing(self) -> bool:
        """The user-config borrowing bit: the pool sets it iff the user holds any debt token."""
        return self.scaled_variable_debt > 0 or self.stable_debt_principal > 0


@dataclass(frozen=True, slots=True)
class AccountData:
    """``Pool.getUserAccountData`` return values, in the same units."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int
    ltv: int
    health_factor: int


class LiquidationAmounts(NamedTuple):
    """What ``liquidationCall`` moves: debt repaid, collateral to liquidator, fee to treasury."""

    actual_debt_to_liquidate: int
    collateral_to_liquidate: int
    liquidation_protocol_fee_amount: int


def normalized_income(r: ReserveState, ts: int) -> int:
    """``ReserveLogic.getNormalizedIncome`` at ``block.timestamp = ts``."""
    if r.last_update_timestamp == ts:
        return r.liquidity_index
    interest = calculate_linear_interest(r.current_liquidity_rate, r.last_update_timestamp, ts)
    return ray_mul(interest, r.liquidity_index)


def normalized_debt(r: ReserveState, ts: int) -> int:
    """``ReserveLogic.getNormalizedDebt`` at ``block.timestamp = ts``."""
    if r.last_update_timestamp == ts:
        return r.variable_borrow_index
    interest = calculate_compounded_interest(
        r.current_variable_borrow_rate, r.last_update_timestamp, ts
    )
    return ray_mul(interest, r.variable_borrow_index)


def stable_debt_balance(u: UserReserve, ts: int) -> int:
    """``StableDebtToken.balanceOf``: principal grown at the user's own stable rate."""
    if u.stable_debt_principal == 0:
        return 0
    interest = calculate_compounded_interest(u.stable_rate, u.stable_last_update, ts)
    return ray_mul(u.stable_debt_principal, interest)


def variable_debt_balance(u: UserReserve, r: ReserveState, ts: int) -> int:
    """``VariableDebtToken.balanceOf``: scaled balance times the normalized debt."""
    if u.scaled_variable_debt == 0:
        return 0
    return ray_mul(u.scaled_variable_debt, normalized_debt(r, ts))


def atoken_balance(u: UserReserve, r: ReserveState, ts: int) -> int:
    """``AToken.balanceOf``: scaled balance times the normalized income."""
    return ray_mul(u.scaled_atoken, normalized_income(r, ts))


def _has_price_source(category: EModeCategory) -> bool:
    return int(category.price_source, 16) != 0


def _emode_category(
    user_emode: int, emode_categories: Mapping[int, EModeCategory]
) -> EModeCategory:
    category = emode_categories.get(user_emode)
    if category is None:
        # setUserEMode only accepts configured categories, so this is a data-loading bug.
        raise ValueError(f"user e-mode category {user_emode} not in emode_categories")
    if category.id != user_emode:
        raise ValueError(f"emode_categories[{user_emode}] holds category {category.id}")
    return category


def _emode_price(category: EModeCategory, emode_prices: Mapping[int, int] | None) -> int:
    """``oracle.getAssetPrice(category.priceSource)``, or 0 when the category has none."""
    if not _has_price_source(category):
        return 0
    if emode_prices is None or category.id not in emode_prices:
        raise ValueError(f"e-mode category {category.id} has a price source but no price given")
    return emode_prices[category.id]


def _reserve(reserves: Mapping[int, ReserveState], reserve_id: int) -> ReserveState:
    reserve = reserves.get(reserve_id)
    if reserve is None:
        raise ValueError(f"user has a position in reserve {reserve_id} missing from reserves")
    if reserve.id != reserve_id:
        raise ValueError(f"reserves[{reserve_id}] holds reserve id {reserve.id}")
    return reserve


def calculate_available_borrows(total_collateral: int, total_debt: int, ltv: int) -> int:
    """``GenericLogic.calculateAvailableBorrows``."""
    available = percent_mul(total_collateral, ltv)
    return 0 if available < total_debt else available - total_debt


def calculate_account_data(
    user_reserves: Mapping[int, UserReserve],
    reserves: Mapping[int, ReserveState],
    user_emode: int,
    emode_categories: Mapping[int, EModeCategory],
    ts: int,
    emode_prices: Mapping[int, int] | None = None,
) -> AccountData:
    """``PoolLogic.executeGetUserAccountData`` (``GenericLogic.calculateUserAccountData``).

    ``user_reserves`` and ``reserves`` are keyed by reserve id. ``emode_prices`` maps an
    e-mode category id to the oracle price of its ``priceSource``; it is only needed when
    the user's category has a non-zero price source.
    """
    active = {i: u for i, u in user_reserves.items() if u.collateral_enabled or u.borrowing}
    if not active:
        # userConfig.isEmpty() short-circuit.
        return AccountData(0, 0, 0, 0, 0, NO_DEBT_HEALTH_FACTOR)

    emode_ltv = emode_threshold = emode_asset_price = 0
    if user_emode != 0:
        category = _emode_category(user_emode, emode_categories)
        emode_ltv = category.ltv
        emode_threshold = category.liquidation_threshold
        emode_asset_price = _emode_price(category, emode_prices)

    total_collateral = total_debt = avg_ltv = avg_threshold = 0
    for reserve_id in sorted(active):
        u = active[reserve_id]
        r = _reserve(reserves, reserve_id)
        cfg = r.config
        asset_unit = 10**cfg.decimals
        # The e-mode price applies to debt too, but only when the asset is in the user's
        # category; a zero oracle answer for the source falls back to the asset price.
        price = (
            emode_asset_price
            if emode_asset_price != 0 and user_emode == cfg.emode_category
            else r.price
        )

        if cfg.liquidation_threshold != 0 and u.collateral_enabled:
            # Solidity truncates here (unchecked division after a checked product).
            balance_base = checked_mul(atoken_balance(u, r, ts), price) // asset_unit
            total_collateral = checked(total_collateral + balance_base)
            in_emode = user_emode != 0 and cfg.emode_category == user_emode
            # The zero-LTV test uses the reserve's own LTV even in e-mode: such collateral
            # adds to the threshold average but never to the LTV average.
            if cfg.ltv != 0:
                avg_ltv = checked(
                    avg_ltv + checked_mul(balance_base, emode_ltv if in_emode else cfg.ltv)
                )
            threshold = emode_threshold if in_emode else cfg.liquidation_threshold
            avg_threshold = checked(avg_threshold + checked_mul(balance_base, threshold))

        if u.borrowing:
            debt = checked(variable_debt_balance(u, r, ts) + stable_debt_balance(u, ts))
            total_debt = checked(total_debt + checked_mul(price, debt) // asset_unit)

    # Solidity truncates here (unchecked): the averages are floor-divided, not rounded.
    avg_ltv = avg_ltv // total_collateral if total_collateral != 0 else 0
    avg_threshold = avg_threshold // total_collateral if total_collateral != 0 else 0

    health_factor = (
        NO_DEBT_HEALTH_FACTOR
        if total_debt == 0
        else wad_div(percent_mul(total_collateral, avg_threshold), total_debt)
    )
    return AccountData(
        total_collateral_base=total_collateral,
        total_debt_base=total_debt,
        available_borrows_base=calculate_available_borrows(total_collateral, total_debt, avg_ltv),
        current_liquidation_threshold=avg_threshold,
        ltv=avg_ltv,
        health_factor=health_factor,
    )


def _validate_liquidation(
    health_factor: int,
    collateral: ReserveState,
    debt: ReserveState,
    user_collateral: UserReserve,
    user_total_debt: int,
) -> None:
    """``ValidationLogic.validateLiquidationCall`` minus the price-oracle-sentinel check."""
    if not (collateral.config.active and debt.config.active):
        raise ValueError("27 RESERVE_INACTIVE")
    if collateral.config.paused or debt.config.paused:
        raise ValueError("29 RESERVE_PAUSED")
    if health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise ValueError("45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD")
    if collateral.config.liquidation_threshold == 0 or not user_collateral.collateral_enabled:
        raise ValueError("46 COLLATERAL_CANNOT_BE_LIQUIDATED")
    if user_total_debt == 0:
        raise ValueError("47 SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER")


def calculate_available_collateral_to_liquidate(
    *,
    collateral_price: int,
    debt_price: int,
    collateral_decimals: int,
    debt_decimals: int,
    debt_to_cover: int,
    user_collateral_balance: int,
    liquidation_bonus: int,
    liquidation_protocol_fee_bps: int,
) -> LiquidationAmounts:
    """``LiquidationLogic._calculateAvailableCollateralToLiquidate``.

    Returns (debt needed, collateral to the liquidator, protocol fee). The fee is carved
    out of the bonus part of the seized collateral, before the treasury-transfer clamp.
    """
    collateral_unit = 10**collateral_decimals
    debt_unit = 10**debt_decimals
    denominator = checked_mul(collateral_price, debt_unit)
    if denominator == 0:
        raise ValueError("collateral price is zero (division by zero)")
    base_collateral = checked_mul(debt_price, debt_to_cover, collateral_unit) // denominator
    max_collateral = percent_mul(base_collateral, liquidation_bonus)

    if max_collateral > user_collateral_balance:
        # The user's balance caps the seizure; the debt repaid is recomputed from it
        # (truncating division first, then a half-up percentDiv by the bonus).
        collateral_amount = user_collateral_balance
        debt_denominator = checked_mul(debt_price, collateral_unit)
        if debt_denominator == 0:
            raise ValueError("debt price is zero (division by zero)")
        debt_needed = percent_div(
            checked_mul(collateral_price, collateral_amount, debt_unit) // debt_denominator,
            liquidation_bonus,
        )
    else:
        collateral_amount = max_collateral
        debt_needed = debt_to_cover

    if liquidation_protocol_fee_bps == 0:
        return LiquidationAmounts(debt_needed, collateral_amount, 0)
    # Checked subtraction: a bonus below 100% makes percentDiv exceed the amount and revert.
    without_bonus = percent_div(collateral_amount, liquidation_bonus)
    bonus_collateral = checked(collateral_amount - without_bonus)
    fee = percent_mul(bonus_collateral, liquidation_protocol_fee_bps)
    return LiquidationAmounts(debt_needed, collateral_amount - fee, fee)


def liquidation_amounts(
    *,
    health_factor: int,
    collateral_reserve: ReserveState,
    debt_reserve: ReserveState,
    user_collateral: UserReserve,
    user_debt: UserReserve,
    user_emode: int,
    emode_categories: Mapping[int, EModeCategory],
    debt_to_cover: int,
    ts: int,
    emode_prices: Mapping[int, int] | None = None,
) -> LiquidationAmounts:
    """Amounts of ``LiquidationLogic.executeLiquidationCall`` for one (collateral, debt) pair.

    ``health_factor`` is the user's HF at ``ts`` (``calculate_account_data``); pass
    ``UINT256_MAX`` as ``debt_to_cover`` to liquidate as much as allowed. Raises
    ``ValueError`` where ``validateLiquidationCall`` would revert (the oracle-sentinel check
    is not modelled). The returned fee is the amount actually sent to the treasury, after
    the contract's clamp to the user's remaining scaled balance. Token-level reverts (e.g.
    a burn whose scaled amount rounds to 0) are not modelled.
    """
    # _calculateDebt: both balances at ts (the debt reserve is updated first on chain,
    # which yields the same indexes as the view functions).
    user_variable_debt = variable_debt_balance(user_debt, debt_reserve, ts)
    user_total_debt = checked(stable_debt_balance(user_debt, ts) + user_variable_debt)
    close_factor = (
        DEFAULT_LIQUIDATION_CLOSE_FACTOR
        if health_factor > CLOSE_FACTOR_HF_THRESHOLD
        else MAX_LIQUIDATION_CLOSE_FACTOR
    )
    max_liquidatable_debt = percent_mul(user_total_debt, close_factor)
    actual_debt = min(checked(debt_to_cover), max_liquidatable_debt)

    _validate_liquidation(
        health_factor, collateral_reserve, debt_reserve, user_collateral, user_total_debt
    )

    # _getConfigurationData: the e-mode bonus and collateral price only when the collateral
    # is in the user's category, but the debt price switches to the e-mode source
    # unconditionally (the contract assumes in-e-mode debt is always in the category).
    liquidation_bonus = collateral_reserve.config.liquidation_bonus
    collateral_price = collateral_reserve.price
    debt_price = debt_reserve.price
    if user_emode != 0:
        category = _emode_category(user_emode, emode_categories)
        has_source = _has_price_source(category)
        emode_price = _emode_price(category, emode_prices)
        if collateral_reserve.config.emode_category == user_emode:
            liquidation_bonus = category.liquidation_bonus
            if has_source:
                collateral_price = emode_price
        if has_source:
            debt_price = emode_price

    index = normalized_income(collateral_reserve, ts)
    user_collateral_balance = ray_mul(user_collateral.scaled_atoken, index)

    debt_needed, collateral_amount, fee = calculate_available_collateral_to_liquidate(
        collateral_price=collateral_price,
        debt_price=debt_price,
        collateral_decimals=collateral_reserve.config.decimals,
        debt_decimals=debt_reserve.config.decimals,
        debt_to_cover=actual_debt,
        user_collateral_balance=user_collateral_balance,
        liquidation_bonus=liquidation_bonus,
        liquidation_protocol_fee_bps=collateral_reserve.config.liquidation_protocol_fee,
    )

    if fee != 0:
        # The collateral leaves the user as amount.rayDiv(index) scaled units (burn or
        # transfer alike); the fee is then clamped to what is left, which can be 1 wei
        # short because of the two half-up roundings.
        moved_scaled = ray_div(collateral_amount, index)
        remaining_scaled = checked(user_collateral.scaled_atoken - moved_scaled)
        if ray_div(fee, index) > remaining_scaled:
            fee = ray_mul(remaining_scaled, index)

    return LiquidationAmounts(debt_needed, collateral_amount, fee)
