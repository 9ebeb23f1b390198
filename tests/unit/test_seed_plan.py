"""The borrower planner is deterministic and its plans are valid Aave positions."""

from __future__ import annotations

from bot.devnet.market import BPS, DEFAULT_MARKET
from bot.devnet.seed import plan_borrowers

PRICES = {r.symbol: r.price_usd_8 for r in DEFAULT_MARKET.reserves}
WAD = 10**18


def test_deterministic_and_seed_dependent() -> None:
    a = plan_borrowers(50, DEFAULT_MARKET, PRICES, seed=3)
    assert a == plan_borrowers(50, DEFAULT_MARKET, PRICES, seed=3)
    assert a != plan_borrowers(50, DEFAULT_MARKET, PRICES, seed=4)
    assert len({p.address for p in a}) == 50


def test_plans_are_borrowable_and_hit_their_target() -> None:
    emodes = {e.category_id: e for e in DEFAULT_MARKET.emodes}
    for p in plan_borrowers(500, DEFAULT_MARKET, PRICES, seed=1):
        coll = lt = ltv = 0
        for sym, amount in p.collateral:
            r = DEFAULT_MARKET.reserve(sym)
            value = amount * PRICES[sym] // 10**r.decimals
            e = emodes.get(p.emode) if p.emode and r.emode_category == p.emode else None
            coll += value
            lt += value * (e.liquidation_threshold if e else r.liquidation_threshold)
            ltv += value * (e.ltv if e else r.ltv)
        debt = sum(a * PRICES[s] // 10 ** DEFAULT_MARKET.reserve(s).decimals for s, a in p.debt)
        assert debt * BPS < ltv, f"{p.kind} borrows past its LTV"
        hf = lt * WAD // BPS // debt
        assert abs(hf - p.target_health_factor_wad) * 1000 < p.target_health_factor_wad
        assert WAD < p.target_health_factor_wad < 31 * WAD // 10
