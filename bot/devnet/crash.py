"""A price crash on a devnet with the real bot liquidating through its contract.

The driver owns the clock: it moves the price (automine on, so the oracle update and the
pool arbitrage land as ordinary blocks), switches automine off and hands the head to the
bot, which indexes, evaluates, plans and sends its transactions to the mempool. The
driver then mines the next block at ``head.timestamp + block_time_s`` -- the timestamp
the bot priced its plans at -- so each realized profit can be compared with its
prediction to the wei. It keeps mining while the bot has work in flight or new plans.

The bot is the production pipeline (``open_bot`` + ``Runner.run`` over ``LatestHeads``);
only its head source is scripted. Its key is generated for the run and never leaves
memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from bot.api import BlockRef
from bot.chain.heads import LatestHeads, ScriptedHeads
from bot.config import Settings, deep_merge, manifest_settings
from bot.devnet.deploy import deploy_liquidator
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.errors import DevnetError
from bot.ledger import LedgerRow
from bot.rpc import JsonRpcClient
from bot.runner import HeadReport
from bot.wiring import BotService, open_bot

log = logging.getLogger(__name__)

KEY_ENV = "LIQBOT_DEMO_KEY"
BLOCK_TIME_S = 12
HANDLE_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class CrashSpec:
    symbol: str = "WETH"
    steps_bps: Sequence[int] = (9_150, 9_150, 9_150, 9_150)  # -30% in four steps
    max_blocks_per_step: int = 6
    min_profit: str = "1"  # base currency (USD)
    protocol: str = "aave-v3"  # or "morpho-blue": its oracles follow the Aave feeds


@dataclass(slots=True)
class CrashResult:
    bot: str
    liquidator: str
    reports: list[HeadReport] = field(default_factory=list)
    ledger: list[LedgerRow] = field(default_factory=list)
    liquidatable_after: int = 0  # positions still below HF 1 at the end
    profitable_after: int = 0  # of those, how many the strategy could still liquidate


async def _head(rpc: JsonRpcClient) -> BlockRef:
    return BlockRef.from_json(await rpc.call("eth_getBlockByNumber", ["latest", False]))


class _Driver:
    def __init__(self, bot: BotService, heads: ScriptedHeads, result: CrashResult) -> None:
        self.bot = bot
        self.heads = heads
        self.result = result
        self._reported = asyncio.Event()

    def on_report(self, report: HeadReport) -> None:
        self.result.reports.append(report)
        self._reported.set()

    async def handle(self, head: BlockRef) -> HeadReport:
        """Hand ``head`` to the bot and wait until it has acted on it."""
        reports = self.result.reports
        self.heads.publish(head)
        try:
            async with asyncio.timeout(HANDLE_TIMEOUT_S):
                while not reports or reports[-1].head.number < head.number:
                    self._reported.clear()
                    await self._reported.wait()
        except TimeoutError:
            raise DevnetError(f"the bot did not handle block {head.number}") from None
        last = reports[-1]
        if last.error:
            raise DevnetError(f"the bot failed on block {head.number}: {last.error}")
        return last


@asynccontextmanager
async def devnet_bot(
    url: str,
    manifest: Manifest,
    database: Path,
    *,
    min_profit: str = "1",
    live: bool = True,
    overrides: Mapping[str, Any] | None = None,
    protocol: str = "aave-v3",
) -> AsyncIterator[BotService]:
    """The production bot on a devnet or fork, with a fresh key (funded with ETH) owning a
    freshly deployed liquidator; ``live=False`` leaves the key out: a dry run.
    ``overrides`` are settings merged over the devnet's (e.g. websocket heads);
    ``protocol`` picks the devnet's market the bot liquidates in."""
    account = Account.create()
    async with JsonRpcClient(url) as rpc:
        chain = Scenario(rpc, manifest).chain
        await chain.set_balance(account.address, 100 * 10**18)
        liquidator = await deploy_liquidator(
            chain, account.address, manifest.aave.pool, manifest.uniswap.factory
        )
        await chain.auto_impersonate(False)
    ours = {
        "indexer": {"database": str(database), "confirmations": 2},
        "strategy": {"min_profit": min_profit, "block_time_s": BLOCK_TIME_S},
        "executor": {"liquidator": liquidator, "private_key_env": KEY_ENV},
    }
    settings = Settings.model_validate(
        deep_merge(
            deep_merge(manifest_settings(manifest.with_rpc_url(url), protocol), ours),
            overrides or {},
        )
    )
    env = {KEY_ENV: account.key.hex()} if live else {}
    async with open_bot(settings, env=env) as bot:
        await bot.index.indexer.sync()
        yield bot


async def run_crash(
    url: str,
    manifest: Manifest,
    database: Path,
    spec: CrashSpec = CrashSpec(),
    on_step: Callable[[int, int], None] | None = None,
    on_report: Callable[[HeadReport], None] | None = None,
) -> CrashResult:
    """Crash ``spec.symbol`` on the devnet at ``url`` while the bot liquidates."""
    async with (
        JsonRpcClient(url) as rpc,
        devnet_bot(
            url, manifest, database, min_profit=spec.min_profit, protocol=spec.protocol
        ) as bot,
    ):
        sc = Scenario(rpc, manifest)
        assert bot.executor.signer is not None and bot.executor.settings.liquidator
        result = CrashResult(bot.executor.signer.address, bot.executor.settings.liquidator)
        heads = ScriptedHeads()
        driver = _Driver(bot, heads, result)
        stop = asyncio.Event()

        def reported(report: HeadReport) -> None:
            if on_report is not None:
                on_report(report)
            driver.on_report(report)

        async def drive() -> None:
            try:
                for i, bps in enumerate(spec.steps_bps):
                    await rpc.call("evm_setAutomine", [True])
                    price = await sc.scale_price(spec.symbol, bps)
                    if spec.protocol == "morpho-blue":
                        await sc.follow_aave_prices()
                    await rpc.call("evm_setAutomine", [False])
                    if on_step is not None:
                        on_step(i, price)
                    head = await _head(rpc)
                    report = await driver.handle(head)
                    for _ in range(spec.max_blocks_per_step):
                        if not report.attempts and bot.executor.in_flight == 0:
                            break
                        await sc.chain.set_next_timestamp(head.timestamp + BLOCK_TIME_S)
                        await sc.chain.mine(1)
                        head = await _head(rpc)
                        report = await driver.handle(head)
            finally:
                await rpc.call("evm_setAutomine", [True])
                stop.set()

        async with LatestHeads(heads) as latest, asyncio.TaskGroup() as tg:
            tg.create_task(bot.runner.run(latest, stop, reported))
            tg.create_task(drive())
        result.ledger = bot.ledger.rows()
        final = result.reports[-1] if result.reports else None
        if final is not None:
            result.liquidatable_after = final.liquidatable
            result.profitable_after = await profitable_left(bot, final.head)
    return result


async def profitable_left(bot: BotService, head: BlockRef) -> int:
    """How many positions the strategy would still liquidate profitably at ``head``."""
    return await bot.runner.profitable_left(head)
