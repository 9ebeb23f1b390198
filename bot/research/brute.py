"""The brute-force optimum of one Aave V3 liquidation, by ``eth_call``: the yardstick the
strategy's plans are measured against (tests and ``bench/profit_capture.py``).

Every (collateral, debt) pair of the position, ``grid`` amounts of the debt each
(``total * k // grid``, k = 1..grid), is called through the real liquidator contract's
flash-loan ``liquidate`` as its owner, on the node's state at ``tag`` and at the block
time ``ts``. The contract returns the debt-asset profit it would send the owner (gross of
gas); the best is valued at the reserve's oracle price.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.execution.liquidator import LIQUIDATOR_ABI
from bot.rpc import JsonRpcClient, RpcError

RAY = 10**27
_LIQUIDATE = LIQUIDATOR_ABI.fn("liquidate")


@dataclass(frozen=True, slots=True)
class BruteForceBest:
    """The best call found: its base-currency value (0: nothing pays) and what it was."""

    profit_base: int
    profit: int = 0  # debt-asset units
    collateral_asset: str = ""
    debt_asset: str = ""
    debt_to_cover: int = 0
    calls: int = 0  # how many were tried


async def brute_force_best(
    rpc: JsonRpcClient,
    market: MarketState,
    position: UserPosition,
    user: str,
    *,
    owner: str,
    liquidator: str,
    ts: int,
    grid: int = 40,
    tag: str = "latest",
) -> BruteForceBest:
    """The most profitable one-step liquidation of ``user`` over pairs × amounts."""
    collaterals = [rid for rid, u in position.reserves.items() if u.collateral_enabled]
    debts = [rid for rid, u in position.reserves.items() if u.scaled_variable_debt > 0]
    tried: list[tuple[int, int, int]] = []  # (collateral id, debt id, amount)
    for c in collaterals:
        for d in debts:
            rd = market.reserves[d]
            total = position.reserves[d].scaled_variable_debt * rd.variable_borrow_index // RAY
            tried += [(c, d, max(1, total * k // grid)) for k in range(1, grid + 1)]
    calls = []
    for c, d, amount in tried:
        rc, rd = market.reserves[c], market.reserves[d]
        data = _LIQUIDATE.encode_hex(rd.asset, amount, [(rc.asset, user, amount)], 0)
        tx = {"from": owner, "to": liquidator, "data": data}
        calls.append(("eth_call", [tx, tag, {}, {"time": hex(ts)}]))
    results = await rpc.batch(calls) if calls else []
    best = BruteForceBest(0, calls=len(calls))
    for (c, d, amount), res in zip(tried, results, strict=True):
        if isinstance(res, RpcError):
            continue  # reverts: it does not pay (or is not allowed) at this amount
        rd = market.reserves[d]
        profit = _LIQUIDATE.decode_one(res)
        value = profit * rd.price // 10**rd.config.decimals
        if value > best.profit_base:
            best = BruteForceBest(
                value, profit, market.reserves[c].asset, rd.asset, amount, len(calls)
            )
    return best
