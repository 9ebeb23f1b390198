"""``liqbot index``: backfill the market's history (with progress), then follow new heads."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument(
        "--no-follow", action="store_true", help="stop once caught up with the head"
    )


async def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from bot.chain.heads import LatestHeads
    from bot.commands._common import load_settings
    from bot.commands._signals import stop_event
    from bot.wiring import open_index

    log = logging.getLogger("bot.index")
    settings = load_settings(args)
    stop = stop_event()
    async with open_index(settings) as svc:
        ix = svc.indexer
        start = ix.confirmed_block
        head = (await ix.latest()).number
        columns = (
            TextColumn("backfill"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task("backfill", total=max(head - start, 1))
            report = await ix.sync(
                head, progress=lambda done, _t: bar.update(task, completed=done - start)
            )
        print(
            f"indexed to block {report.head.number} (confirmed {ix.confirmed_block}): "
            f"{len(svc.adapter.indexing.book)} accounts, {ix.logs_seen} logs",
            flush=True,
        )
        if args.no_follow:
            return 0
        async with LatestHeads(svc.heads()) as heads:
            while not stop.is_set():
                waiter = asyncio.create_task(heads.next())
                stopper = asyncio.create_task(stop.wait())
                done, pending = await asyncio.wait(
                    {waiter, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                for t in pending:
                    t.cancel()
                if waiter not in done:
                    break
                new_head = waiter.result()
                report = await ix.sync(new_head.number)
                log.info(
                    "head",
                    extra={
                        "block": report.head.number,
                        "new_blocks": report.new_blocks,
                        "changed": len(report.dirty),
                        "reorg": report.reorged,
                        "skipped": heads.skipped,
                    },
                )
    return 0
