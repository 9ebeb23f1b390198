"""Time to a crash's first batch of plans: ``DefaultStrategy.plans_best_first`` (what the
runner reads) against pricing every user first (``plan``), in one process, best of 5.

The market is the strategy unit tests' synthetic one: WETH collateral against DAI debt
at health factor 0.97, position sizes spread log-uniformly over three decades (1 to
1,000 WETH), $50M pools. Usage: ``.venv/bin/python bench/first_plans.py [--users 1370]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from functools import partial
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_strategy import make_input, weth_dai
from timing import best_of

from bot.api import LiquidationPlan
from strategies.api import StrategyInput
from strategies.default import DefaultStrategy


def _first(strategy: DefaultStrategy, inp: StrategyInput, k: int) -> list[LiquidationPlan]:
    return list(islice(strategy.plans_best_first(inp), k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=[200, 1370])
    ap.add_argument("--first", type=int, default=8, help="the first batch's size")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = []
    for n in a.users:
        rng = random.Random(n)
        users = {
            f"u{i:05d}": weth_dai(0.97, eth=round(10 ** rng.uniform(0, 3), 3)) for i in range(n)
        }
        inp = make_input(users)
        strategy = DefaultStrategy()
        every = best_of(5, partial(strategy.plan, inp))
        first = best_of(5, partial(_first, strategy, inp, a.first))
        rows.append(
            {"users": n, "all_ms": every * 1e3, "first_ms": first * 1e3, "ratio": every / first}
        )
    print(f"| users | all plans (ms) | first {a.first} (ms) | speed-up |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['users']:,} | {r['all_ms']:.0f} | {r['first_ms']:.0f} | {r['ratio']:.1f}x |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
