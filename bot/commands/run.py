"""``liqbot run``: index, watch health, plan and execute liquidations on every new head.

Dry-run unless a key is configured (``executor.private_key_env`` names the environment
variable holding it, or ``executor.keystore`` + ``executor.password_file``) and a
liquidator contract is set: then plans that survive simulation are signed and sent.
Either way every plan and its outcome lands in the ledger (``liqbot ledger``).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument(
        "--blocks", type=int, default=None, help="stop after handling this many heads"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="never send, even with a key configured"
    )


async def run(args: argparse.Namespace) -> int:
    import contextlib
    import logging

    from bot.alerts import open_alerts
    from bot.chain.heads import LatestHeads
    from bot.commands._common import load_settings
    from bot.commands._signals import stop_event
    from bot.errors import FatalError
    from bot.metrics import Metrics
    from bot.runner import HeadReport
    from bot.wiring import open_bot

    log = logging.getLogger("bot.run")
    settings = load_settings(args)
    if args.dry_run:
        settings = settings.model_copy(
            update={"executor": settings.executor.model_copy(update={"mode": "dry-run"})}
        )
    stop = stop_event()
    async with open_bot(settings) as bot, contextlib.AsyncExitStack() as stack:
        ex = bot.executor
        who = ex.signer.address if ex.signer else "no key"
        print(
            f"liqbot run: {'DRY RUN' if ex.dry_run else 'LIVE'} ({who}); liquidator "
            f"{ex.settings.liquidator or 'none'}; ledger {bot.index.store.path}",
            flush=True,
        )
        adapter = bot.index.liquidation
        metrics: Metrics | None = None
        mc = settings.metrics
        if mc.port is not None:
            metrics = Metrics(rpc=bot.index.rpc, stale_after_s=mc.stale_after_s)
            metrics.observe_ledger(bot.ledger.rows())
            url = await stack.enter_async_context(metrics.serve(mc.host, mc.port))
            print(f"metrics: {url}/metrics, health: {url}/health", flush=True)
        alerts = await stack.enter_async_context(
            open_alerts(settings.alerts, ex.signer.address if ex.signer else "dry-run")
        )
        ix = bot.index.indexer
        report = await ix.sync()
        print(
            f"indexed to block {report.head.number}: {len(adapter.positions())} positions "
            f"({adapter.name})",
            flush=True,
        )
        if metrics is not None:
            metrics.positions.set(len(adapter.positions()))

        def count(report: HeadReport) -> None:
            if metrics is not None:
                metrics.observe(report, positions=len(adapter.positions()))
                if report.settled:
                    metrics.observe_ledger(bot.ledger.rows())
            if alerts is not None:
                alerts.observe(report, bot.ledger.rows)
            if args.blocks is not None and bot.runner.handled >= args.blocks:
                stop.set()

        async with LatestHeads(bot.index.heads()) as heads:
            try:
                await bot.runner.run(heads, stop, count)
            except FatalError as e:
                if alerts is not None:
                    alerts.halted(str(e))
                raise
        if alerts is not None:
            alerts.stopped(f"handled {bot.runner.handled} heads")
        log.info("stopped", extra={"handled": bot.runner.handled, "failed": bot.runner.failures})
    return 0
