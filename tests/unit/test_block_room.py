"""Which simulated plans a head sends when the block room is bounded (``Runner`` with
``Executor.gas_room``): the rule block builders admit transactions by."""

from __future__ import annotations

from test_relay import plan

from bot.execution.executor import Simulation
from bot.runner import _fitting


def sim(user: str, gas: int, ok: bool = True) -> Simulation:
    """A simulation as ``eth_simulateV1`` gives it: the limit is 1.5x the gas used."""
    return Simulation(plan(user), b"", 1 if ok else None, gas, gas * 3 // 2 if ok else 0)


def test_a_plan_fits_when_the_gas_before_it_plus_its_own_limit_does() -> None:
    sims = [sim("a", 400_000), sim("b", 400_000), sim("c", 400_000)]
    # 400k used + b's 600k limit = 1.0M fits; then 800k + c's 600k limit does not.
    assert [x.plan.user for x in _fitting(sims, 1_000_000)] == ["a", "b"]
    assert [x.plan.user for x in _fitting(sims, 1_400_000)] == ["a", "b", "c"]
    assert [x.plan.user for x in _fitting(sims, 599_999)] == []
    assert _fitting(sims, None) == sims


def test_failed_simulations_take_no_room_and_later_plans_are_not_picked_past_the_cut() -> None:
    failed = sim("x", 0, ok=False)
    sims = [failed, sim("a", 400_000), sim("big", 900_000), sim("small", 50_000)]
    # "small" would fit alone, but it was simulated after "big": sent without it, its
    # prediction would no longer be the simulation's.
    assert _fitting(sims, 1_000_000) == [failed, sims[1]]
