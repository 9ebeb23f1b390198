"""Vectorised float64 pre-screen of Aave V3 health factors for very large books.

The exact evaluator costs a few microseconds per user; after every price update that is
too slow for 10^5 users. ``Screener`` keeps the users' scaled balances in dense numpy
matrices and, per (market, ts), computes for each user in a couple of matrix products a
float *lower bound* of the exact health factor. ``candidates`` returns every user whose
bound is below ``1 + margin``; only those need the exact integer evaluation.

Guarantee: no user whose exact health factor (``health.calculate_account_data``) is below
1e18 is ever left out. Two kinds of error are covered:

* The contract's integer roundings, which are absolute, not relative (a dust position can
  be off by 100 %). They are bounded analytically (see ``_weights``): each exact collateral
  value is at least its real value minus half a token minus one base unit, each exact debt
  at most half a token above its real value, and the floored weighted-average threshold
  loses less than 1 bp. The bound takes the worst case of each, so it is conservative by
  about 1 bp of threshold (~1.2e-4 relative): users that close to 1 are screened in,
  which costs nothing.
* Float64 error. The bound is compared as ``lhs < rhs * (1 + margin)`` where ``lhs`` and
  ``rhs`` are each a sum of *non-negative* terms (no cancellation). Every term is at most
  ~15 roundings away from its exact value (int->float, correctly rounded int/int
  quotients, products; the stable-debt growth polynomial is the longest chain) and the
  BLAS dot product / bincount add at most one rounding per term, so with R <= 128
  reserves each side is within a relative ``(15 + 5 * R) * 2**-53 < 1e-13`` of its exact
  value and the comparison is sound for any margin above ``2e-13``. ``margin = 1e-9``
  dwarfs that by more than three orders of magnitude; ``MIN_MARGIN`` refuses margins too
  small to keep the guarantee.

Users the screen cannot model -- a position in a reserve it has no column for, negative
balances, a reserve or e-mode category the market cannot resolve at ``ts`` -- are always
candidates when they have debt. Users without any debt are never candidates (their exact
health factor is 2**256 - 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from bot.adapters.aave_v3.health import normalized_debt, normalized_income
from bot.adapters.aave_v3.math import RAY, SECONDS_PER_YEAR
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition

DEFAULT_MARGIN: Final = 1e-9
# 5x the 2e-13 float error bound of the module docstring; below it the never-miss
# guarantee is not argued for, so smaller margins are refused.
MIN_MARGIN: Final = 1e-12

_INITIAL_CAPACITY: Final = 64
_BPS: Final = 10_000.0

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.intp]
Names = npt.NDArray[np.object_]
# (column, principal, rate in ray per year, last update) of one stable-debt balance.
_Stable = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class _StableArrays:
    """A block's stable-debt entries as arrays, rebuilt after any row change."""

    rows: Ints
    cols: Ints
    principal: Floats
    rate_per_second: Floats
    last_update: Floats


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One position as a matrix row (see ``Screener`` for the column layout)."""

    row: list[float]
    has_debt: bool
    stable: list[_Stable]
    modelled: bool


class _Block:
    """The rows of the users of one e-mode category (they share one weight matrix).

    Live rows are the prefix ``[0, len(self))`` of ``x``/``debt``/``names``: removal moves
    the last row into the hole, so the product runs on a view, never on a copy.
    """

    __slots__ = ("_stable_arrays", "debt", "names", "rows", "size", "stable", "x")

    def __init__(self, users: list[str], rows: list[list[float]], debts: list[bool], width: int):
        capacity = max(_INITIAL_CAPACITY, len(rows))
        self.size = len(users)
        self.x: Floats = np.zeros((capacity, width), dtype=np.float64)
        self.debt: Bools = np.zeros(capacity, dtype=np.bool_)
        # Names in an object array: the candidates are gathered by one fancy index in C.
        self.names: Names = np.full(capacity, None, dtype=object)
        if users:
            self.x[: self.size] = np.asarray(rows, dtype=np.float64)
            self.debt[: self.size] = debts
            self.names[: self.size] = users
        self.rows: dict[str, int] = {user: row for row, user in enumerate(users)}
        self.stable: dict[str, list[_Stable]] = {}
        self._stable_arrays: _StableArrays | None = None

    def __len__(self) -> int:
        return self.size

    def put(self, user: str, enc: _Encoded) -> None:
        row = self.rows.get(user)
        if row is None:
            row = self.size
            if row == self.x.shape[0]:
                self._grow()
            self.names[row] = user
            self.rows[user] = row
            self.size += 1
        self.x[row] = enc.row
        self.debt[row] = enc.has_debt
        if enc.stable:
            self.stable[user] = enc.stable
            self._stable_arrays = None
        elif self.stable.pop(user, None) is not None:
            self._stable_arrays = None

    def drop(self, user: str) -> None:
        row = self.rows.pop(user)
        last = self.size - 1
        if row != last:
            moved = self.names[last]
            self.x[row] = self.x[last]
            self.debt[row] = self.debt[last]
            self.names[row] = moved
            self.rows[moved] = row
        self.x[last] = 0.0
        self.debt[last] = False
        self.names[last] = None
        self.size = last
        self.stable.pop(user, None)
        if self.stable:
            self._stable_arrays = None  # rows moved

    def _grow(self) -> None:
        capacity = 2 * self.x.shape[0]
        x = np.zeros((capacity, self.x.shape[1]), dtype=np.float64)
        x[: self.size] = self.x[: self.size]
        debt = np.zeros(capacity, dtype=np.bool_)
        debt[: self.size] = self.debt[: self.size]
        names: Names = np.full(capacity, None, dtype=object)
        names[: self.size] = self.names[: self.size]
        self.x, self.debt, self.names = x, debt, names

    def stable_arrays(self) -> _StableArrays:
        if self._stable_arrays is None:
            entries = [
                (self.rows[user], *entry) for user, items in self.stable.items() for entry in items
            ]
            self._stable_arrays = _StableArrays(
                rows=np.array([e[0] for e in entries], dtype=np.intp),
                cols=np.array([e[1] for e in entries], dtype=np.intp),
                principal=np.array([float(e[2]) for e in entries], dtype=np.float64),
                rate_per_second=np.array(
                    [e[3] / RAY / SECONDS_PER_YEAR for e in entries], dtype=np.float64
                ),
                last_update=np.array([float(e[4]) for e in entries], dtype=np.float64),
            )
        return self._stable_arrays


@dataclass(frozen=True, slots=True)
class _ReserveAtTs:
    """User-independent per-reserve data at ``ts`` (None in ``_market_at`` if unusable)."""

    income: float  # normalized income / RAY
    debt_index: float  # normalized debt / RAY
    unit: int
    price: int
    threshold: int
    counts: bool  # liquidation threshold != 0: collateral counts at all
    emode_category: int


class Screener:
    """Dense float64 copy of a book for health-factor pre-screening.

    Each e-mode category has its own block of rows; row ``i`` of a block has ``4 * R``
    columns, ``R = len(reserve_ids)``, column ``j`` standing for ``reserve_ids[j]``:

    * ``[0, R)``: scaled aToken balance where the collateral bit is set, else 0 (a balance
      without the bit never counts);
    * ``[R, 2R)``: scaled variable debt;
    * ``[2R, 3R)``: the collateral mask (1.0 / 0.0);
    * ``[3R, 4R)``: 1.0 where the scaled variable debt is non-zero (its rounding slack).

    Stable debt is kept per user (principal, rate, timestamp) and grown to ``ts`` on each
    call: it is rare, and a balance frozen at build time would understate the debt later.
    """

    def __init__(self, users: Mapping[str, UserPosition], reserve_ids: Iterable[int]) -> None:
        self.reserve_ids: tuple[int, ...] = tuple(reserve_ids)
        if len(set(self.reserve_ids)) != len(self.reserve_ids):
            raise ValueError(f"duplicate reserve ids: {self.reserve_ids}")
        self._col = {rid: j for j, rid in enumerate(self.reserve_ids)}
        self._width = 4 * len(self.reserve_ids)
        self._blocks: dict[int, _Block] = {}
        self._emode_of: dict[str, int] = {}
        # Users the matrices cannot represent, with their has-debt flag.
        self._unmodelled: dict[str, bool] = {}

        grouped: dict[int, list[tuple[str, _Encoded]]] = {}
        for user, position in users.items():
            enc = self._encode(position)
            if not enc.modelled:
                self._unmodelled[user] = enc.has_debt
                continue
            grouped.setdefault(position.emode, []).append((user, enc))
        for emode, members in grouped.items():
            block = _Block(
                [user for user, _ in members],
                [e.row for _, e in members],
                [e.has_debt for _, e in members],
                self._width,
            )
            for user, enc in members:
                if enc.stable:
                    block.stable[user] = enc.stable
                self._emode_of[user] = emode
            self._blocks[emode] = block

    # --- row maintenance --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._emode_of) + len(self._unmodelled)

    def __contains__(self, user: object) -> bool:
        return user in self._emode_of or user in self._unmodelled

    def __iter__(self) -> Iterator[str]:
        yield from self._emode_of
        yield from self._unmodelled

    def update(self, user: str, position: UserPosition) -> None:
        """Replace ``user``'s row with ``position`` (inserting the user if new)."""
        enc = self._encode(position)
        old_emode = self._emode_of.get(user)
        if old_emode is not None and (old_emode != position.emode or not enc.modelled):
            self._blocks[old_emode].drop(user)
            del self._emode_of[user]
        if not enc.modelled:
            self._unmodelled[user] = enc.has_debt
            return
        self._unmodelled.pop(user, None)
        block = self._blocks.get(position.emode)
        if block is None:
            block = self._blocks[position.emode] = _Block([], [], [], self._width)
        block.put(user, enc)
        self._emode_of[user] = position.emode

    def remove(self, user: str) -> None:
        """Forget ``user`` (no-op if unknown)."""
        emode = self._emode_of.pop(user, None)
        if emode is not None:
            self._blocks[emode].drop(user)
        self._unmodelled.pop(user, None)

    def _encode(self, position: UserPosition) -> _Encoded:
        n = len(self.reserve_ids)
        row = [0.0] * self._width
        has_debt = False
        modelled = True
        stable: list[_Stable] = []
        for rid, u in position.reserves.items():
            a, v, sp = u.scaled_atoken, u.scaled_variable_debt, u.stable_debt_principal
            borrowing = v > 0 or sp > 0  # the user-config borrowing bit
            has_debt = has_debt or borrowing
            j = self._col.get(rid)
            odd = (
                a < 0
                or v < 0
                or sp < 0
                or (sp > 0 and min(u.stable_rate, u.stable_last_update) < 0)
            )
            if j is None or odd:
                # No column, or an input the exact math rejects: if the reserve is active at
                # all (even collateral: a zero-threshold e-mode asset dilutes the average),
                # the screen cannot bound this user.
                if u.collateral_enabled or borrowing:
                    modelled = False
                continue
            if u.collateral_enabled:
                row[j] = float(a)
                row[2 * n + j] = 1.0
            if v:
                row[n + j] = float(v)
                row[3 * n + j] = 1.0
            if sp:
                stable.append((j, sp, u.stable_rate, u.stable_last_update))
        return _Encoded(row, has_debt, stable, modelled)

    # --- screening --------------------------------------------------------------------------

    def _market_at(self, market: MarketState, ts: int) -> list[_ReserveAtTs | None]:
        out: list[_ReserveAtTs | None] = []
        for rid in self.reserve_ids:
            r = market.reserves.get(rid)
            if r is None or r.id != rid:
                out.append(None)
                continue
            cfg = r.config
            try:
                income = normalized_income(r, ts)
                debt_index = normalized_debt(r, ts)
            except ValueError:
                out.append(None)
                continue
            if (
                min(income, debt_index, r.price, cfg.liquidation_threshold) < 0
                or not 0 <= cfg.decimals <= 255
            ):
                out.append(None)
                continue
            out.append(
                _ReserveAtTs(
                    income=income / RAY,
                    debt_index=debt_index / RAY,
                    unit=10**cfg.decimals,
                    price=r.price,
                    threshold=cfg.liquidation_threshold,
                    counts=cfg.liquidation_threshold != 0,
                    emode_category=cfg.emode_category,
                )
            )
        return out

    @staticmethod
    def _category_terms(
        market: MarketState, emode: int, emode_prices: Mapping[int, int] | None
    ) -> tuple[int, int] | None:
        """(e-mode threshold, e-mode price or 0), or None if the reference would raise."""
        category = market.emode_categories.get(emode)
        if category is None or category.id != emode or category.liquidation_threshold < 0:
            return None
        try:
            has_source = int(category.price_source, 16) != 0
        except (TypeError, ValueError):
            return None
        if not has_source:
            return category.liquidation_threshold, 0
        price = None if emode_prices is None else emode_prices.get(emode)
        if price is None or price < 0:
            return None
        return category.liquidation_threshold, price

    def _weights(
        self,
        reserves: list[_ReserveAtTs | None],
        emode: int,
        category: tuple[int, int],
    ) -> tuple[Floats, Floats, list[int]]:
        """(weights (4R x 2), per-column price/unit, unusable columns) of one e-mode block.

        Exact: N = percentMul(tc, floor(at / tc)) with tc = sum b_i, at = sum b_i * t_i,
        and HF >= 1e18 whenever N >= td (wadDiv rounds half up). With
        b_i = floor(rayMul(a_i, I_i) * p_i / U_i) and c_i = a_i * I_i / RAY * p_i / U_i:
        c_i - p_i/U_i/2 - 1 < b_i <= c_i + p_i/U_i/2, and tc * floor(at / tc) > at - tc, so
        N > sum_i b_i * (t_i - 1) / 1e4 - 1/2 (the -1/2 is percentMul's floor). Debt:
        td <= sum_j (v_j * D_j / RAY + 1/2 [v_j != 0] + s_j) * p_j / U_j. The user is safe
        when  sum_{t_i>=1} c_i (t_i-1)/1e4  (column 0)  >=  td bound
        + sum_{t_i>=1} (p_i/U_i/2 + 1)(t_i-1)/1e4 + sum_{t_i=0} (c_i + p_i/U_i/2)/1e4 + 1/2
        (column 1, plus the constant and stable debt added by the caller).
        """
        n = len(self.reserve_ids)
        emode_threshold, emode_price = category
        w = np.zeros((self._width, 2), dtype=np.float64)
        price_per_unit = np.zeros(n, dtype=np.float64)
        bad: list[int] = []
        for j, r in enumerate(reserves):
            if r is None:
                bad.append(j)
                continue
            in_emode = emode != 0 and r.emode_category == emode
            price = emode_price if in_emode and emode_price != 0 else r.price
            threshold = emode_threshold if in_emode else r.threshold
            pu = price / r.unit  # int / int: correctly rounded
            price_per_unit[j] = pu
            if r.counts:
                if threshold >= 1:
                    w[j, 0] = r.income * pu * (threshold - 1) / _BPS
                    w[2 * n + j, 1] = (0.5 * pu + 1.0) * (threshold - 1) / _BPS
                else:
                    w[j, 1] = r.income * pu / _BPS
                    w[2 * n + j, 1] = 0.5 * pu / _BPS
            w[n + j, 1] = r.debt_index * pu
            w[3 * n + j, 1] = 0.5 * pu
        return w, price_per_unit, bad

    def candidates(
        self,
        market: MarketState,
        ts: int,
        margin: float = DEFAULT_MARGIN,
        emode_prices: Mapping[int, int] | None = None,
    ) -> list[str]:
        """Users whose health-factor lower bound at ``ts`` is below ``1 + margin``.

        A superset of the users with exact health factor < 1e18 (see the module
        docstring); ``emode_prices`` as for ``calculate_account_data``.
        """
        if not margin >= MIN_MARGIN:
            raise ValueError(f"margin {margin} below {MIN_MARGIN}: float error not covered")
        n = len(self.reserve_ids)
        reserves = self._market_at(market, ts)
        factor = 1.0 + margin
        out: list[str] = []
        for emode, block in self._blocks.items():
            size = len(block)
            if size == 0:
                continue
            debt = block.debt[:size]
            category = (0, 0) if emode == 0 else self._category_terms(market, emode, emode_prices)
            if category is None:
                # The exact evaluation raises for these users; hand them over unscreened.
                mask = debt
            else:
                x = block.x[:size]
                w, price_per_unit, bad = self._weights(reserves, emode, category)
                sums = x @ w
                lhs = sums[:, 0]
                rhs = sums[:, 1]
                rhs += 0.5
                forced: Bools | None = None
                if block.stable:
                    forced = self._add_stable(block, rhs, price_per_unit, bad, ts)
                mask = lhs < rhs * factor
                if bad:
                    cols = [k * n + j for j in bad for k in range(4)]
                    touched = (x[:, cols] != 0.0).any(axis=1)
                    forced = touched if forced is None else forced | touched
                if forced is not None:
                    mask |= forced
                mask &= debt
            out.extend(block.names[:size][mask].tolist())
        out.extend(user for user, has_debt in self._unmodelled.items() if has_debt)
        return out

    @staticmethod
    def _add_stable(
        block: _Block, rhs: Floats, price_per_unit: Floats, bad: list[int], ts: int
    ) -> Bools:
        """Add each stable balance's upper bound at ``ts`` to ``rhs``; return forced rows.

        ``calculateCompoundedInterest`` truncates each term of its 3-term expansion, so the
        float expansion below (all terms >= 0) bounds it from above up to float error (the
        half-up ``rayMul(rate, rate)`` inside can add 0.5 / SECONDS_PER_YEAR**2 ray, a
        relative 1e-24, far inside the margin); the final ``rayMul`` adds at most half a
        token.
        """
        s = block.stable_arrays()
        forced = np.zeros(rhs.shape[0], dtype=np.bool_)
        if s.rows.size == 0:
            return forced
        e = ts - s.last_update
        # A future last-update timestamp makes the contract revert: not screenable.
        unusable = e < 0
        if bad:
            unusable |= np.isin(s.cols, bad)
        forced[s.rows[unusable]] = True
        e = np.maximum(e, 0.0)
        x = s.rate_per_second
        e1 = np.maximum(e - 1.0, 0.0)
        e2 = np.maximum(e - 2.0, 0.0)
        growth = 1.0 + x * e + e * e1 / 2.0 * x * x + e * e1 * e2 / 6.0 * x * x * x
        bound = (s.principal * growth + 0.5) * price_per_unit[s.cols]
        rhs += np.bincount(s.rows, weights=bound, minlength=rhs.shape[0])
        return forced
