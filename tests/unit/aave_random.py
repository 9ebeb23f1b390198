"""Random and hand-built Aave V3 markets and positions for the exact-math tests."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

from bot.adapters.aave_v3.config import ReserveConfig
from bot.adapters.aave_v3.health import (
    ZERO_ADDRESS,
    AccountData,
    EModeCategory,
    ReserveState,
    UserReserve,
    calculate_account_data,
)
from bot.adapters.aave_v3.math import RAY
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition

TS = 1_700_000_000
ORACLE = "0x" + "0" * 39 + "1"

BASE_CFG = ReserveConfig(
    ltv=8000,
    liquidation_threshold=8250,
    liquidation_bonus=10500,
    decimals=18,
    stable_borrowing_enabled=True,
    reserve_factor=1000,
    liquidation_protocol_fee=1000,
)


def log_uniform(rng: random.Random, max_digits: int) -> int:
    """An integer spread over many magnitudes, 1 .. 10**max_digits."""
    return rng.randint(1, 10 ** rng.randint(0, max_digits))


def random_market(rng: random.Random) -> tuple[MarketState, dict[int, int]]:
    """Random reserves and e-mode categories, plus the e-mode oracle prices."""
    reserves: dict[int, ReserveState] = {}
    for rid in rng.sample(range(20), rng.randint(1, 8)):
        threshold = rng.choice([0, rng.randint(1, 9800), rng.randint(5000, 9500)])
        ltv = rng.choice([0, rng.randint(0, threshold), rng.randint(1, 9500)])
        last_update = rng.choice([TS, TS - rng.randint(1, 3 * 10**7), TS - 1])
        cfg = dataclasses.replace(
            BASE_CFG,
            ltv=ltv,
            liquidation_threshold=threshold,
            decimals=rng.randint(6, 18),
            emode_category=rng.choice([0, 0, 1, 2, 3]),
        )
        reserves[rid] = ReserveState(
            asset=f"0x{rid + 0xA0:040x}",
            id=rid,
            config=cfg,
            liquidity_index=rng.randint(RAY, 3 * RAY),
            variable_borrow_index=rng.randint(RAY, 3 * RAY),
            current_liquidity_rate=rng.randint(0, 2 * RAY),
            current_variable_borrow_rate=rng.randint(0, 2 * RAY),
            last_update_timestamp=last_update,
            price=rng.randint(1, 10**13),
        )
    categories: dict[int, EModeCategory] = {}
    prices: dict[int, int] = {}
    for cid in (1, 2, 3):
        source = rng.choice([ZERO_ADDRESS, ORACLE])
        threshold = rng.choice([0, rng.randint(1, 9900), rng.randint(9000, 9800)])
        categories[cid] = EModeCategory(
            cid, rng.randint(0, threshold), threshold, 10100, source, f"cat{cid}"
        )
        if source != ZERO_ADDRESS:
            prices[cid] = rng.choice([0, rng.randint(1, 10**13)])
    return MarketState(1, reserves, {}, categories), prices


def random_reserve(rng: random.Random) -> UserReserve:
    kind = rng.random()
    stable = rng.random() < 0.15
    return UserReserve(
        scaled_atoken=0 if kind < 0.2 else log_uniform(rng, 30),
        scaled_variable_debt=0 if rng.random() < 0.5 else log_uniform(rng, 28),
        stable_debt_principal=log_uniform(rng, 26) if stable else 0,
        stable_rate=rng.randint(0, 2 * RAY) if stable else 0,
        stable_last_update=TS - rng.randint(0, 3 * 10**7) if stable else 0,
        # The bit is set on some zero balances and cleared on some non-zero ones.
        collateral_enabled=rng.random() < 0.7,
    )


def random_position(rng: random.Random, market: MarketState) -> UserPosition:
    ids = list(market.reserves)
    chosen = rng.sample(ids, rng.randint(0, len(ids)))
    emode = rng.choice([0, 0, 1, 2, 3])
    return UserPosition(
        emode,
        {
            rid: random_reserve(
                rng,
            )
            for rid in chosen
        },
    )


def reference(
    position: UserPosition, market: MarketState, prices: Mapping[int, int] | None
) -> AccountData:
    return calculate_account_data(
        position.reserves, market.reserves, position.emode, market.emode_categories, TS, prices
    )


def small_market(**cfg: object) -> MarketState:
    r = ReserveState(
        "0x" + "a" * 40,
        0,
        dataclasses.replace(BASE_CFG, emode_category=1, **cfg),  # type: ignore[arg-type]
        RAY,
        RAY,
        10**26,
        10**26,
        TS - 100,
        2000 * 10**8,
    )
    usd = ReserveState(
        "0x" + "b" * 40,
        1,
        dataclasses.replace(BASE_CFG, decimals=6, ltv=0, liquidation_threshold=0),
        RAY,
        RAY,
        0,
        0,
        TS,
        10**8,
    )
    categories = {1: EModeCategory(1, 9000, 9300, 10100, ORACLE, "eth")}
    return MarketState(1, {0: r, 1: usd}, {}, categories)
