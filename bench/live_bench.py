"""Live benchmark: liqbot against a baseline bot on the same chain, as competitors feel it.

Usage: .venv/bin/python bench/live_bench.py [--borrowers 2000 ...] [--json out.json]

For each borrower count it starts a devnet (from the state cache), funds a baseline bot
(``bench/baseline_bot.py``: polls the latest block, re-reads every borrower's
``getUserAccountData`` by Multicall3 each block, liquidates from its own balance) and the
production liqbot (``open_bot`` + ``Runner.run`` over websocket heads, a fresh key owning a
fresh flash-loan liquidator, ``--bid-share`` of each plan's profit bid as priority fee),
switches anvil to interval mining and runs both side by side, the baseline in its own
process:

* RPC economy: JSON-RPC calls per block of each bot over ``--blocks`` quiet blocks;
* reaction: ``--updates`` oracle updates, ``--after`` blocks apart, each sets the next of
  ``--symbols`` to ``--crash-bps`` of its price; per update and bot, the time from a
  head's arrival to its liquidations being sent, and the blocks from the update's block to
  the first liquidation it got included;
* race: per update, who wins each ``LiquidationCall`` (the event's ``liquidator``:
  liqbot's contract or the baseline's account) until the next update.

``--solo`` runs liqbot without the baseline: the reaction as the chain alone allows it
(with the baseline, both bots and anvil share 2 cores, and the baseline's per-block
``getUserAccountData`` sweep keeps anvil busy for most of each block at 10,000 borrowers).

Then, in a child process, peak RSS while holding ``--memory`` positions (real devnet
positions replicated, each a distinct object) in a ``Book`` and a ``PackedBook``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from baseline_bot import ETH_FOR_GAS, BaselineBot, BaselineProcess, stock

from bot.abi import load_abi
from bot.api import BlockRef
from bot.chain.heads import LatestHeads, WebsocketHeads
from bot.devnet.crash import devnet_bot
from bot.devnet.deploy import DeployOptions
from bot.devnet.devnet import DevnetSpec, start_devnet
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.execution.executor import Attempt
from bot.ledger import Outcome
from bot.rpc import JsonRpcClient, to_int
from bot.runner import HeadReport
from bot.wiring import BotService

CACHE = Path(".cache/devnet")
# The devnet's default Uniswap V2 depth (per side, USD), for 2,000 borrowers: by default
# pools deepen with the market, as DEX liquidity does with a lending market's size.
_POOL_DEPTH_PER_2K = DeployOptions().pool_depth_usd
_POOL = load_abi("Pool")
_LIQ_EVENT = _POOL.event("LiquidationCall")
_FEED = load_abi("SettableAggregator").fn("setAnswer")
_ORACLE = load_abi("AaveOracle").fn("getAssetPrice")


class TimedHeads(WebsocketHeads):
    """Websocket heads that remember when each one arrived (perf_counter)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.arrived: dict[int, float] = {}

    async def next_head(self) -> BlockRef:
        head = await super().next_head()
        self.arrived[head.number] = time.perf_counter()
        return head


def liqbot(
    url: str, manifest: Manifest, database: Path, a: argparse.Namespace
) -> AbstractAsyncContextManager[BotService]:
    """The production bot as ``devnet_bot`` builds it, with websocket heads and the
    devnet's block time."""
    return devnet_bot(
        url,
        manifest,
        database,
        overrides={
            "chain": {"rpc_url": url, "ws_url": url.replace("http://", "ws://")},
            "strategy": {
                "block_time_s": a.block_time,
                "max_plans_per_block": a.max_plans,
                "inventory": a.inventory,
            },
            "executor": {
                "bid_share": str(a.bid_share),
                **({"max_gas_in_flight": a.gas_in_flight} if a.gas_in_flight else {}),
            },
        },
    )


# Polling the chain from the bench driver is the point here (not a bot's hot path).
async def _wait_block(rpc: JsonRpcClient, n: int, timeout_s: float = 120.0) -> int:
    async with asyncio.timeout(timeout_s):
        while (h := to_int(await rpc.call("eth_blockNumber"))) < n:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return h


async def _receipt(rpc: JsonRpcClient, tx: str, timeout_s: float = 60.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while (r := await rpc.call("eth_getTransactionReceipt", [tx])) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return dict(r)


def _quantiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "n": len(xs)}


async def scenario(n: int, a: argparse.Namespace) -> dict[str, Any]:
    depth = a.pool_depth_usd or _POOL_DEPTH_PER_2K * max(1, n // 2000)
    spec = DevnetSpec(borrowers=n, deploy=DeployOptions(pool_depth_usd=depth))
    net = await start_devnet(spec, state_cache=CACHE)
    out: dict[str, Any] = {"borrowers": n, "from_cache": net.from_cache, "pool_depth_usd": depth}
    m = net.manifest
    try:
        async with JsonRpcClient(net.url) as setup:
            funder = BaselineBot(net.url, m)
            await funder.fund(setup)
            await funder.close()
            tmp = Path(tempfile.mkdtemp(prefix="liqbot-bench-"))
            m.save(tmp / "manifest.json")
            base = BaselineProcess(
                net.url, tmp / "manifest.json", funder.account.key.hex(), funder.address
            )
            async with liqbot(net.url, m, tmp / "liqbot.db", a) as bot:
                assert bot.executor.signer is not None
                await setup.call(
                    "anvil_setBalance", [bot.executor.signer.address, hex(ETH_FOR_GAS)]
                )
                if a.inventory != "off":  # what the baseline holds, for keep plans
                    assert bot.executor.settings.liquidator is not None
                    await stock(
                        setup, m, bot.executor.signer.address, bot.executor.settings.liquidator
                    )
                result = await _race(setup, bot, base, m, a)
        out.update(result)
    finally:
        net.stop()
    return out


async def _race(
    setup: JsonRpcClient,
    bot: BotService,
    base: BaselineProcess,
    m: Manifest,
    a: argparse.Namespace,
) -> dict[str, Any]:
    liquidator = bot.executor.settings.liquidator
    assert liquidator is not None
    heads_src = TimedHeads(bot.index.settings.chain.ws_url or "")
    reports: list[HeadReport] = []
    sends: list[tuple[int, float, Attempt]] = []
    ex = bot.executor

    def timed(send: Any) -> Any:
        """``send`` (the executor's ``submit`` or ``preempt``) noting when each attempt
        left, at the head it was made for (its ``BlockRef`` argument)."""

        async def wrapped(*args: Any) -> list[Attempt]:
            attempts: list[Attempt] = await send(*args)
            head = next(x for x in args if isinstance(x, BlockRef))
            now = time.perf_counter()
            sends.extend((head.number, now, a) for a in attempts)
            return attempts

        return wrapped

    ex.submit = timed(ex.submit)  # type: ignore[method-assign]
    ex.preempt = timed(ex.preempt)  # type: ignore[method-assign]
    liq_rpc = bot.index.rpc
    await setup.call("evm_setIntervalMining", [a.block_time])
    stop = asyncio.Event()
    res: dict[str, Any] = {}

    async def drive() -> None:
        try:
            start = to_int(await setup.call("eth_blockNumber"))
            # Warm-up: both bots have handled a few heads of the interval-mined chain.
            async with asyncio.timeout(120):
                while not (  # noqa: ASYNC110
                    reports
                    and reports[-1].head.number >= start + 2
                    and (a.solo or (base.blocks and base.blocks[-1][0] >= start + 2))
                ):
                    await asyncio.sleep(0.1)
            h0 = to_int(await setup.call("eth_blockNumber"))
            await _wait_block(setup, h0 + 1)
            liq0, base0 = Counter(liq_rpc.calls), Counter(base.calls)
            h1 = await _wait_block(setup, h0 + 1 + a.blocks)
            await asyncio.sleep(a.block_time * 0.9)  # let both finish block h1
            liq1, base1 = Counter(liq_rpc.calls), Counter(base.calls)
            k = h1 - (h0 + 1)
            res["steady"] = {
                "blocks": k,
                "liqbot": {meth: c / k for meth, c in (liq1 - liq0).items()},
                "baseline": {meth: c / k for meth, c in (base1 - base0).items()},
                "liqbot_head_ms": [r.elapsed_s * 1e3 for r in reports if h0 < r.head.number <= h1],
                "baseline_block_ms": [
                    (done - seen) * 1e3 for b, seen, done in base.blocks if h0 < b <= h1
                ],
            }
            # The updates: each one oracle update, in one block (pools are left as they are).
            res["updates"] = []
            for k in range(a.updates):
                symbol = a.symbols[k % len(a.symbols)]
                r = m.reserve(symbol)
                price = await Scenario(setup, m).chain.call(m.aave.oracle, _ORACLE, r.address)
                await setup.call("anvil_impersonateAccount", [m.deployer])
                tx = await setup.call(
                    "eth_sendTransaction",
                    [
                        {
                            "from": m.deployer,
                            "to": r.price_feed,
                            "data": _FEED.encode_hex(price * a.crash_bps // 10_000),
                            "gas": hex(200_000),
                        }
                    ],
                )
                receipt = await _receipt(setup, tx)
                ob = to_int(receipt["blockNumber"])
                res["updates"].append({"symbol": symbol, "block": ob})
                await _wait_block(setup, ob + a.after)
                await asyncio.sleep(a.block_time * 0.9)
        finally:
            stop.set()

    async with LatestHeads(heads_src) as heads, asyncio.TaskGroup() as tg:
        tg.create_task(bot.runner.run(heads, stop, reports.append))
        if not a.solo:
            tg.create_task(base.run(stop))
        tg.create_task(drive())
    await setup.call("evm_setIntervalMining", [0])
    await setup.call("evm_setAutomine", [True])
    updates = res.pop("updates")
    head = to_int(await setup.call("eth_blockNumber"))
    logs = await setup.call(
        "eth_getLogs",
        [
            {
                "fromBlock": hex(updates[0]["block"]),
                "toBlock": hex(head),
                "address": m.aave.pool,
                "topics": [_LIQ_EVENT.topic0_hex],
            }
        ],
    )
    events: list[tuple[int, str, str]] = []  # (block, user, winner), in chain order
    for lg in logs:
        ev = _LIQ_EVENT.decode(
            [bytes.fromhex(t[2:]) for t in lg["topics"]], bytes.fromhex(lg["data"][2:])
        )
        who = str(ev["liquidator"]).lower()
        name = (
            "liqbot"
            if who == liquidator.lower()
            else "baseline"
            if who == base.address.lower()
            else "other"
        )
        events.append((to_int(lg["blockNumber"]), str(ev["user"]).lower(), name))
    timed = [
        (b, t - heads_src.arrived[b], att)
        for b, t, att in sends
        if att.outcome == Outcome.SENT and b in heads_src.arrived
    ]
    rows = bot.ledger.rows()
    ends = [u["block"] for u in updates[1:]] + [head + 1]
    res["updates"] = [
        {"symbol": u["symbol"], **_window(u["block"], end, events, reports, timed, base, rows)}
        for u, end in zip(updates, ends, strict=True)
    ]
    res["liqbot_ledger"] = dict(Counter(f"{r.outcome}" for r in rows))
    res["liqbot_refusals"] = dict(
        Counter(att.reason[:80] for _, _, att in sends if att.outcome != Outcome.SENT)
    )
    res["bid_share"] = a.bid_share
    res["inventory"] = a.inventory
    return res


def _window(
    ob: int,
    end: int,
    events: list[tuple[int, str, str]],
    reports: list[HeadReport],
    timed: list[tuple[int, float, Attempt]],
    base: BaselineProcess,
    rows: list[Any],
) -> dict[str, Any]:
    """Race and reaction for one oracle update, mined in block ``ob``: the heads and
    liquidations from ``ob`` up to the next update's block ``end``."""
    inside = [(b, u, w) for b, u, w in events if ob <= b < end]
    wins = Counter(w for _, _, w in inside)
    first: dict[str, str] = {}
    for _, u, w in inside:
        first.setdefault(u, w)
    # Blocks from the update to an inclusion: liqbot's from its ledger, counting only the
    # transactions it sent at or after the update's head (one in the update's own block,
    # or later but sent earlier, was on its way for the previous update). The baseline's
    # from the chain, leaving out the update's own block.
    blocks_by: dict[str, list[int]] = {
        "liqbot": [
            r.settled_block - ob
            for r in rows
            if ob <= r.block < end and r.outcome == Outcome.WON and r.settled_block
        ],
        "baseline": [b - ob for b, _, w in inside if w == "baseline" and b > ob],
    }
    crash = [r for r in reports if ob <= r.head.number < end]
    # The users liqbot found worth a transaction (a plan that paid after flash-loan fee,
    # swap and gas): the baseline holds the debt tokens and keeps the collateral, so it
    # also takes positions whose collateral no longer sells at a profit.
    planned = {r.user.lower() for r in rows if ob <= r.block < end}
    contested = Counter(first.get(u, "nobody") for u in planned)
    liq_sent = [(b, dt) for b, dt, _ in timed if ob <= b < end]
    base_sent = [s for s in base.sends if ob <= s.block < end]
    return {
        "block": ob,
        "liquidatable_at_update": crash[0].liquidatable if crash else None,
        "liquidations": dict(wins),
        "users": len(first),
        "first_liquidation_of_user": dict(Counter(first.values())),
        "planned_by_liqbot": len(planned),
        "first_liquidation_of_planned_user": dict(contested),
        "liqbot_share_of_planned": contested["liqbot"] / max(1, len(planned)),
        "liqbot_head_to_send_ms": _quantiles([dt * 1e3 for _, dt in liq_sent]),
        "liqbot_first_send_head": (liq_sent[0][0] - ob) if liq_sent else None,
        "liqbot_phases_ms_at_update": [
            {step: round(t * 1e3) for step, t in r.phases} for r in crash[:2]
        ],
        "baseline_head_to_send_ms": _quantiles([(s.sent - s.arrived) * 1e3 for s in base_sent]),
        "baseline_first_send_head": (base_sent[0].block - ob) if base_sent else None,
        "liqbot_blocks_to_inclusion": min(blocks_by["liqbot"], default=None),
        "baseline_blocks_to_inclusion": min(blocks_by["baseline"], default=None),
        "liqbot_sent": len(liq_sent),
        "baseline_sent": len(base_sent),
        "liqbot_inclusion_blocks": dict(Counter(blocks_by["liqbot"])),
        "baseline_inclusion_blocks": dict(Counter(blocks_by["baseline"])),
    }


# -- memory (child process) ----------------------------------------------------------------
def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


async def _memory_child(positions: int, borrowers: int) -> dict[str, Any]:
    from bot.adapters.aave_v3.adapter import AaveV3Adapter, AaveV3Market
    from bot.adapters.aave_v3.kernel import PackedBook
    from bot.adapters.aave_v3.state import Book, UserPosition
    from bot.indexer.indexer import Indexer, IndexerSettings
    from bot.indexer.store import Store

    out: dict[str, Any] = {"rss_start_kb": _rss_kb()}
    net = await start_devnet(DevnetSpec(borrowers=borrowers), state_cache=CACHE)
    try:
        m = net.manifest
        async with JsonRpcClient(net.url) as rpc:
            cfg = AaveV3Market(m.aave.pool_addresses_provider, m.multicall3, m.deploy_block)
            adapter = await AaveV3Adapter.connect(rpc, cfg)
            ix = Indexer(
                rpc,
                adapter.indexing,
                Store(":memory:"),
                IndexerSettings(start_block=m.deploy_block, confirmations=0),
            )
            await ix.sync()
    finally:
        net.stop()
    real = list(adapter.indexing.book.users.values())
    out["rss_indexed_kb"] = _rss_kb()
    out["peak_indexed_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    book = Book()
    for i in range(positions):
        p = real[i % len(real)]
        # Distinct objects and integers, as a real book of distinct users would hold.
        pos = UserPosition(
            p.emode,
            {
                rid: replace(u, scaled_atoken=u.scaled_atoken + (i & 1))
                for rid, u in p.reserves.items()
            },
        )
        user = f"0x{i + 1:040x}"
        book.users[user] = pos
        for rid in pos.reserves:
            book.holders.setdefault(rid, set()).add(user)
    out["rss_book_kb"] = _rss_kb()
    out["peak_book_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    packed = PackedBook(book.users)
    out["rss_packed_kb"] = _rss_kb()
    out["peak_packed_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["positions"] = len(packed)
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def memory(positions: int, borrowers: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", str(positions)]
    cmd += ["--borrowers", str(borrowers)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- report --------------------------------------------------------------------------------
def _total(per_method: dict[str, float]) -> float:
    return sum(per_method.values())


def _fmt(x: float | None, unit: str = "") -> str:
    return "—" if x is None else f"{x:,.1f}{unit}"


def print_report(runs: list[dict[str, Any]], mem: dict[str, Any] | None) -> None:
    print("\n## RPC economy (quiet chain, JSON-RPC calls per block)\n")
    print("| borrowers | blocks | liqbot | baseline | baseline / liqbot | liqbot calls |")
    print("|---:|---:|---:|---:|---:|---|")
    for r in runs:
        s = r["steady"]
        lq, bl = _total(s["liqbot"]), _total(s["baseline"])
        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["liqbot"].items()))
        print(
            f"| {r['borrowers']:,} | {s['blocks']} | {lq:.2f} | {bl:.2f} | "
            f"{bl / lq if lq else float('inf'):,.1f}× | {detail} |"
        )
    print("\nBaseline calls by method (per block):\n")
    for r in runs:
        s = r["steady"]
        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["baseline"].items()))
        head_ms = statistics.median(s["liqbot_head_ms"]) if s["liqbot_head_ms"] else None
        blk_ms = statistics.median(s["baseline_block_ms"]) if s["baseline_block_ms"] else None
        print(
            f"- {r['borrowers']:,} borrowers: {detail}; median work per block: "
            f"liqbot {_fmt(head_ms, ' ms')}, baseline {_fmt(blk_ms, ' ms')}"
        )
    print("\n## Reaction (each oracle update → liquidation)\n")
    print(
        "| borrowers | update | liquidatable | liqbot head → sent, median (min–max) | "
        "liqbot blocks to first inclusion | baseline blocks to first inclusion | "
        "liqbot sent | baseline sent |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        for k, x in enumerate(r["updates"], 1):
            q = x["liqbot_head_to_send_ms"]
            span = f"{q['median']:,.0f} ms ({q['min']:,.0f}–{q['max']:,.0f})" if q else "—"
            print(
                f"| {r['borrowers']:,} | {k}: {x['symbol']} | {x['liquidatable_at_update']} | "
                f"{span} | {_fmt(x['liqbot_blocks_to_inclusion'])} | "
                f"{_fmt(x['baseline_blocks_to_inclusion'])} | {x['liqbot_sent']} | "
                f"{x['baseline_sent']} |"
            )
    for r in runs:
        got = [x["liqbot_blocks_to_inclusion"] for x in r["updates"]]
        nxt = sum(g == 1 for g in got)
        print(
            f"\n- {r['borrowers']:,} borrowers: liqbot included in the next block after "
            f"{nxt} of {len(got)} updates (blocks: {', '.join(map(str, got))})"
        )
    print("\n## Race (same chain; who executes each LiquidationCall)\n")
    for r in runs:
        print(f"- {r['borrowers']:,} borrowers: liqbot's strategy.inventory {r['inventory']}")
    print()
    print(
        "| borrowers | update | liqbot bid share | liquidatable at update | liquidations | "
        "liqbot | baseline | users first liquidated by liqbot | of the users liqbot planned |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        total: Counter[str] = Counter()
        for k, x in enumerate(r["updates"], 1):
            w = x["liquidations"]
            fl = x["first_liquidation_of_user"]
            fp = x["first_liquidation_of_planned_user"]
            total.update(
                planned=x["planned_by_liqbot"],
                won=fp.get("liqbot", 0),
                users=x["users"],
                first=fl.get("liqbot", 0),
            )
            print(
                f"| {r['borrowers']:,} | {k}: {x['symbol']} | {r['bid_share']:g} | "
                f"{x['liquidatable_at_update']} | {sum(w.values())} | {w.get('liqbot', 0)} | "
                f"{w.get('baseline', 0)} | {fl.get('liqbot', 0)} / {x['users']} | "
                f"{fp.get('liqbot', 0)} / {x['planned_by_liqbot']} "
                f"({x['liqbot_share_of_planned']:.0%}) |"
            )
        print(
            f"| {r['borrowers']:,} | **all** | | | | | | {total['first']} / {total['users']} | "
            f"**{total['won']} / {total['planned']} "
            f"({total['won'] / max(1, total['planned']):.0%})** |"
        )
    if mem:
        mb = 1024.0
        print(f"\n## Memory ({mem['positions']:,} positions, one process)\n")
        print("| stage | RSS now (MiB) | peak so far, ru_maxrss (MiB) |")
        print("|---|---:|---:|")
        for label, key in (
            ("interpreter + imports", "rss_start_kb"),
            ("after indexing the devnet (real book)", "rss_indexed_kb"),
            ("+ Book of replicated positions", "rss_book_kb"),
            ("+ PackedBook (kernel)", "rss_packed_kb"),
        ):
            peak = mem.get(key.replace("rss_", "peak_"), mem["rss_start_kb"])
            print(f"| {label} | {mem[key] / mb:,.0f} | {peak / mb:,.0f} |")
        print(f"| end of run | | {mem['peak_rss_kb'] / mb:,.0f} |")


async def main(a: argparse.Namespace) -> None:
    # Memory first: ru_maxrss survives fork + exec on Linux, so a child started from a
    # parent that has grown would report the parent's size.
    mem = None if a.memory == 0 else memory(a.memory, a.borrowers[0])
    runs = []
    for n in a.borrowers:
        print(f"running {n:,} borrowers ...", file=sys.stderr, flush=True)
        runs.append(await scenario(n, a))
    print_report(runs, mem)
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": runs, "memory": mem}, indent=1))  # noqa: ASYNC240


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--borrowers", type=int, nargs="+", default=[2000])
    ap.add_argument("--blocks", type=int, default=20, help="quiet blocks for RPC economy")
    ap.add_argument("--block-time", type=int, default=1, help="anvil interval mining (s)")
    ap.add_argument(
        "--symbols", nargs="+", default=["WETH", "WBTC"], help="updated in turn, one per update"
    )
    ap.add_argument("--updates", type=int, default=4, help="oracle updates per borrower count")
    ap.add_argument("--crash-bps", type=int, default=9_500, help="new price, bps of the old")
    ap.add_argument("--after", type=int, default=8, help="blocks watched after each update")
    ap.add_argument("--max-plans", type=int, default=512, help="liqbot max_plans_per_block")
    ap.add_argument(
        "--gas-in-flight",
        default=None,
        help="liqbot executor.max_gas_in_flight (blocks' gas); default: the bot's",
    )
    ap.add_argument(
        "--bid-share", type=float, default=0.0, help="liqbot executor.bid_share (0: fixed tip)"
    )
    ap.add_argument(
        "--inventory",
        choices=["off", "fallback", "best"],
        default="off",
        help="liqbot strategy.inventory; not off: it holds the baseline's tokens",
    )
    ap.add_argument(
        "--pool-depth-usd",
        type=int,
        default=0,
        help="Uniswap V2 depth per pool side; 0: 50M per 2,000 borrowers",
    )
    ap.add_argument("--memory", type=int, default=100_000, help="positions; 0: skip")
    ap.add_argument(
        "--solo", action="store_true", help="liqbot alone (reaction without a competitor)"
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        print(json.dumps(asyncio.run(_memory_child(args.memory_child, args.borrowers[0]))))
    else:
        asyncio.run(main(args))
