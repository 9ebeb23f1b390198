"""Integer searches of the strategies. Pure functions of a probe; every probe is exact.

``argmax``: Fibonacci search for a maximum. The liquidation profit as a function of the
amount repaid is, up to rounding, concave: the collateral seized grows linearly with the
debt repaid, the Uniswap V2 output ``997·x·R_out / (1000·R_in + 997·x)`` is concave in
``x``, and the flash-loan cost is linear. A concave function on the integers is
maximised by golden-section search; Fibonacci search is its exact integer form, where
each iteration re-uses one of the previous probes, so a range of ``n`` integers costs
about ``log_φ(n)`` probes (~110 for 10^24). Rounding makes the exact function only
*almost* unimodal: a comparison is right whenever the two probes differ by more than
twice the rounding noise, so the result is the optimum up to a few noise units. The
last bracket is scanned exhaustively, and given a bound on the noise, ``certify`` finds
the interval that can hold a better point, which is then scanned: the result is the
exact optimum (tests compare against brute force).

``last_below``: the last point below the root of a monotone function (secant with
Brent's safeguards); ``last_true``: bisection on a predicate.

Infeasible probes (the contract would revert, e.g. an amount too small to burn one scaled
unit) must form a prefix of the range; they are reported as ``None``.
"""

from __future__ import annotations

from collections.abc import Callable

Probe = Callable[[int], int | None]

# Fibonacci numbers F(0)=0, F(1)=1, ... far beyond any uint256-sized range.
_FIB: list[int] = [0, 1]
while _FIB[-1] < 2**260:
    _FIB.append(_FIB[-1] + _FIB[-2])

# Ranges at most this long are scanned point by point.
FULL_SCAN = 64
# Fibonacci iterations stop once the bracket is this short; the rest is scanned.
FINAL_SCAN = 21


def argmax(f: Probe, lo: int, hi: int, *, noise: int | None = None) -> int | None:
    """Smallest ``t`` in ``[lo, hi]`` with the largest ``f(t)`` found, None if all are
    infeasible.

    ``f`` must be unimodal on its feasible part, which must be a suffix of the range.
    Without ``noise`` the result is the maximum up to a few times the rounding noise of
    ``f``: the Fibonacci comparisons are right whenever the two probes differ by more
    than twice the noise, and a wrong one discards at most ~5 times it. Given ``noise``,
    a bound on ``|f - g|`` for a concave ``g``, the result is certified exact (see
    ``certify``) unless the region that could hold a better point is longer than
    ``CERTIFY_BUDGET``, which only happens when the noise is negligible.
    """
    if hi < lo:
        return None
    cache: dict[int, int | None] = {}

    def probe(t: int) -> int | None:
        if t in cache:
            return cache[t]
        value = cache[t] = f(t)
        return value

    start, stop = lo, hi
    if hi - lo > FULL_SCAN:
        start = _fibonacci_bracket(probe, lo, hi)
        stop = min(hi, start + FINAL_SCAN)
    best = _scan(probe, start, stop)
    if best is not None and noise is not None:
        region = certify(probe, lo, hi, best[0], best[1] - 2 * noise)
        if region is not None:
            wider = _scan(probe, *region)
            if wider is not None and wider[1] > best[1]:
                best = wider
    return None if best is None else best[0]


def _scan(probe: Probe, lo: int, hi: int) -> tuple[int, int] | None:
    """(t, f(t)) of the first largest feasible value on ``[lo, hi]``."""
    best: tuple[int, int] | None = None
    for t in range(lo, hi + 1):
        v = probe(t)
        if v is not None and (best is None or v > best[1]):
            best = (t, v)
    return best


# The most points ``certify`` hands back for scanning (~5 ms of probes).
CERTIFY_BUDGET = 4096


def certify(probe: Probe, lo: int, hi: int, t: int, floor: int) -> tuple[int, int] | None:
    """An interval around ``t`` outside which no point beats ``f(t) = floor + 2·noise``.

    With ``|f - g| <= noise`` for a concave ``g`` and ``floor = f(t) - 2·noise``: any
    point better than ``f(t)`` has ``g > f(t) - noise``, a superlevel set of ``g``, so an
    interval containing ``t``; a probe ``< floor`` has ``g < f(t) - noise`` and bounds
    that interval. Steps double away from ``t`` on each side (an infeasible probe on the
    left bounds it too: infeasible points are a prefix). None when the interval would
    exceed ``CERTIFY_BUDGET``.
    """
    right = _edge(probe, t, hi, floor, 1)
    if right is None:
        return None
    left = _edge(probe, t, lo, floor, -1)
    if left is None or right - left > CERTIFY_BUDGET:
        return None
    return left, right


def _edge(probe: Probe, t: int, end: int, floor: int, direction: int) -> int | None:
    step = 1
    while True:
        x = t + direction * step
        if (x - end) * direction > 0:
            return end
        v = probe(x)
        if v is None or v < floor:
            return x - direction  # x and beyond are out
        if step > CERTIFY_BUDGET:
            return None
        step *= 2


def _fibonacci_bracket(probe: Probe, lo: int, hi: int) -> int:
    """Start of a bracket of length ``FINAL_SCAN`` that holds the maximum of ``probe``.

    The search interval is ``[a, a + F(k)]``; points beyond ``hi`` count as worse than
    any other (padding), so the search never leaves ``[lo, hi]``. Infeasible points are a
    prefix: an infeasible left probe moves the bracket right. Ties keep the left part,
    favouring smaller amounts.
    """
    fib = _FIB
    k = 2
    while fib[k] < hi - lo:
        k += 1
    a = lo
    while fib[k] > FINAL_SCAN:
        x1 = a + fib[k - 2]
        x2 = a + fib[k - 1]
        if x2 <= hi:
            v1 = probe(x1)
            if v1 is None:
                a = x1  # still in the infeasible prefix
            else:
                v2 = probe(x2)
                if v2 is not None and v1 < v2:
                    a = x1  # the maximum is in [x1, a + F(k)]
        k -= 1  # otherwise it is in [a, x2]; the bracket is now F(k-1) long
    return a


def last_true(pred: Callable[[int], bool], lo: int, hi: int) -> int:
    """Largest ``t`` in ``[lo, hi]`` with ``pred(t)``, for ``pred`` true then false; ``lo - 1``
    if ``pred(lo)`` is already false."""
    if hi < lo or not pred(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def last_below(
    f: Callable[[int], int | None], lo: int, f_lo: int, hi: int, f_hi: int, tol: int
) -> int:
    """A ``t`` in ``[lo, hi)`` with ``f(t) < 0`` and a point within ``tol`` after it that is
    not: the last point below the root of a monotone ``f``, to ``tol``.

    Requires ``f(lo) = f_lo < 0 <= f_hi = f(hi)``. Secant through the two latest points
    (a step or two on a nearly linear ``f``, like the liquidation margin after a call),
    kept inside the bracket and at least half a tolerance from its ends, so that a root
    next to an end is bracketed by the next probe; bisection whenever the secant would
    leave the bracket or its steps stop halving (Brent's rule), so the worst case stays
    logarithmic. ``None`` (the call would revert) counts as "not below".
    """
    a, b = lo, hi
    x0, f0, x1, f1 = lo, f_lo, hi, f_hi  # the two latest evaluated points
    step = max(1, tol // 2)
    moves = [2 * (b - a)] * 2  # the last two steps' lengths (none yet: try the secant)
    while b - a > max(tol, 1):
        t = (a + b) // 2
        if f1 != f0:
            secant = x1 - f1 * (x1 - x0) // (f1 - f0)
            if a <= secant <= b and 2 * abs(secant - x1) <= moves[0]:
                t = secant
        t = min(max(t, a + step), b - step)
        moves = [moves[1], abs(t - x1)]
        v = f(t)
        if v is not None and v < 0:
            a = t
        else:
            b = t
        if v is not None:
            x0, f0, x1, f1 = x1, f1, t, v
    return a
