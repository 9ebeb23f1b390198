"""One Aave V3 ``liquidationCall`` (``receiveAToken = false``), exactly, as the strategy needs it.

``bot.adapters.aave_v3.health.liquidation_amounts`` is the reference for the amounts of a
3.0.x liquidation. The strategy needs more than it gives, so this module models the
whole call on Python ints:

* the amounts for any ``debtToCover`` (same integer operations as the reference, which
  ``DefaultStrategy`` re-checks against it for every step it plans), with the close
  factor of the selected ``CloseFactorRules`` and, for v3.3, the dust rule;
* the token-level effects the reference leaves out: the variable-debt burn and the
  collateral burn revert when their scaled amount rounds to 0, and the position after
  the call (for a second call in the same transaction);
* a fast probe of the profit at a given "level" for the amount search.

Levels. ``baseCollateral = debtPrice·debtToCover·collateralUnit / (collateralPrice·debtUnit)``
truncates, so when a debt wei is worth less than a collateral wei many ``debtToCover``
values seize the same collateral; only the smallest of them is worth repaying. The search
therefore runs over *levels*: ``debtToCover`` itself when a debt wei is worth at least a
collateral wei (every value seizes a different amount), otherwise ``baseCollateral``
with ``debtToCover = ceil(level·collateralPrice·debtUnit / (debtPrice·collateralUnit))``,
the cheapest amount reaching it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.adapters.aave_v3.health import (
    CLOSE_FACTOR_HF_THRESHOLD,
    DEFAULT_LIQUIDATION_CLOSE_FACTOR,
    HEALTH_FACTOR_LIQUIDATION_THRESHOLD,
    MAX_LIQUIDATION_CLOSE_FACTOR,
    AccountData,
    EModeCategory,
    ReserveState,
    UserReserve,
    normalized_debt,
    normalized_income,
    stable_debt_balance,
)
from bot.adapters.aave_v3.math import (
    HALF_PERCENTAGE_FACTOR,
    PERCENTAGE_FACTOR,
    RAY,
    percent_div,
    percent_mul,
    ray_div,
    ray_mul,
)
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from strategies.api import CloseFactorRules

# LiquidationLogic v3.3 constants (8-decimal USD base currency assumed, as Aave does).
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2


@dataclass(frozen=True, slots=True)
class Amounts:
    """What one ``liquidationCall(collateral, debt, user, debt_to_cover, false)`` moves."""

    debt_to_cover: int  # the argument passed
    # What the pool takes: less than the argument when the close factor clips it; in the
    # capped branch, recomputed from the balance (possibly a few wei off the argument).
    debt_repaid: int
    collateral_seized: int  # underlying sent to the liquidator
    protocol_fee: int  # aTokens sent to the treasury, after the contract's 1-wei clamp
    fee_before_clamp: int  # the fee the collateral-bit and dust tests see
    collateral_scaled: int  # aToken scaled units burned for the seized collateral
    fee_scaled: int  # aToken scaled units moved to the treasury
    variable_scaled: int  # variable-debt scaled units burned
    stable_burned: int  # stable debt burned (underlying units)
    capped: bool  # the user's collateral balance capped the seizure
    collateral_disabled: bool  # seized + fee == balance: the pool clears the collateral bit


@dataclass(frozen=True, slots=True)
class Terms:
    """Everything about one (user, collateral reserve, debt reserve) that fixes the amounts.

    Prices and bonus are the ones ``liquidationCall`` uses (e-mode aware); balances and
    indexes are at the execution timestamp.
    """

    collateral: ReserveState
    debt: ReserveState
    user_collateral: UserReserve
    user_debt: UserReserve
    health_factor: int
    total_collateral_base: int
    total_debt_base: int
    collateral_price: int
    debt_price: int
    bonus: int
    fee_bps: int
    collateral_unit: int
    debt_unit: int
    income: int  # collateral reserve normalized income
    debt_index: int  # debt reserve normalized variable debt
    balance: int  # user's aToken balance
    variable_debt: int
    stable_debt: int
    reserve_debt: int  # variable + stable
    max_debt: int  # close factor applied
    rules: CloseFactorRules

    @property
    def same_asset(self) -> bool:
        return self.collateral.id == self.debt.id

    # --- levels (see the module docstring) -------------------------------------------

    @property
    def _num(self) -> int:  # debt wei -> collateral wei ratio numerator
        return self.debt_price * self.collateral_unit

    @property
    def _den(self) -> int:
        return self.collateral_price * self.debt_unit

    @property
    def by_debt(self) -> bool:
        """Levels are debt amounts (a debt wei is worth at least a collateral wei)."""
        return self._num >= self._den

    def debt_at(self, level: int) -> int:
        """The cheapest ``debtToCover`` of a level."""
        if self.by_debt:
            return level
        return -(-level * self._den // self._num)

    def level_of(self, debt: int) -> int:
        return debt if self.by_debt else debt * self._num // self._den

    def max_level(self) -> int:
        return self.level_of(self.max_debt)

    def top_uncapped_level(self) -> int:
        """Highest level whose ``percentMul(baseCollateral, bonus)`` fits the balance."""
        # percentMul(b, bonus) <= balance  <=>  b*bonus + 5000 < (balance + 1) * 10^4
        base_cap = ((self.balance + 1) * PERCENTAGE_FACTOR - HALF_PERCENTAGE_FACTOR - 1) // (
            self.bonus
        )
        if not self.by_debt:
            return base_cap
        return ((base_cap + 1) * self._den - 1) // self._num  # largest d with base <= cap

    def first_capped_debt(self) -> int:
        """Smallest ``debtToCover`` that takes the capped branch."""
        return self.debt_at(self.top_uncapped_level() + 1)

    # --- base-currency values the contract compares -----------------------------------

    def debt_base(self, amount: int) -> int:
        return amount * self.debt_price // self.debt_unit

    def collateral_base(self, amount: int) -> int:
        return amount * self.collateral_price // self.collateral_unit


def liquidation_prices(
    market: MarketState,
    emode: int,
    collateral: ReserveState,
    debt: ReserveState,
    emode_prices: Mapping[int, int] | None,
) -> tuple[int, int, int]:
    """(collateral price, debt price, bonus) as ``LiquidationLogic._getConfigurationData``.

    In 3.0.x the bonus and collateral price switch to the e-mode category's only for a
    collateral in the category, while the debt price switches to the category's price
    source unconditionally (the contract assumes e-mode debt is always in the category).
    """
    collateral_price, debt_price = collateral.price, debt.price
    bonus = collateral.config.liquidation_bonus
    if emode == 0:
        return collateral_price, debt_price, bonus
    category = market.emode_categories.get(emode)
    if category is None:
        raise ValueError(f"user e-mode category {emode} not in the market")
    source_price = _emode_source_price(category, emode_prices)
    if collateral.config.emode_category == emode:
        bonus = category.liquidation_bonus
        if source_price is not None:
            collateral_price = source_price
    if source_price is not None:
        debt_price = source_price
    return collateral_price, debt_price, bonus


def _emode_source_price(
    category: EModeCategory, emode_prices: Mapping[int, int] | None
) -> int | None:
    if int(category.price_source, 16) == 0:
        return None
    if emode_prices is None or category.id not in emode_prices:
        raise ValueError(f"e-mode category {category.id} has a price source but no price")
    return emode_prices[category.id]


class Indexes:
    """Each reserve's normalized income and variable-debt index at ``ts``, computed once
    (``calculateCompoundedInterest`` is the costliest part of building terms)."""

    def __init__(self, ts: int) -> None:
        self.ts = ts
        self._income: dict[int, int] = {}
        self._debt: dict[int, int] = {}

    def income(self, r: ReserveState) -> int:
        value = self._income.get(r.id)
        if value is None:
            value = self._income[r.id] = normalized_income(r, self.ts)
        return value

    def debt(self, r: ReserveState) -> int:
        value = self._debt.get(r.id)
        if value is None:
            value = self._debt[r.id] = normalized_debt(r, self.ts)
        return value


def _reserve_valid(r: ReserveState) -> bool:
    return r.config.active and not r.config.paused


def build_terms(
    *,
    market: MarketState,
    position: UserPosition,
    account: AccountData,
    collateral_id: int,
    debt_id: int,
    ts: int,
    rules: CloseFactorRules,
    emode_prices: Mapping[int, int] | None,
    indexes: Indexes | None = None,
) -> Terms | None:
    """Terms of liquidating ``collateral_id`` against ``debt_id``, None where the pool would
    reject any amount (``validateLiquidationCall``) or nothing can be seized.

    ``indexes`` (at ``ts``) may be shared between calls on the same market snapshot.
    """
    collateral = market.reserves[collateral_id]
    debt = market.reserves[debt_id]
    user_collateral = position.reserves.get(collateral_id)
    user_debt = position.reserves.get(debt_id)
    if user_collateral is None or user_debt is None:
        return None
    if not (_reserve_valid(collateral) and _reserve_valid(debt)):
        return None
    if account.health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        return None
    if collateral.config.liquidation_threshold == 0 or not user_collateral.collateral_enabled:
        return None
    if indexes is None:
        indexes = Indexes(ts)
    debt_index = indexes.debt(debt)
    # VariableDebtToken.balanceOf / AToken.balanceOf (as health.py's helpers).
    variable = ray_mul(user_debt.scaled_variable_debt, debt_index)
    stable = stable_debt_balance(user_debt, ts)
    income = indexes.income(collateral)
    balance = ray_mul(user_collateral.scaled_atoken, income)
    if variable + stable == 0 or balance == 0:
        return None
    collateral_price, debt_price, bonus = liquidation_prices(
        market, position.emode, collateral, debt, emode_prices
    )
    if collateral_price == 0 or debt_price == 0 or bonus < PERCENTAGE_FACTOR:
        return None  # the contract divides by zero / underflows on the bonus
    collateral_unit = 10**collateral.config.decimals
    debt_unit = 10**debt.config.decimals
    max_debt = close_factor_cap(
        rules=rules,
        health_factor=account.health_factor,
        reserve_debt=variable + stable,
        reserve_debt_base=(variable + stable) * debt_price // debt_unit,
        collateral_base=balance * collateral_price // collateral_unit,
        total_debt_base=account.total_debt_base,
        debt_price=debt_price,
        debt_unit=debt_unit,
    )
    return Terms(
        collateral=collateral,
        debt=debt,
        user_collateral=user_collateral,
        user_debt=user_debt,
        health_factor=account.health_factor,
        total_collateral_base=account.total_collateral_base,
        total_debt_base=account.total_debt_base,
        collateral_price=collateral_price,
        debt_price=debt_price,
        bonus=bonus,
        fee_bps=collateral.config.liquidation_protocol_fee,
        collateral_unit=collateral_unit,
        debt_unit=debt_unit,
        income=income,
        debt_index=debt_index,
        balance=balance,
        variable_debt=variable,
        stable_debt=stable,
        reserve_debt=variable + stable,
        max_debt=max_debt,
        rules=rules,
    )


def close_factor_cap(
    *,
    rules: CloseFactorRules,
    health_factor: int,
    reserve_debt: int,
    reserve_debt_base: int,
    collateral_base: int,
    total_debt_base: int,
    debt_price: int,
    debt_unit: int,
) -> int:
    """The close factor's cap on the debt one call repays (``maxLiquidatableDebt``).

    V3_0 (3.0.x ``_calculateDebt``): 50% of the user's debt in this reserve, 100% when
    HF <= 0.95. V3_3 (``executeLiquidationCall`` of v3.3): the whole reserve debt, unless
    the user's collateral in the collateral reserve and debt in the debt reserve are both
    worth >= 2,000 base and HF > 0.95; then, if the reserve debt is worth more than half
    the user's *total* debt, half the total debt converted to this asset (truncating).
    """
    if rules is CloseFactorRules.V3_0:
        factor = (
            DEFAULT_LIQUIDATION_CLOSE_FACTOR
            if health_factor > CLOSE_FACTOR_HF_THRESHOLD
            else MAX_LIQUIDATION_CLOSE_FACTOR
        )
        return percent_mul(reserve_debt, factor)
    if (
        collateral_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and reserve_debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
        and health_factor > CLOSE_FACTOR_HF_THRESHOLD
    ):
        half_total = percent_mul(total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR)
        if reserve_debt_base > half_total:
            return half_total * debt_unit // debt_price
    return reserve_debt


def leaves_no_dust(t: Terms, debt_repaid: int, seized: int, fee_before_clamp: int) -> bool:
    """The v3.3 ``MUST_NOT_LEAVE_DUST`` test (always true under V3_0).

    Unless the call repays the whole reserve debt or takes the whole collateral balance,
    both leftovers must be worth >= 1,000 base. As in the contract, the collateral
    leftover subtracts only what the liquidator gets, not the protocol fee.
    """
    if t.rules is CloseFactorRules.V3_0:
        return True
    if debt_repaid >= t.reserve_debt or seized + fee_before_clamp >= t.balance:
        return True
    return (
        t.debt_base(t.reserve_debt - debt_repaid) >= MIN_LEFTOVER_BASE
        and t.collateral_base(t.balance - seized) >= MIN_LEFTOVER_BASE
    )


def amounts(t: Terms, debt_to_cover: int) -> Amounts | None:
    """The exact effect of ``liquidationCall(..., debt_to_cover, false)``; None if it reverts.

    ``_calculateAvailableCollateralToLiquidate``, the treasury-fee clamp, the v3.3 dust
    rule, and the token burns: ``VariableDebtToken.burn`` / ``AToken.burn`` revert when
    ``amount.rayDiv(index)`` is 0 (``INVALID_BURN_AMOUNT``) and on a scaled underflow; the
    fee moves ``fee.rayDiv(index)`` scaled units (3.0.x scales each transfer by itself).
    """
    actual = min(debt_to_cover, t.max_debt)
    if actual <= 0:
        return None
    num, den = t._num, t._den
    max_collateral = percent_mul(actual * num // den, t.bonus)
    capped = max_collateral > t.balance
    if capped:
        collateral_amount = t.balance
        debt_needed = percent_div(t.collateral_price * t.balance * t.debt_unit // num, t.bonus)
    else:
        collateral_amount, debt_needed = max_collateral, actual
    fee = 0
    if t.fee_bps:
        fee = percent_mul(collateral_amount - percent_div(collateral_amount, t.bonus), t.fee_bps)
    seized = collateral_amount - fee
    if not leaves_no_dust(t, debt_needed, seized, fee):
        return None
    burns = _debt_burns(t, debt_needed)
    if burns is None:
        return None
    collateral_scaled = ray_div(seized, t.income)
    scaled = t.user_collateral.scaled_atoken
    if collateral_scaled == 0 or collateral_scaled > scaled:
        return None
    fee_sent = fee
    remaining = scaled - collateral_scaled
    if fee and ray_div(fee, t.income) > remaining:
        fee_sent = ray_mul(remaining, t.income)  # "to avoid ... 1 wei imprecision"
    fee_scaled = ray_div(fee_sent, t.income)
    if fee_scaled > remaining:
        return None
    return Amounts(
        debt_to_cover=debt_to_cover,
        debt_repaid=debt_needed,
        collateral_seized=seized,
        protocol_fee=fee_sent,
        fee_before_clamp=fee,
        collateral_scaled=collateral_scaled,
        fee_scaled=fee_scaled,
        variable_scaled=burns[0],
        stable_burned=burns[1],
        capped=capped,
        collateral_disabled=seized + fee == t.balance,
    )


def _debt_burns(t: Terms, debt: int) -> tuple[int, int] | None:
    """(variable scaled burned, stable burned) of ``_burnDebtTokens``; None if it reverts."""
    scaled = t.user_debt.scaled_variable_debt
    if t.variable_debt >= debt:
        variable_scaled = ray_div(debt, t.debt_index)
        if variable_scaled == 0 or variable_scaled > scaled:
            return None
        return variable_scaled, 0
    variable_scaled = 0
    if t.variable_debt:
        variable_scaled = ray_div(t.variable_debt, t.debt_index)
        if variable_scaled == 0 or variable_scaled > scaled:
            return None
    stable = debt - t.variable_debt
    if stable > t.stable_debt:
        return None
    return variable_scaled, stable


def after(position: UserPosition, t: Terms, a: Amounts, ts: int) -> UserPosition:
    """The user's position once the call is mined, for a next call at the same ``ts``.

    Indexes do not move within a block, so the market snapshot stays valid. A stable
    burn rebases the principal to the balance at ``ts`` minus the amount (and clears the
    rate when it reaches 0), as ``StableDebtToken.burn`` does.
    """
    reserves = dict(position.reserves)
    d = reserves[t.debt.id]
    stable_left = t.stable_debt - a.stable_burned
    stable = (d.stable_debt_principal, d.stable_rate, d.stable_last_update)
    if a.stable_burned:
        stable = (stable_left, d.stable_rate, ts) if stable_left else (0, 0, 0)
    reserves[t.debt.id] = UserReserve(
        d.scaled_atoken,
        d.scaled_variable_debt - a.variable_scaled,
        *stable,
        collateral_enabled=d.collateral_enabled,
    )
    c = reserves[t.collateral.id]  # re-read: it is the same reserve when the assets are
    reserves[t.collateral.id] = UserReserve(
        c.scaled_atoken - a.collateral_scaled - a.fee_scaled,
        c.scaled_variable_debt,
        c.stable_debt_principal,
        c.stable_rate,
        c.stable_last_update,
        c.collateral_enabled and not a.collateral_disabled,
    )
    return UserPosition(emode=position.emode, reserves=reserves)


def creates_deficit(t: Terms, a: Amounts) -> bool:
    """v3.3: the call takes the user's last collateral, so the pool burns all their debt
    (``hasNoCollateralLeft``); no further call is possible."""
    if t.rules is CloseFactorRules.V3_0:
        return False
    pre_fee = a.collateral_seized + a.fee_before_clamp
    return t.total_collateral_base == t.collateral_base(pre_fee)


# --- the search probe ------------------------------------------------------------------


def seized_at_level(t: Terms) -> Callable[[int], tuple[int, int]]:
    """level -> (debtToCover, collateral seized) on the uncapped branch."""
    num, den, bonus, fee_bps = t._num, t._den, t.bonus, t.fee_bps
    half_bonus = bonus // 2
    by_debt = t.by_debt

    def at(level: int) -> tuple[int, int]:
        if by_debt:
            debt, base = level, level * num // den
        else:
            debt, base = -(-level * den // num), level
        m = (base * bonus + 5000) // 10000
        if fee_bps:
            m -= ((m - (m * 10000 + half_bonus) // bonus) * fee_bps + 5000) // 10000
        return debt, m

    return at


def profit_noise(t: Terms, pool: tuple[int, int] | None) -> int | None:
    """A bound ``ε`` on ``|profit_probe(level) - g(level)|`` for a concave ``g``.

    ``g(t) = h(S0 + κt) - (D0 + ρt)(1 + p)``, where ``h`` is the real-valued V2 output
    (or the identity without a swap), ``κ`` the seizure per level without rounding and
    ``ρ`` the debt per level. The integer probe differs from it by:

    * the seizure: ``floor(t·r)`` (by-debt levels, < 1 base unit, worth < ``bonus``),
      ``percentMul`` (0.5), ``percentDiv`` and the fee's ``percentMul`` (0.5 each, the
      fee at most the whole of it): ``|s - κt| <= E = ceil(bonus) + 2``;
    * the swap: ``h`` is ``q``-Lipschitz on ``x >= -E`` with
      ``q = 997·1000·Ri·Ro / (1000·Ri - 997·E)^2``, plus 1 for the output's floor;
    * the cost: ``ceil`` of the debt per level (< 1 debt unit times ``1 + p``) and the
      premium's ``percentMul`` (0.5): at most 2.5.

    So ``ε = ceil(q·E) + 4`` (earlier calls' seizure only shifts ``h``, and any premium
    up to 100% fits the constant). None when the pool is too shallow for the bound.
    """
    err = -(-t.bonus // PERCENTAGE_FACTOR) + 2
    if pool is None:
        return err + 4
    r_in, r_out = pool
    room = 1000 * r_in - 997 * err
    if room <= 0:
        return None
    numerator = 997 * 1000 * r_in * r_out * err
    return -(-numerator // (room * room)) + 4


def profit_probe(
    t: Terms,
    *,
    prior_seized: int,
    prior_debt: int,
    pool: tuple[int, int] | None,
    premium_bps: int,
) -> Callable[[int], int | None]:
    """level -> exact profit (debt units) of a plan whose last call is at that level.

    Valid on the uncapped levels ``1..min(max_level, top_uncapped_level)``, where it
    equals ``amounts`` + proceeds + flash premium (tests check it against them) but
    skips ``amounts``' bookkeeping: it is the search's inner loop. ``prior_*`` are the
    plan's earlier calls: their collateral is sold in the same swap, their debt is part
    of the same flash loan. ``pool`` is (reserve in, reserve out) of the collateral/debt
    pair, None when the collateral is the debt asset. None means the transaction would
    revert (a burn of 0 scaled units, or a swap with no output).
    """
    num, den, bonus, fee_bps = t._num, t._den, t.bonus, t.fee_bps
    half_bonus = bonus // 2
    by_debt = t.by_debt
    income, debt_index = t.income, t.debt_index
    variable = t.variable_debt
    variable_ok = variable == 0 or ray_div(variable, debt_index) != 0
    scaled_atoken = t.user_collateral.scaled_atoken
    half_income, half_debt_index = income // 2, debt_index // 2
    r_in, r_out = pool if pool is not None else (0, 0)
    in_1000 = r_in * 1000
    out_997 = r_out * 997
    swap = pool is not None

    def profit(level: int) -> int | None:
        if by_debt:
            debt, base = level, level * num // den
        else:
            debt, base = -(-level * den // num), level
        seized = (base * bonus + 5000) // 10000  # percentMul
        if fee_bps:  # minus percentMul(seized - percentDiv(seized, bonus), fee)
            seized -= ((seized - (seized * 10000 + half_bonus) // bonus) * fee_bps + 5000) // 10000
        burned = (seized * RAY + half_income) // income  # rayDiv
        if burned == 0 or burned > scaled_atoken:
            return None
        if debt <= variable:
            if (debt * RAY + half_debt_index) // debt_index == 0:
                return None
        elif not variable_ok:
            return None
        total = prior_seized + seized
        if swap:
            proceeds = total * out_997 // (in_1000 + total * 997)
            if proceeds == 0:
                return None  # UniswapV2: INSUFFICIENT_OUTPUT_AMOUNT
        else:
            proceeds = total
        flash = prior_debt + debt
        return proceeds - flash - (flash * premium_bps + 5000) // 10000

    return profit
