"""Health-factor throughput: reference vs AccountEvaluator vs the float64 Screener.

Usage: ``.venv/bin/python bench/hf_throughput.py [N ...]`` (default: 2000 100000).
Builds N synthetic users over 4 reserves (WETH, USDC, WBTC, DAI-like; ~1/3 in the ETH
e-mode category, ~1 % with stable debt), then prints positions/s, best of 3, as a
markdown table.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timing import best_of

from bot.adapters.aave_v3.config import ReserveConfig
from bot.adapters.aave_v3.evaluator import AccountEvaluator
from bot.adapters.aave_v3.health import (
    EModeCategory,
    ReserveState,
    UserReserve,
    calculate_account_data,
)
from bot.adapters.aave_v3.math import RAY
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.screening import Screener
from bot.adapters.aave_v3.state import UserPosition

TS = 1_700_000_000
REPEATS = 3

CFG = ReserveConfig(
    ltv=8000,
    liquidation_threshold=8250,
    liquidation_bonus=10500,
    decimals=18,
    stable_borrowing_enabled=True,
    reserve_factor=1000,
    liquidation_protocol_fee=1000,
)


def market() -> MarketState:
    specs = [  # (decimals, price, ltv, threshold, e-mode category)
        (18, 3000 * 10**8, 8050, 8300, 1),
        (6, 10**8, 7700, 8000, 0),
        (8, 60_000 * 10**8, 7300, 7800, 0),
        (18, 10**8, 6300, 7700, 0),
    ]
    reserves = {}
    for rid, (decimals, price, ltv, threshold, emode) in enumerate(specs):
        cfg = dataclasses.replace(
            CFG,
            decimals=decimals,
            ltv=ltv,
            liquidation_threshold=threshold,
            emode_category=emode,
        )
        reserves[rid] = ReserveState(
            f"0x{rid + 1:040x}",
            rid,
            cfg,
            liquidity_index=RAY + RAY // 20 * (rid + 1),
            variable_borrow_index=RAY + RAY // 10 * (rid + 1),
            current_liquidity_rate=RAY // 50,
            current_variable_borrow_rate=RAY // 25,
            last_update_timestamp=TS - 600 * (rid + 1),
            price=price,
        )
    categories = {1: EModeCategory(1, 9000, 9300, 10100, "0x" + "0" * 40, "ETH correlated")}
    return MarketState(1, reserves, {}, categories)


def positions(n: int, m: MarketState, seed: int = 1) -> dict[str, UserPosition]:
    rng = random.Random(seed)
    out = {}
    for k in range(n):
        coll = rng.randrange(4)
        debt = (coll + rng.randrange(1, 4)) % 4
        r_c, r_d = m.reserves[coll], m.reserves[debt]
        value = rng.randint(10**10, 10**15)  # base units (1e-8 USD): $100 .. $10M
        a = value * 10**r_c.config.decimals // r_c.price
        # Borrowed value / liquidation-threshold value: above ~1.1 (the collateral's index
        # growth) the user is liquidatable, a few percent of the book.
        ratio = rng.uniform(0.3, 1.15) * r_c.config.liquidation_threshold / 10_000
        debt_value = int(value * ratio) * RAY // r_d.variable_borrow_index
        v = debt_value * 10**r_d.config.decimals // r_d.price
        stable = rng.random() < 0.01
        reserves = {
            coll: UserReserve(scaled_atoken=a, collateral_enabled=True),
            debt: UserReserve(
                scaled_variable_debt=0 if stable else v,
                stable_debt_principal=v if stable else 0,
                stable_rate=RAY // 20 if stable else 0,
                stable_last_update=TS - 86_400 if stable else 0,
            ),
        }
        emode = 1 if coll == 0 and rng.random() < 0.3 else 0
        out[f"0x{k:040x}"] = UserPosition(emode, reserves)
    return out


def run(n: int) -> tuple[float, float, float, float, int, int]:
    m = market()
    users = positions(n, m)
    ids = sorted(m.reserves)

    def reference() -> None:
        for p in users.values():
            calculate_account_data(p.reserves, m.reserves, p.emode, m.emode_categories, TS)

    def evaluator() -> None:
        AccountEvaluator(m, TS).evaluate_many(users)  # construction included

    def health_factors() -> None:
        AccountEvaluator(m, TS).health_factors(users)

    screener = Screener(users, ids)
    found = len(screener.candidates(m, TS))
    exact = AccountEvaluator(m, TS).health_factors(users)
    liquidatable = sum(hf < 10**18 for hf in exact.values())
    t_ref = best_of(REPEATS, reference)
    t_eval = best_of(REPEATS, evaluator)
    t_hf = best_of(REPEATS, health_factors)
    t_screen = best_of(REPEATS, lambda: screener.candidates(m, TS))
    return n / t_ref, n / t_eval, n / t_hf, n / t_screen, found, liquidatable


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [2000, 100_000]
    print(
        "| N | reference pos/s | evaluate_many pos/s | health_factors pos/s | screener pos/s"
        " | evaluate_many / reference | health_factors / reference | screener ms/call"
        " | candidates | exact HF < 1 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        ref, ev, hf, screen, found, liquidatable = run(n)
        print(
            f"| {n:,} | {ref:,.0f} | {ev:,.0f} | {hf:,.0f} | {screen:,.0f} | {ev / ref:.1f}x"
            f" | {hf / ref:.1f}x | {n / screen * 1e3:.2f} | {found:,} | {liquidatable:,} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
