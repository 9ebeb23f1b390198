"""Fast exact Aave V3 account data: ``calculate_account_data`` with the per-reserve work hoisted.

``health.calculate_account_data`` recomputes, for every user, each reserve's normalized
income and debt, its price, ``10**decimals`` and its e-mode overrides, and goes through a
dozen checked helper calls per reserve. None of that depends on the user, so
``AccountEvaluator`` computes it once per (market, ts, e-mode prices) and the per-user loop
is plain integer arithmetic on precomputed constants.

Exactness: the fast loop performs the same integer operations in the same rounding
(half-up ``rayMul``, truncating divisions) as the reference. The reference additionally
raises ``ValueError`` where Solidity would revert on overflow; instead of checking every
intermediate, each reserve carries balance limits under which no intermediate can exceed
uint256 (see ``_balance_limit``). A user with a balance above a limit, or with anything
else unusual (unknown reserve or e-mode category, a reserve whose index cannot be
computed at ``ts``, out-of-range configuration), is handed to the reference itself, so the
result -- value or exception -- is the reference's by construction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Final

from bot.adapters.aave_v3.health import (
    NO_DEBT_HEALTH_FACTOR,
    AccountData,
    EModeCategory,
    ReserveState,
    calculate_account_data,
    normalized_debt,
    normalized_income,
)
from bot.adapters.aave_v3.math import (
    HALF_PERCENTAGE_FACTOR,
    HALF_RAY,
    PERCENTAGE_FACTOR,
    RAY,
    WAD,
    calculate_compounded_interest,
    ray_mul,
)
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition

# Bound on any one reserve's `balance * price` product in the fast path (<= 2**171 once
# rounding is added). With at most _MAX_FAST_RESERVES (2**16) reserves and bps values below
# 2**16: totals <= 2**187, the threshold sum <= 2**203, percentMul(total, avgThreshold)
# <= 2**190 and its wadDiv product <= 2**250 -- every reference check passes, so the fast
# path never has to detect a revert.
_PRODUCT_BOUND: Final = 2**170
# Balances times an index (<= 2**128, i.e. ~3e11 RAY) must stay well inside uint256 too.
_INDEX_BOUND: Final = 2**128
_SCALED_BOUND: Final = 2**160
_PRICE_BOUND: Final = 2**170
_BPS_BOUND: Final = 2**16
_MAX_FAST_RESERVES: Final = 2**16
# 8-bit field in the reserve bitmap; anything else is hand-built data: leave it to the reference.
_MAX_DECIMALS: Final = 255

# Per-reserve constants of one e-mode view of the market:
# (asset unit, price, effective LTV (0 when the reserve's own LTV is 0), effective
#  liquidation threshold, counts-as-collateral, aToken limit, normalized income,
#  variable-debt limit, normalized debt, total-debt limit).
# A limit of -1 means "never fast": any use of that side of the reserve goes to the reference.
_Consts = tuple[int, int, int, int, bool, int, int, int, int, int]


def _balance_limit(index: int | None, price: int) -> int:
    """Largest scaled balance ``s`` for which ``rayMul(s, index) * price`` cannot overflow.

    With ``k = index // RAY + 1``: ``s * index < s * k * RAY <= 2**160 * RAY < 2**250``, and
    ``rayMul(s, index) <= s * k + 1``, so ``rayMul(s, index) * price <= 2**170 + price``.
    """
    if index is None or not 0 <= index <= _INDEX_BOUND or not 0 <= price <= _PRICE_BOUND:
        return -1
    k = index // RAY + 1
    return min(_PRODUCT_BOUND // (k * (price + 1)), _SCALED_BOUND // k)


def _try_index(
    fn: Callable[[ReserveState, int], int], reserve: ReserveState, ts: int
) -> int | None:
    """``normalized_income``/``normalized_debt``, or None where the reference would raise."""
    try:
        return fn(reserve, ts)
    except (ValueError, TypeError):
        return None


def _reserve_consts(
    r: ReserveState,
    income: int | None,
    debt_index: int | None,
    price: int,
    ltv: int,
    threshold: int,
) -> _Consts:
    cfg = r.config
    decimals = cfg.decimals
    counts = cfg.liquidation_threshold != 0
    # The zero-LTV test uses the reserve's own LTV even in e-mode (see health.py).
    eff_ltv = ltv if cfg.ltv != 0 else 0
    sane_units = isinstance(decimals, int) and 0 <= decimals <= _MAX_DECIMALS
    sane_bps = 0 <= eff_ltv < _BPS_BOUND and 0 <= threshold < _BPS_BOUND
    unit = 10**decimals if sane_units else 1
    collateral_limit = _balance_limit(income, price) if sane_units and sane_bps else -1
    debt_limit = _balance_limit(debt_index, price) if sane_units else -1
    sane_price = 0 <= price <= _PRICE_BOUND
    total_debt_limit = _PRODUCT_BOUND // (price + 1) if sane_units and sane_price else -1
    return (
        unit,
        price,
        eff_ltv,
        threshold,
        counts,
        collateral_limit,
        income if income is not None else 0,
        debt_limit,
        debt_index if debt_index is not None else 0,
        total_debt_limit,
    )


def _account_data_factory() -> Callable[[int, int, int, int, int, int], AccountData]:
    """A constructor for ``AccountData`` that skips the frozen-dataclass ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``; writing the six
    slots through their descriptors builds the identical object in about half the time,
    which is a sixth of ``evaluate``. Only valid for the exact slotted layout checked here;
    any other layout gets the ordinary constructor.
    """
    names = tuple(f.name for f in dataclasses.fields(AccountData))
    if names != _ACCOUNT_FIELDS or tuple(getattr(AccountData, "__slots__", ())) != names:
        return AccountData
    new = object.__new__
    s0, s1, s2, s3, s4, s5 = (getattr(AccountData, name).__set__ for name in names)

    def make(tc: int, td: int, available: int, threshold: int, ltv: int, hf: int) -> AccountData:
        data: AccountData = new(AccountData)
        s0(data, tc)
        s1(data, td)
        s2(data, available)
        s3(data, threshold)
        s4(data, ltv)
        s5(data, hf)
        return data

    return make


_ACCOUNT_FIELDS: Final = (
    "total_collateral_base",
    "total_debt_base",
    "available_borrows_base",
    "current_liquidation_threshold",
    "ltv",
    "health_factor",
)
_new_account_data = _account_data_factory()


def category_price(category: EModeCategory, emode_prices: Mapping[int, int] | None) -> int | None:
    """The category's oracle price, 0 without a price source, None if it cannot be had."""
    try:
        has_source = int(category.price_source, 16) != 0
    except (ValueError, TypeError):
        return None
    if not has_source:
        return 0
    if emode_prices is None:
        return None
    return emode_prices.get(category.id)


class AccountEvaluator:
    """``calculate_account_data`` for many users against one market snapshot at ``ts``.

    Build one per (market, ts, emode_prices); it is immutable and cheap to discard.
    """

    __slots__ = ("_categories", "_emode_prices", "_reserves", "_tables", "market", "ts")

    def __init__(
        self, market: MarketState, ts: int, emode_prices: Mapping[int, int] | None = None
    ) -> None:
        self.market = market
        self.ts = ts
        self._reserves: Mapping[int, ReserveState] = market.reserves
        self._categories: Mapping[int, EModeCategory] = market.emode_categories
        self._emode_prices = emode_prices

        # Indexes once per reserve; None where the reference would raise (it only raises for
        # users that actually touch that side of the reserve, so the error is deferred).
        indexes: dict[int, tuple[ReserveState, int | None, int | None]] = {}
        for rid, r in market.reserves.items():
            if r.id != rid:
                continue  # the reference raises for users of this id: leave it to it
            indexes[rid] = (
                r,
                _try_index(normalized_income, r, ts),
                _try_index(normalized_debt, r, ts),
            )

        base = {
            rid: _reserve_consts(r, inc, dbt, r.price, r.config.ltv, r.config.liquidation_threshold)
            for rid, (r, inc, dbt) in indexes.items()
        }
        # One constants table per e-mode category: the category's LTV/threshold replace the
        # reserve's for assets in it, and so does its oracle price when it has one.
        self._tables: dict[int, dict[int, _Consts]] = {0: base}
        for cid, category in market.emode_categories.items():
            if cid == 0 or category.id != cid:
                continue
            emode_price = category_price(category, self._emode_prices)
            if emode_price is None:
                continue  # missing price: users of this category go to the reference
            table = dict(base)
            for rid, (r, inc, dbt) in indexes.items():
                if r.config.emode_category != cid:
                    continue
                price = emode_price if emode_price != 0 else r.price
                table[rid] = _reserve_consts(
                    r, inc, dbt, price, category.ltv, category.liquidation_threshold
                )
            self._tables[cid] = table

    def _reference(self, position: UserPosition) -> AccountData:
        return calculate_account_data(
            position.reserves,
            self._reserves,
            position.emode,
            self._categories,
            self.ts,
            self._emode_prices,
        )

    def _sums(self, position: UserPosition) -> tuple[int, int, int, int] | None:
        """(total collateral, total debt, sum of collateral*LTV, sum of collateral*threshold).

        None means "not provably in range / not a normal input": use the reference.
        """
        table = self._tables.get(position.emode)
        reserves = position.reserves
        if table is None or len(reserves) > _MAX_FAST_RESERVES:
            return None
        half_ray = HALF_RAY  # locals: a global lookup per use costs more than the arithmetic
        ray = RAY
        total_collateral = total_debt = ltv_sum = threshold_sum = 0
        try:
            for rid, u in reserves.items():
                (
                    unit,
                    price,
                    ltv,
                    threshold,
                    counts,
                    a_limit,
                    income,
                    v_limit,
                    debt_index,
                    d_limit,
                ) = table[rid]
                if counts and u.collateral_enabled:
                    a = u.scaled_atoken
                    if not 0 <= a <= a_limit:
                        return None
                    # rayMul half up, then a truncating division by the asset unit.
                    b = (a * income + half_ray) // ray * price // unit
                    total_collateral += b
                    ltv_sum += b * ltv
                    threshold_sum += b * threshold
                v = u.scaled_variable_debt
                sp = u.stable_debt_principal
                if v > 0 or sp > 0:  # the user-config borrowing bit
                    if v:
                        if not 0 < v <= v_limit:
                            return None
                        debt = (v * debt_index + half_ray) // ray
                    else:
                        debt = 0
                    if sp:
                        # Rare: each user has their own rate, so nothing to precompute.
                        debt += ray_mul(
                            sp,
                            calculate_compounded_interest(
                                u.stable_rate, u.stable_last_update, self.ts
                            ),
                        )
                        if debt > d_limit:
                            return None
                    total_debt += price * debt // unit
        except (KeyError, ValueError, TypeError):
            # Unknown reserve, or stable-debt terms the contract rejects: the reference
            # decides (and raises its own error, in its own reserve order).
            return None
        return total_collateral, total_debt, ltv_sum, threshold_sum

    def evaluate(self, position: UserPosition) -> AccountData:
        """Exactly ``calculate_account_data(position.reserves, market.reserves, ...)``."""
        sums = self._sums(position)
        if sums is None:
            return self._reference(position)
        total_collateral, total_debt, ltv_sum, threshold_sum = sums
        if total_collateral:
            # Solidity truncates the weighted averages (unchecked division).
            avg_ltv = ltv_sum // total_collateral
            avg_threshold = threshold_sum // total_collateral
        else:
            avg_ltv = avg_threshold = 0
        if total_debt:
            hf = (
                (total_collateral * avg_threshold + HALF_PERCENTAGE_FACTOR)
                // PERCENTAGE_FACTOR
                * WAD
                + total_debt // 2
            ) // total_debt
        else:
            hf = NO_DEBT_HEALTH_FACTOR
        available = (total_collateral * avg_ltv + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR
        return _new_account_data(
            total_collateral,
            total_debt,
            available - total_debt if available > total_debt else 0,
            avg_threshold,
            avg_ltv,
            hf,
        )

    def health_factor(self, position: UserPosition) -> int:
        """``evaluate(position).health_factor`` without building the ``AccountData``."""
        sums = self._sums(position)
        if sums is None:
            return self._reference(position).health_factor
        total_collateral, total_debt, _, threshold_sum = sums
        if not total_debt:
            return NO_DEBT_HEALTH_FACTOR
        avg_threshold = threshold_sum // total_collateral if total_collateral else 0
        return (
            (total_collateral * avg_threshold + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR * WAD
            + total_debt // 2
        ) // total_debt

    def evaluate_many(self, positions: Mapping[str, UserPosition]) -> dict[str, AccountData]:
        """``evaluate`` for every user of ``positions`` (e.g. ``Book.users``)."""
        evaluate = self.evaluate
        return {user: evaluate(position) for user, position in positions.items()}

    def health_factors(self, positions: Mapping[str, UserPosition]) -> dict[str, int]:
        """``health_factor`` for every user of ``positions``."""
        health_factor = self.health_factor
        return {user: health_factor(position) for user, position in positions.items()}
