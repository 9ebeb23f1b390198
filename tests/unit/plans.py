"""Made-up liquidation plans for executor tests (no market behind them)."""

from __future__ import annotations

from bot.api import LiquidationPlan, LiquidationStep

DAI = "0x" + "33" * 20


def one_step_plan(user: str, usd: int = 500) -> LiquidationPlan:
    """A one-step plan repaying DAI, expected to earn 1e18 DAI units worth ``usd``."""
    step = LiquidationStep(user, "0x" + "22" * 20, DAI, 10**21, 5 * 10**17, 10**15, 10_500)
    return LiquidationPlan(
        protocol="aave-v3",
        user=user,
        debt_asset=DAI,
        health_factor=97 * 10**16,
        steps=(step,),
        swaps=(),
        flash_amount=0,
        flash_premium=0,
        profit=10**18,
        profit_base=usd * 10**8,
        bonus_base=0,
        protocol_fee_base=0,
        swap_cost_base=0,
        flash_premium_base=0,
        gas_units=300_000,
        gas_price_wei=10**9,
        gas_cost_base=0,
        net_profit_base=usd * 10**8,
    )
