"""Profit capture: what liqbot realizes over a crash, against the brute-force optimum.

Usage: .venv/bin/python bench/profit_capture.py [--borrowers 2000] [--json out.json]

On a devnet (from the state cache) the oracle crashes ``--crash`` (symbol:bps, pools
arbitraged to the new prices, as when DEX prices lead the oracle), then the production bot
(``devnet_bot``: indexer, exact health factors, strategy, executor, its own flash-loan
liquidator) liquidates one position per block, the most profitable first. Before each
liquidation is mined, on the very state and block time it will execute at, every
(collateral, debt) pair × ``--grid`` amounts of that user is tried by ``eth_call``
through the same contract (``bot.research.brute``). After it is mined, the ledger gives
what the contract paid.

Capture = Σ realized profit / Σ brute-force best, both gross of gas, valued at the oracle
price. liqbot's plan may beat the grid (an exact amount, a second call on the same user),
so a single liquidation can capture more than 100%.

Once liqbot plans nothing more, the positions still liquidatable are brute-forced too:
those whose best, net of the gas a liqbot liquidation cost on average, beats the bot's
``min_profit`` are what liqbot left on the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.api import BlockRef, Scan
from bot.devnet.crash import devnet_bot
from bot.devnet.devnet import DevnetSpec, start_devnet
from bot.devnet.scenario import Scenario
from bot.execution.executor import GasContext
from bot.ledger import Ledger, Outcome
from bot.research.brute import BruteForceBest, brute_force_best
from bot.rpc import JsonRpcClient
from bot.wiring import BotService

CACHE = Path(".cache/devnet")


async def _planning(
    bot: BotService, head: BlockRef, users: Sequence[str] | None = None
) -> tuple[Scan, Any]:
    """The scan at ``head`` and what the strategy sees there for ``users`` (default:
    every liquidatable position)."""
    runner = bot.runner
    scan = await runner.adapter.scan(head, set())
    gas = GasContext(head.base_fee, scan.native_price_base)
    targets = sorted(scan.liquidatable) if users is None else users
    return scan, await runner.planning_input(head, scan, targets, gas)


async def run(a: argparse.Namespace) -> dict[str, Any]:
    net = await start_devnet(DevnetSpec(borrowers=a.borrowers), state_cache=CACHE)
    m = net.manifest
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"borrowers": a.borrowers, "crash": a.crash, "grid": a.grid}
    try:
        async with JsonRpcClient(net.url) as rpc:
            sc = Scenario(rpc, m)
            for c in a.crash:
                symbol, bps = c.split(":")
                await sc.scale_price(symbol, int(bps))
            tmp = Path(tempfile.mkdtemp(prefix="liqbot-bench-"))
            overrides = {"strategy": {"max_plans_per_block": 1}}
            async with devnet_bot(net.url, m, tmp / "bot.db", overrides=overrides) as bot:
                runner, ex = bot.runner, bot.executor
                owner, liquidator = ex.signer and ex.signer.address, ex.settings.liquidator
                assert owner and liquidator
                await rpc.call("evm_setAutomine", [False])
                pending: tuple[int, BruteForceBest] | None = None
                while True:
                    head = await runner.indexer.latest()
                    # Settles the liquidation mined in ``head``, then sends the next one.
                    report = await runner.handle(head)
                    if pending is not None:
                        rows.append(_measured(bot.ledger, *pending))
                        if a.verbose:
                            print(rows[-1], pending[1], file=sys.stderr)
                    sent = [x for x in report.attempts if x.outcome == Outcome.SENT]
                    if not sent or len(rows) >= a.users:
                        break
                    (attempt,) = sent
                    user = next(r.user for r in bot.ledger.rows() if r.id == attempt.row)
                    ts = head.timestamp + runner.settings.block_time_s
                    # The state the transaction will execute on: it is pending, unmined.
                    _, inp = await _planning(bot, head, [user])
                    best = await brute_force_best(
                        rpc,
                        inp.market,
                        inp.positions[user],
                        user,
                        owner=owner,
                        liquidator=liquidator,
                        ts=ts,
                        grid=a.grid,
                    )
                    pending = (attempt.row, best)
                    await rpc.call("evm_setNextBlockTimestamp", [hex(ts)])
                    await rpc.call("evm_mine", [])
                gas_used = [r["gas_used"] for r in rows]
                # Only when liqbot stopped by itself: stopped by ``--users``, what is left
                # includes what it would still take.
                if len(rows) < a.users:
                    out["left"] = await _left_on_table(
                        rpc, bot, owner, liquidator, a.grid, statistics.mean(gas_used or [0])
                    )
                await rpc.call("evm_setAutomine", [True])
    finally:
        net.stop()
    out["liquidations"] = rows
    realized = sum(r["realized_profit_base"] for r in rows)
    best = sum(r["brute_best_base"] for r in rows)
    out["realized_base"] = realized
    out["brute_best_base"] = best
    out["capture"] = realized / best if best else None
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    out["min_ratio"] = min(ratios, default=None)
    return out


def _measured(ledger: Ledger, row_id: int, best: BruteForceBest) -> dict[str, Any]:
    """One liquidation, settled: what it realized next to its brute-force best."""
    done = next(r for r in ledger.rows() if r.id == row_id)
    if done.outcome != Outcome.WON:
        raise RuntimeError(f"liquidation of {done.user} not won: {done}")
    value = done.predicted_net_base + done.predicted_gas_cost_base  # at the plan's price
    realized = done.realized_profit * value // max(1, done.predicted_profit)
    line = {
        "user": done.user,
        "steps": done.steps,
        "realized_profit_base": realized,
        "brute_best_base": best.profit_base,
        "ratio": realized / best.profit_base if best.profit_base else None,
        "brute_calls": best.calls,
        "gas_used": done.gas_used,
    }
    print(
        f"{done.user[:10]} steps {done.steps} realized {realized / 1e8:12,.2f} "
        f"best {best.profit_base / 1e8:12,.2f}",
        file=sys.stderr,
    )
    return line


async def _left_on_table(
    rpc: JsonRpcClient,
    bot: BotService,
    owner: str,
    liquidator: str,
    grid: int,
    gas_units: float,
) -> dict[str, Any]:
    """Brute-force the positions still liquidatable once liqbot plans nothing more."""
    head = await bot.runner.indexer.latest()
    scan, inp = await _planning(bot, head)
    ts = head.timestamp + bot.runner.settings.block_time_s
    s = bot.executor.settings
    gas_base = inp.gas_cost_base(int(gas_units))
    bar = gas_base + s.min_profit_base
    paying, below = [], 0
    for user, position in inp.positions.items():
        best = await brute_force_best(
            rpc, inp.market, position, user, owner=owner, liquidator=liquidator, ts=ts, grid=grid
        )
        if best.profit_base > bar:
            paying.append({"user": user, "brute_best_base": best.profit_base})
        elif best.profit_base > gas_base:
            below += 1
    return {
        "liquidatable": len(scan.liquidatable),
        "gas_cost_base": gas_base,
        "min_profit_base": s.min_profit_base,
        "paying_after_gas_and_min_profit": paying,
        "paying_after_gas_below_min_profit": below,
        "net_left_base": sum(p["brute_best_base"] - gas_base for p in paying),
    }


def print_report(r: dict[str, Any]) -> None:
    usd = 1e8
    rows = r["liquidations"]
    print(f"\n## Profit capture ({r['borrowers']:,} borrowers, crash {' '.join(r['crash'])})\n")
    print("| liquidations | realized (USD) | brute-force best (USD) | capture | worst single |")
    print("|---:|---:|---:|---:|---:|")
    cap = "—" if r["capture"] is None else f"{r['capture']:.4%}"
    worst = "—" if r["min_ratio"] is None else f"{r['min_ratio']:.4%}"
    print(
        f"| {len(rows)} | {r['realized_base'] / usd:,.2f} | {r['brute_best_base'] / usd:,.2f} | "
        f"{cap} | {worst} |"
    )
    two = sum(x["steps"] > 1 for x in rows)
    calls = sum(x["brute_calls"] for x in rows)
    print(f"\n- {two} of {len(rows)} plans made two calls; {calls:,} brute-force eth_calls")
    left = r.get("left")
    if left is None:
        print(f"- stopped after --users {len(rows)}: what is left was not brute-forced")
        return
    print(
        f"- afterwards {left['liquidatable']} positions still liquidatable: "
        f"{len(left['paying_after_gas_and_min_profit'])} would net more than the bot's "
        f"min_profit ({left['min_profit_base'] / usd:,.2f} USD) after the gas of a "
        f"liquidation ({left['gas_cost_base'] / usd:,.2f} USD), "
        f"{left['net_left_base'] / usd:,.2f} USD left on the table; "
        f"{left['paying_after_gas_below_min_profit']} more would net less than min_profit"
    )


async def main(a: argparse.Namespace) -> None:
    r = await run(a)
    print_report(r)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))  # noqa: ASYNC240


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--borrowers", type=int, default=2000)
    ap.add_argument("--crash", nargs="+", default=["WETH:9000", "WBTC:9000"])
    ap.add_argument("--users", type=int, default=1000, help="at most this many liquidations")
    ap.add_argument("--grid", type=int, default=40, help="amounts tried per pair")
    ap.add_argument("--json", default=None)
    ap.add_argument("--verbose", action="store_true", help="each plan and its brute force")
    asyncio.run(main(ap.parse_args()))
