"""Time `liqbot devnet up` (deploy + seed, no state cache) for several borrower counts.

Usage: .venv/bin/python bench/devnet_startup.py [N ...]   (default: 200 2000)
Prints a markdown table; the 200-borrower run is the in-run baseline for the ratio.
"""

from __future__ import annotations

import asyncio
import sys
import time

from bot.devnet.devnet import DevnetSpec, start_devnet


async def measure(n: int) -> float:
    t0 = time.perf_counter()
    net = await start_devnet(DevnetSpec(borrowers=n))
    elapsed = time.perf_counter() - t0
    net.stop()
    return elapsed


async def main(counts: list[int]) -> None:
    results = [(n, await measure(n)) for n in counts]
    base_t = results[0][1]
    print("| borrowers | ready in (s) | vs first row |")
    print("|---:|---:|---:|")
    for n, t in results:
        print(f"| {n:,} | {t:.2f} | {t / base_t:.1f}× |")


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [200, 2000]))
