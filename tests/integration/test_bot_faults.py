"""The whole bot through a faulty RPC during a crash: it keeps running while the node
misbehaves, and once the faults stop it liquidates everything it should, with no
transaction sent twice and none reverted on chain.

The bot talks to the fork through the fault proxy; the test drives the chain directly.
Each fault stays on for the first heads after the crash (every request or call it
matches), then is cleared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_bot_execution import crashed, head_of  # noqa: F401 - the fixture is used by name

from bot.chain.anvil import AnvilProcess
from bot.devnet.crash import devnet_bot, profitable_left
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.ledger import Outcome
from bot.rpc import JsonRpcClient, to_int
from bot.testing.fault_proxy import Fault, FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

# Short timeouts and one retry: a faulty head fails in seconds, not minutes.
FAST = {"rpc": {"timeout_s": 1.0, "retries": 1}}
FAULTY_HEADS = 2
# A plan refused while the faults lasted cools down for cooldown_blocks (5) unless its
# position changes; then one head sends it and the next settles it.
MAX_HEADS = 12

FAULTS: list[tuple[Fault, dict[str, Any]]] = [
    (Fault.DELAY, {"delay_s": 0.3}),
    (Fault.TIMEOUT, {"delay_s": 3.0}),
    (Fault.HTTP_5XX, {"status": 502}),
    (Fault.HTTP_429, {"retry_after_s": 0.1}),
    (Fault.DROP, {}),
    (Fault.TRUNCATED, {}),
    (Fault.GARBAGE, {}),
    (Fault.FROZEN_HEAD, {}),
    (Fault.LOGS_OTHER_RANGE, {}),
    (Fault.LOGS_WRONG_HASH, {}),
    (Fault.LOGS_EMPTY, {}),
]


@pytest.mark.parametrize(("fault", "options"), FAULTS, ids=[f.value for f, _ in FAULTS])
async def test_the_bot_rides_out_the_fault_then_liquidates_everything(
    fork: AnvilProcess,
    fork_rpc: JsonRpcClient,
    tmp_path: Path,
    crashed: tuple[Manifest, Scenario],  # noqa: F811
    fault: Fault,
    options: dict[str, Any],
) -> None:
    m, sc = crashed
    async with (
        FaultProxy(fork.url) as proxy,
        devnet_bot(proxy.url, m, tmp_path / "bot.db", overrides=FAST) as bot,
    ):
        runner = bot.runner
        signer = bot.executor.signer
        assert signer is not None
        nonce0 = await nonce_of(fork_rpc, signer.address)
        rule = proxy.inject(fault, times=None, **options)
        failed = 0
        for _ in range(FAULTY_HEADS):
            try:
                await runner.handle(await head_of(fork_rpc))
            except Exception:  # what Runner.run logs and survives
                failed += 1
            await sc.mine(1)
        assert rule.hits > 0
        proxy.clear()
        for _ in range(MAX_HEADS):
            head = await head_of(fork_rpc)
            report = await runner.handle(head)
            if not report.attempts and bot.executor.in_flight == 0:
                break
            await sc.mine(1)
        else:
            rows = [(r.user[:10], r.outcome, r.block, r.reason[:60]) for r in bot.ledger.rows()]
            pytest.fail(f"the bot still had work after the faults stopped: {rows}")
        rows = bot.ledger.rows()
        assert await profitable_left(bot, head) == 0, [
            (r.user[:8], r.block, r.outcome, r.reason) for r in rows if r.outcome != Outcome.WON
        ]
        won = [r for r in rows if r.outcome == Outcome.WON]
        assert won, [(r.outcome, r.reason) for r in rows]
        assert {r.outcome for r in rows} <= {"won", "raced", "unprofitable"}
        hashes = [r.tx_hash for r in rows if r.tx_hash]
        assert len(hashes) == len(set(hashes))  # nothing sent twice
        # Every transaction the bot sent is accounted for by one ledger row.
        assert await nonce_of(fork_rpc, signer.address) - nonce0 == len(hashes)


async def nonce_of(rpc: JsonRpcClient, address: str) -> int:
    return to_int(await rpc.call("eth_getTransactionCount", [address, "latest"]))
