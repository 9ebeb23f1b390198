"""Best-of-N wall-clock timing shared by the benchmarks (the minimum is the least noisy)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


def best_of(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


async def best_of_async(n: int, fn: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        best = min(best, time.perf_counter() - t0)
    return best
