"""The whole bot on a fork of the devnet: crash, plan, simulate, send, settle.

Real Aave V3 and Uniswap V2 bytecode, the real liquidator contract, the production
pipeline (indexer → exact health → strategy → executor); only the clock is driven.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_abi import decode as abi_decode

from bot.abi import load_abi
from bot.adapters.aave_v3.liquidation import AaveV3Liquidation
from bot.adapters.aave_v3.reader import MarketState
from bot.api import BlockRef
from bot.chain.anvil import AnvilProcess
from bot.devnet.crash import BLOCK_TIME_S, CrashSpec, devnet_bot, run_crash
from bot.devnet.manifest import Manifest, ReserveInfo
from bot.devnet.scenario import Scenario
from bot.execution.executor import Executor, GasContext
from bot.execution.guards import KillSwitch
from bot.ledger import Outcome
from bot.research.brute import brute_force_best
from bot.rpc import JsonRpcClient, to_int
from bot.wiring import BotService
from strategies.api import StrategyInput

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
WAD = 10**18
MAX_UINT = 2**256 - 1
POOL = load_abi("Pool")
ERC20 = load_abi("ERC20")
FEED = load_abi("SettableAggregator")


async def head_of(rpc: JsonRpcClient) -> BlockRef:
    return BlockRef.from_json(await rpc.call("eth_getBlockByNumber", ["latest", False]))


async def plan_now(
    bot: BotService, rpc: JsonRpcClient, limit: int | None = None
) -> tuple[BlockRef, StrategyInput]:
    """What the bot's strategy sees at the latest head, for (up to ``limit``) liquidatable
    positions, in the sorted order of their users."""
    runner = bot.runner
    head = await head_of(rpc)
    await bot.index.indexer.sync(head.number)
    scan = await runner.adapter.scan(head, set())
    users = sorted(scan.liquidatable)[:limit]
    gas = GasContext(head.base_fee, scan.native_price_base)
    inp = await runner.planning_input(head, scan, users, gas)
    return head, inp


@asynccontextmanager
async def bot_mined_by_hand(
    fork: AnvilProcess,
    rpc: JsonRpcClient,
    m: Manifest,
    tmp_path: Path,
    overrides: Mapping[str, Any] | None = None,
) -> AsyncIterator[BotService]:
    """The production bot on the fork, automine off: the test mines each block, so the
    bot's transactions wait in the pool until it does."""
    async with devnet_bot(fork.url, m, tmp_path / "bot.db", overrides=overrides) as bot:
        await rpc.call("evm_setAutomine", [False])
        try:
            yield bot
        finally:
            await rpc.call("evm_setAutomine", [True])


@pytest_asyncio.fixture
async def crashed(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest
) -> tuple[Manifest, Scenario]:
    """The fork's manifest and scenario, after ETH fell 24%."""
    m = manifest.with_rpc_url(fork.url)
    sc = Scenario(fork_rpc, m)
    await sc.scale_price("WETH", 7_600)
    return m, sc


async def test_crash_is_liquidated_exactly_and_only_profitably(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    m = manifest.with_rpc_url(fork.url)
    result = await run_crash(fork.url, m, tmp_path / "bot.db", CrashSpec())
    won = [r for r in result.ledger if r.outcome == Outcome.WON]
    assert len(won) >= 10, [(r.outcome, r.reason) for r in result.ledger]
    # Every sent transaction succeeded: none reverted on chain, none still in flight.
    assert {r.outcome for r in result.ledger} <= {"won", "raced", "unprofitable"}
    assert not [r for r in result.ledger if r.outcome == "raced" and r.tx_hash]
    for r in won:
        # Realized profit is the strategy's prediction to the wei (same block state).
        assert r.realized_profit == r.predicted_profit, r
        assert r.realized_net_base > 0, r  # no unprofitable transaction was sent
    assert result.profitable_after == 0, "a profitable liquidation was left on the table"
    # The owner's balances grew by exactly the realized profits.
    by_asset: dict[str, int] = {}
    for r in won:
        by_asset[r.debt_asset] = by_asset.get(r.debt_asset, 0) + r.realized_profit
    for asset, total in by_asset.items():
        out = await fork_rpc.call(
            "eth_call",
            [{"to": asset, "data": ERC20.fn("balanceOf").encode_hex(result.bot)}, "latest"],
        )
        assert ERC20.fn("balanceOf").decode_one(out) == total


async def test_plan_beats_brute_force_over_pairs_and_amounts(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    m, sc = crashed
    await sc.scale_price("WBTC", 8_500)
    async with devnet_bot(fork.url, m, tmp_path / "bot.db", live=False) as bot:
        _, inp = await plan_now(bot, fork_rpc, limit=6)
        market = inp.market
        positions = dict(inp.positions)
        victims = sorted(positions)
        assert len(victims) >= 4
        plans = {p.user: p for p in bot.runner.strategy.plan(inp)}
        owner = bot.executor.settings.owner
        liquidator = bot.executor.settings.liquidator
        assert owner and liquidator
    ratios: list[float] = []
    for user in victims:
        # The indexer's position, equal to the chain's (parity-tested).
        found = await brute_force_best(
            fork_rpc, market, positions[user], user, owner=owner, liquidator=liquidator, ts=inp.ts
        )
        best = found.profit_base
        if best == 0:
            assert user not in plans  # nothing profitable, nothing planned
            continue
        plan = plans[user]
        assert plan.profit_base >= best * 99 // 100, (user, plan.profit_base, best)
        ratios.append(plan.profit_base / best)
    assert len(ratios) >= 3
    print(f"profit capture vs eth_call brute force: min {min(ratios):.4f}, users {len(ratios)}")


async def test_competitor_first_costs_only_a_simulation(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    m, sc = crashed
    async with devnet_bot(fork.url, m, tmp_path / "bot.db") as bot:
        runner = bot.runner
        stale, inp = await plan_now(bot, fork_rpc)
        plan = runner.strategy.plan(inp)[0]
        victim = plan.user
        # A competitor liquidates the victim until it is healthy, before the bot acts.
        competitor = "0x000000000000000000000000000000000000c0DE"
        debt, coll = plan.debt_asset, plan.steps[0].collateral_asset
        symbol = next(r.symbol for r in m.reserves if r.address.lower() == debt.lower())
        await sc.fund_eth(competitor, 10**20)
        await sc.fund(competitor, symbol, 10**30)
        await sc.send(competitor, debt, ERC20.fn("approve"), m.aave.pool, MAX_UINT)
        account = POOL.fn("getUserAccountData")
        for _ in range(4):
            hf = (await sc.chain.call(m.aave.pool, account, victim))[5]
            if hf >= WAD:
                break
            await sc.send(
                competitor,
                m.aave.pool,
                POOL.fn("liquidationCall"),
                coll,
                debt,
                victim,
                MAX_UINT,
                False,
            )
        assert (await sc.chain.call(m.aave.pool, account, victim))[5] >= WAD
        await sc.chain.auto_impersonate(False)
        signer = bot.executor.signer
        assert signer is not None
        nonce_before = await fork_rpc.call("eth_getTransactionCount", [signer.address, "pending"])
        # The bot acts on the head it saw before the competitor's block.
        report = await runner.handle(stale)
        rows = {r.id: r.user for r in bot.ledger.rows()}
        mine = [a for a in report.attempts if rows[a.row] == victim]
        assert mine and mine[0].outcome in (Outcome.RACED, Outcome.UNPROFITABLE)
        assert mine[0].tx_hash == ""
        sent = sum(a.outcome == Outcome.SENT for a in report.attempts)
        nonce_after = await fork_rpc.call("eth_getTransactionCount", [signer.address, "pending"])
        # Other victims' transactions may go out; none for the one that was taken.
        assert to_int(nonce_after) - to_int(nonce_before) == sent
        # No retry loop: the next heads do not try the victim again.
        for _ in range(3):
            await sc.mine(1)
            report = await runner.handle(await head_of(fork_rpc))
            rows = {r.id: r.user for r in bot.ledger.rows()}
            assert not [a for a in report.attempts if rows[a.row] == victim]


async def test_stuck_transaction_is_replaced_with_a_bounded_fee_bump(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    m, sc = crashed
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path) as bot:
        runner, executor = bot.runner, bot.executor
        report = await runner.handle(await head_of(fork_rpc))
        sent = [a for a in report.attempts if a.outcome == Outcome.SENT]
        assert sent
        first = sent[0]
        # Base fee far above what the transactions offer: they cannot be included.
        for _ in range(executor.settings.replace_after_blocks):
            await fork_rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(50 * 10**9)])
            await sc.mine(1)
            await runner.handle(await head_of(fork_rpc))
        rows = {r.id: r for r in bot.ledger.rows()}
        assert rows[first.row].outcome == "sent"
        assert rows[first.row].tx_hash != first.tx_hash, "the stuck transaction was not replaced"
        # Once fees come down, one of the two (same nonce) is mined and settles as won.
        for _ in range(3):
            await sc.mine(1)
            await runner.handle(await head_of(fork_rpc))
        row = next(r for r in bot.ledger.rows() if r.id == first.row)
        assert row.outcome == "won" and row.realized_profit > 0
        signer = executor.signer
        assert signer is not None
        nonce = to_int(await fork_rpc.call("eth_getTransactionCount", [signer.address, "latest"]))
        mined = [r for r in bot.ledger.rows() if r.settled_block]
        # Each transaction mined once (the first nonce deployed the liquidator).
        assert nonce == len(mined) + 1


async def test_a_stuck_transaction_the_bump_no_longer_pays_for_is_cancelled_then_replanned(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """Under a base fee so high that a bumped transaction's worst-case gas would cost more
    than its plan earns, the bump is refused: left as it is, the transaction stays under
    the base fee and holds back every later nonce of ours. It is cancelled instead (the
    same nonce, a 21,000-gas transfer to ourselves; a restart adopts it as such). Its row
    settles as cancelled, with the transfer's gas as its cost; its user is not cooled
    down: the head that settles it plans it afresh, and wins it."""
    m, sc = crashed
    high = 10**14  # wei per gas: a bump's worst case is far above any plan's profit here
    overrides = {"executor": {"max_fee_gwei": str(10**6)}, "strategy": {"max_plans_per_block": 2}}
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path, overrides=overrides) as bot:
        runner, executor = bot.runner, bot.executor
        signer = executor.signer
        assert signer is not None
        report = await runner.handle(await head_of(fork_rpc))
        sent = [a for a in report.attempts if a.outcome == Outcome.SENT]
        assert len(sent) == 2
        for _ in range(executor.settings.replace_after_blocks):
            await fork_rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(high)])
            await sc.mine(1)
            report = await runner.handle(await head_of(fork_rpc))
            assert not [a for a in report.attempts if a.outcome == Outcome.SENT]
        rows = {r.id: r for r in bot.ledger.rows()}
        cancels = {a.row: rows[a.row].tx_hash for a in sent}
        for a in sent:
            assert rows[a.row].outcome == Outcome.SENT
            assert rows[a.row].reason == f"cancels {a.tx_hash}"
        # A restarted executor adopts them as cancellations: 21,000 gas of a block each.
        fresh = Executor(executor.rpc, bot.ledger, executor.settings, signer, executor.chain_id)
        assert await fresh.recover() == 2
        head = await head_of(fork_rpc)
        share = executor.settings.gas_in_flight_bps
        assert fresh.gas_room(head) == head.gas_limit * share // 10_000 - 2 * 21_000
        # The base fee falls back: the transfers are mined, and the head that settles
        # them plans their users afresh (no cooldown) and sends them again.
        await fork_rpc.call("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
        await sc.mine(1)
        head = await head_of(fork_rpc)
        report = await runner.handle(head)
        assert [a.outcome for a in report.settled] == [Outcome.CANCELLED] * 2
        first = to_int(
            await fork_rpc.call("eth_getTransactionCount", [signer.address, hex(head.number - 1)])
        )
        for k, a in enumerate(sent):
            original = await fork_rpc.call("eth_getTransactionByHash", [a.tx_hash])
            tx = await fork_rpc.call("eth_getTransactionByHash", [cancels[a.row]])
            receipt = await fork_rpc.call("eth_getTransactionReceipt", [cancels[a.row]])
            assert original is None  # replaced in the pool, never mined
            assert to_int(tx["nonce"]) == first + k  # the liquidation's own nonce
            assert tx["to"].lower() == signer.address.lower() and tx["input"] == "0x"
            assert to_int(receipt["gasUsed"]) == 21_000 and to_int(receipt["status"]) == 1
            row = next(r for r in bot.ledger.rows() if r.id == a.row)
            assert row.outcome == Outcome.CANCELLED and row.settled_block == head.number
            assert row.realized_net_base == -row.realized_gas_cost_base < 0
        again = [a for a in report.attempts if a.outcome == Outcome.SENT]
        rows = {r.id: r for r in bot.ledger.rows()}
        assert {rows[a.row].user for a in again} == {rows[a.row].user for a in sent}
        await sc.mine(1)
        await runner.handle(await head_of(fork_rpc))
        rows = {r.id: r for r in bot.ledger.rows()}
        assert [rows[a.row].outcome for a in again] == [Outcome.WON] * 2


async def test_transactions_the_node_forgot_are_sent_again_on_the_next_head(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """anvil forgets pending transactions of ours when a block is full (seen at 10,000
    borrowers: 18 of 70 gone, and won by a competitor 3 blocks later, after the fee-bump
    replacement). Here the node drops one in the middle of our nonces (a gap holding back
    the rest) and the last one: the next head sends both again, unchanged, and every
    transaction is mined in the block after."""
    m, sc = crashed
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path) as bot:
        runner = bot.runner
        report = await runner.handle(await head_of(fork_rpc))
        sent = [a for a in report.attempts if a.outcome == Outcome.SENT]
        assert len(sent) >= 3
        dropped = [sent[len(sent) // 2], sent[-1]]
        for a in dropped:
            await fork_rpc.call("anvil_dropTransaction", [a.tx_hash])
            assert await fork_rpc.call("eth_getTransactionByHash", [a.tx_hash]) is None
        await sc.mine(1)
        first_block = to_int(await fork_rpc.call("eth_blockNumber"))
        head = await head_of(fork_rpc)
        await runner.handle(head)
        for a in dropped:
            assert await fork_rpc.call("eth_getTransactionByHash", [a.tx_hash]) is not None
        await sc.mine(1)
        await runner.handle(await head_of(fork_rpc))
        rows = {r.id: r for r in bot.ledger.rows()}
        for a in sent:
            row = rows[a.row]
            assert row.outcome == "won", row
            assert row.tx_hash == a.tx_hash  # sent again as signed, not replaced
            # Before the gap: the first block; the gap and after it: the next one.
            assert row.settled_block == first_block + (a.row >= dropped[0].row)


async def test_plans_simulate_after_a_pending_block_later_than_their_time(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """Our earlier transactions run in the pending block, and anvil stamps that block
    with the wall clock: a miner lagging on loaded cores makes it later than the plans'
    time (head + block time). Simulated at the plans' time on that state, Aave's interest
    accrual underflowed (``Panic(0x11)``: 512 plans refused at 20,000 borrowers). Such a
    batch is simulated again at the node's own next-block time, and its plans pass and
    are won."""
    m, sc = crashed
    overrides = {"strategy": {"max_plans_per_block": 2}}
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path, overrides=overrides) as bot:
        runner = bot.runner
        head = await head_of(fork_rpc)
        first = await runner.handle(head)
        assert [a.outcome for a in first.attempts] == [Outcome.SENT] * 2
        late = head.timestamp + 10 * BLOCK_TIME_S
        await fork_rpc.call("evm_setNextBlockTimestamp", [hex(late)])
        pending = await fork_rpc.call("eth_getBlockByNumber", ["pending", False])
        assert to_int(pending["timestamp"]) == late
        second = await runner.handle(head)  # same head: the next two users
        assert [(a.outcome, a.reason) for a in second.attempts] == [(Outcome.SENT, "")] * 2
        await sc.mine(1)
        await runner.handle(await head_of(fork_rpc))
        rows = {r.id: r for r in bot.ledger.rows()}
        for a in first.attempts + second.attempts:
            assert rows[a.row].outcome == Outcome.WON


async def test_plans_the_eth_for_gas_does_not_cover_are_recorded_not_sent(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """A node refuses a transaction whose worst case (gas limit × fee cap) the sender's ETH
    does not cover (geth counts what the sender's pool transactions may cost too, an
    overdraft; anvil admits it and fails later), and every refusal leaves a nonce gap
    (1,073 sends refused at 20,000 borrowers with 100 ETH). Plans past what the balance
    covers are recorded as not sent, with the reason, and nothing reaches the node; once
    the account is topped up, sending resumes."""
    m, sc = crashed
    overrides = {"strategy": {"max_plans_per_block": 2}}
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path, overrides=overrides) as bot:
        runner, executor = bot.runner, bot.executor
        signer = executor.signer
        assert signer is not None
        head = await head_of(fork_rpc)
        first = await runner.handle(head)
        assert [a.outcome for a in first.attempts] == [Outcome.SENT] * 2
        txs = [await fork_rpc.call("eth_getTransactionByHash", [a.tx_hash]) for a in first.attempts]
        worst = [to_int(t["gas"]) * to_int(t["maxFeePerGas"]) for t in txs]
        # Enough for what is in flight and half of one more: nothing more fits.
        await sc.chain.set_balance(signer.address, sum(worst) + min(worst) // 2)
        nonce = await fork_rpc.call("eth_getTransactionCount", [signer.address, "pending"])
        second = await runner.handle(head)  # same head: the next two users
        assert len(second.attempts) == 2
        for a in second.attempts:
            assert a.outcome == Outcome.REVERTED
            assert a.reason.startswith("not sent: ETH for gas short"), a.reason
        assert (
            await fork_rpc.call("eth_getTransactionCount", [signer.address, "pending"]) == nonce
        )  # nothing reached the node: no gap to fill
        await sc.chain.set_balance(signer.address, 100 * 10**18)
        await sc.mine(1)
        third = await runner.handle(await head_of(fork_rpc))
        rows = {r.id: r for r in bot.ledger.rows()}
        assert [rows[a.row].outcome for a in first.attempts] == [Outcome.WON] * 2
        assert [a.outcome for a in third.attempts] == [Outcome.SENT] * 2


async def test_our_queue_stays_within_four_blocks_and_is_not_bumped_while_it_moves(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """A node mines one sender's transactions in nonce order: at 20,000 borrowers a queue
    8 to 14 blocks deep fell under the rising base fee and stranded. With blocks that hold
    about three of our liquidations, each head keeps at most four blocks' worth in
    flight (``max_gas_in_flight``), best first; everything sent is mined within five
    blocks (what a fee cap of twice the base fee outlasts), and the plans left out are
    neither recorded nor cooled down: later heads send them. A transaction waiting for
    our own earlier nonces is not stuck: while the queue moves, nothing is bumped, even
    past ``replace_after_blocks``."""
    m, sc = crashed
    limit = 2_400_000
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path) as bot:
        runner, executor = bot.runner, bot.executor
        await fork_rpc.call("evm_setBlockGasLimit", [hex(limit)])
        await sc.mine(1)
        head = await head_of(fork_rpc)
        assert head.gas_limit == limit
        liquidatable = len((await runner.adapter.scan(head, set())).liquidatable)
        per_head = []
        for _ in range(30):
            report = await runner.handle(head)
            per_head.append(sum(a.outcome == Outcome.SENT for a in report.attempts))
            room = executor.gas_room(head)
            assert room is not None and room >= 0  # within four blocks' gas
            await sc.mine(1)
            head = await head_of(fork_rpc)
            if not executor.in_flight and not per_head[-1]:
                break
        rows = [r for r in bot.ledger.rows() if r.outcome != Outcome.DRY_RUN]
        assert liquidatable > max(per_head) > 0
        assert len(rows) > max(per_head)  # the rest went on later heads
        # The plans left out had no row (no failure, no cooldown): every one was won,
        # as first sent (never bumped), within the four blocks of the queue. Some gave
        # their nonce to a later plan worth more (a user's second call), and were won on
        # a later head.
        won = [r for r in rows if r.outcome == Outcome.WON]
        assert all(r.reason == "" or r.reason.startswith("displaces row ") for r in won)
        displaced = [r for r in rows if r.outcome == Outcome.DISPLACED]
        assert len(won) + len(displaced) == len(rows)
        for d in displaced:
            assert any(r.user == d.user and r.block > d.block for r in won), d
        waited = [r.settled_block - r.block for r in won]
        # Four blocks of expected gas; a block admits by gas limit, so it holds a bit
        # less. Five full blocks is what a fee cap of twice the base fee outlasts.
        assert max(waited) <= 5, waited
        assert max(waited) > executor.settings.replace_after_blocks, waited
        assert await runner.profitable_left(head) == 0


async def test_a_bid_share_tips_from_the_profit_and_the_guard_covers_it(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    m, sc = crashed
    share = 0.05
    # The devnet's positions are large: a 500 gwei cap would bind on most bids.
    overrides = {"executor": {"bid_share": str(share), "max_fee_gwei": "20000"}}
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path, overrides=overrides) as bot:
        fixed_tip = bot.executor.settings.priority_fee_wei
        cap = bot.executor.first_fee_cap  # one bump's room under max_fee_gwei
        assert cap == bot.executor.settings.max_fee_wei * 10_000 // 11_250
        head = await head_of(fork_rpc)
        report = await bot.runner.handle(head)
        sent = [a for a in report.attempts if a.outcome == Outcome.SENT]
        assert len(sent) >= 5
        txs = await fork_rpc.batch([("eth_getTransactionByHash", [a.tx_hash]) for a in sent])
        # Mined when the plans were priced for, so each profit is predicted to the wei.
        await fork_rpc.call("evm_setNextBlockTimestamp", [head.timestamp + BLOCK_TIME_S])
        await sc.mine(1)
        await bot.runner.handle(await head_of(fork_rpc))
        rows = {r.tx_hash: r for r in bot.ledger.rows()}
    block = await fork_rpc.call("eth_getBlockByNumber", [hex(head.number + 1), False])
    base_fee = to_int(block["baseFeePerGas"])
    args = ("address", "uint256", "(address,address,uint256)[]", "uint256")
    bids = 0
    for tx in txs:
        row = rows[tx["hash"]]
        assert row.outcome == Outcome.WON, row
        assert row.realized_profit == row.predicted_profit, row
        tip = to_int(tx["maxPriorityFeePerGas"])
        assert to_int(tx["maxFeePerGas"]) == min(2 * head.base_fee + tip, cap)
        assert row.gas_price_wei == base_fee + tip
        value = row.realized_net_base + row.realized_gas_cost_base  # of the profit tokens
        paid_tip = row.realized_gas_cost_base * tip // row.gas_price_wei
        surplus = value - (row.realized_gas_cost_base - paid_tip)  # above base-fee gas
        if tip == cap:  # the bid would have been higher
            assert share * surplus >= paid_tip
        elif tip > fixed_tip:
            # The tip is the share of what the plan earns above base-fee gas, per unit of
            # simulated gas: the receipt's gas differs by a few hundred units (the guard
            # re-encoded in the calldata), the block's base fee from the head's.
            bids += 1
            assert paid_tip == pytest.approx(share * surplus, rel=1e-2), (paid_tip, surplus)
            assert row.realized_net_base == pytest.approx((1 - share) * surplus, rel=1e-2)
        else:  # a small plan: its share would be below the fixed tip
            assert tip == fixed_tip and share * surplus <= paid_tip * 1.001
        # The contract's guard covers the bid: a price move that eats the profit down to
        # less than the gas it bid reverts instead of paying it at a loss.
        min_profit = abi_decode(args, bytes.fromhex(tx["input"][10:]))[3]
        assert min_profit * value // row.realized_profit >= row.realized_gas_cost_base * 0.999
    assert bids >= len(txs) // 2, f"{bids} bids among {len(txs)} transactions"


async def test_kill_switch_holds_sending_and_records_the_plans(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    m, sc = crashed
    stop_file = tmp_path / "STOP"
    stop_file.touch()
    async with devnet_bot(fork.url, m, tmp_path / "bot.db") as bot:
        bot.executor.kill_switch = KillSwitch(stop_file)
        signer = bot.executor.signer
        assert signer is not None
        nonce = await fork_rpc.call("eth_getTransactionCount", [signer.address, "pending"])
        report = await bot.runner.handle(await head_of(fork_rpc))
        assert report.attempts
        assert {a.outcome for a in report.attempts} == {Outcome.DRY_RUN}
        assert all("kill switch" in a.reason for a in report.attempts)
        assert await fork_rpc.call("eth_getTransactionCount", [signer.address, "pending"]) == nonce
        # Released: the plans go out once the users' cooldown has passed.
        stop_file.unlink()
        await sc.mine(bot.executor.settings.cooldown_blocks)
        report = await bot.runner.handle(await head_of(fork_rpc))
        assert any(a.outcome == Outcome.SENT for a in report.attempts)


async def test_zero_or_stale_prices_set_their_positions_aside(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    m, sc = crashed
    await sc.scale_price("WBTC", 7_000)
    async with devnet_bot(fork.url, m, tmp_path / "bot.db", live=False) as bot:
        runner = bot.runner
        liquidation = bot.index.liquidation
        assert isinstance(liquidation, AaveV3Liquidation)
        monitor = liquidation.monitor
        book = bot.index.adapter.indexing.book
        head = await head_of(fork_rpc)
        await bot.index.indexer.sync(head.number)
        before = await monitor.on_block(head, ())
        ids = {r.symbol: rid for rid, r in _by_symbol(m, before.market).items()}

        def holds(user: str, rid: int) -> bool:
            u = book.users[user].reserves.get(rid)
            return u is not None and (u.collateral_enabled or u.borrowing)

        assert any(holds(u, ids["WBTC"]) for u in before.liquidatable)
        assert any(not holds(u, ids["WBTC"]) for u in before.liquidatable)
        # A feed answers 0: only the positions that hold WBTC are set aside.
        await sc.set_price("WBTC", 0, align_pools=False)
        head = await head_of(fork_rpc)
        health = await monitor.on_block(head, ())
        assert health.unpriced == {ids["WBTC"]: "zero price"}
        assert health.set_aside and all(holds(u, ids["WBTC"]) for u in health.set_aside)
        assert health.liquidatable and not any(holds(u, ids["WBTC"]) for u in health.liquidatable)
        report = await runner.handle(await head_of(fork_rpc))  # the pipeline keeps running
        rows = {r.id: r.user for r in bot.ledger.rows()}
        assert report.attempts and not any(holds(rows[a.row], ids["WBTC"]) for a in report.attempts)
        # WETH's feed stops updating: its last answer is older than the allowed age.
        feed = m.reserve("WETH").price_feed
        price = await sc.price("WETH")
        old = head.timestamp - 100_000
        await sc.send(m.deployer, feed, FEED.fn("setAnswerWithTimestamp"), price, old)
        health = await monitor.on_block(await head_of(fork_rpc), ())
        assert health.unpriced[ids["WETH"]].startswith("price ")
        assert not any(holds(u, ids["WETH"]) for u in health.liquidatable)


def _by_symbol(m: Manifest, market: MarketState) -> dict[int, ReserveInfo]:
    by_asset = {r.address.lower(): r for r in m.reserves}
    return {rid: by_asset[r.asset.lower()] for rid, r in market.reserves.items()}


async def test_a_head_reads_the_market_and_the_pools_in_one_call(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    """A quiet head costs one eth_getLogs and one eth_call; a crash head reads the pools'
    reserves in that same eth_call, so its plans wait for no extra round trip."""
    m = manifest.with_rpc_url(fork.url)
    sc = Scenario(fork_rpc, m)
    async with devnet_bot(fork.url, m, tmp_path / "bot.db") as bot:
        runner, rpc = bot.runner, bot.index.rpc
        await runner.handle(await head_of(fork_rpc))  # the first head backfills
        for _ in range(3):
            await sc.mine(1)
            before = Counter(rpc.calls)
            report = await runner.handle(await head_of(fork_rpc))
            assert report.error is None and report.liquidatable == 0
            assert Counter(rpc.calls) - before == Counter({"eth_getLogs": 1, "eth_call": 1})
        await sc.scale_price("WETH", 7_600)
        before = Counter(rpc.calls)
        report = await runner.handle(await head_of(fork_rpc))
        used = Counter(rpc.calls) - before
        assert [a for a in report.attempts if a.outcome == Outcome.SENT]
        assert used["eth_call"] == 1, used


async def test_a_new_crash_takes_the_next_block_from_a_queue_of_lesser_plans(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """An oracle update that lands on a queue deeper than one block: its best plans take
    the queue's next nonces from the flights that earn less, and are mined in the very
    next block with the profit predicted to the wei, instead of behind four blocks of
    leftovers. Each displaced user is liquidated on a later head."""
    m, sc = crashed
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path) as bot:
        runner, executor = bot.runner, bot.executor
        await fork_rpc.call("evm_setBlockGasLimit", [hex(2_400_000)])  # ~3 of ours a block
        await sc.mine(1)
        head = await head_of(fork_rpc)
        # The WETH crash fills our queue to more than three blocks.
        while (executor.gas_room(head) or 0) >= head.gas_limit:
            await runner.handle(head)
            await sc.mine(1)
            head = await head_of(fork_rpc)
        # WBTC falls too: the update outbids our queue into the next block, which our
        # queue fills up; three blocks of it wait behind.
        price = await sc.price("WBTC") * 7_000 // 10_000
        await fork_rpc.call("anvil_impersonateAccount", [m.deployer])
        update = {
            "from": m.deployer,
            "to": m.reserve("WBTC").price_feed,
            "data": FEED.fn("setAnswer").encode_hex(price),
            "maxPriorityFeePerGas": hex(10**13),
            "maxFeePerGas": hex(2 * 10**13),
        }
        await fork_rpc.call("eth_sendTransaction", [update])
        await sc.mine(1)
        head = await head_of(fork_rpc)
        report = await runner.handle(head)
        rows = {r.id: r for r in bot.ledger.rows()}
        displaced = [r for r in rows.values() if r.outcome == Outcome.DISPLACED]
        first = [rows[a.row] for a in report.attempts[: len(displaced)]]
        assert displaced, "no plan took the front of the queue"
        assert all(r.outcome == Outcome.SENT for r in first)
        assert min(r.predicted_net_base for r in first) > max(
            r.predicted_net_base for r in displaced
        )
        # They hold our lowest nonces: nothing of ours is mined before them.
        txs = await fork_rpc.batch([("eth_getTransactionByHash", [r.tx_hash]) for r in first])
        nonces = sorted(to_int(tx["nonce"]) for tx in txs)
        assert nonces == sorted(f.nonce for f in executor._in_flight.values())[: len(first)]
        await fork_rpc.call("evm_setNextBlockTimestamp", [head.timestamp + BLOCK_TIME_S])
        await sc.mine(1)
        for _ in range(40):
            head = await head_of(fork_rpc)
            await runner.handle(head)
            if not executor.in_flight and not await runner.profitable_left(head):
                break
            await sc.mine(1)
        rows = {r.id: r for r in bot.ledger.rows()}
        # Nothing profitable is left: the displaced users were planned afresh (those no
        # longer liquidated had stopped paying: the WBTC crash moved their collateral).
        assert await runner.profitable_left(head) == 0
    # The best in the very next block, the rest right after it (they may use more gas
    # than the flights they displaced), each as predicted: they traded first.
    settled = [rows[r.id].settled_block - r.block for r in first]
    assert settled[0] == 1 and max(settled) <= 2, settled
    for r in first:
        assert rows[r.id].outcome == Outcome.WON, rows[r.id]
        assert rows[r.id].realized_profit == r.predicted_profit, rows[r.id]
    won = {r.user for r in rows.values() if r.outcome == Outcome.WON}
    assert {r.user for r in displaced} & won
    assert all(rows[r.id].outcome == Outcome.DISPLACED for r in displaced)


async def test_a_crash_head_leaves_its_later_batches_to_a_newer_head(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """A crash head sends in batches (8, 32, ...), and on a node slower than its blocks
    the next head arrives meanwhile. Once it has sent a batch, a head yields to a newer
    one: the plans it did not reach are neither recorded nor cooled down, and the newer
    head sends them, against its own pools."""
    m, sc = crashed
    overrides = {"strategy": {"max_plans_per_block": 64}}
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path, overrides) as bot:
        runner = bot.runner
        head = await head_of(fork_rpc)
        report = await runner.handle(head, newer=lambda: True)
        first = bot.ledger.rows()
        assert report.liquidatable > 8
        assert [a.outcome for a in report.attempts] == [Outcome.SENT] * 8  # the first batch
        assert report.yielded and report.phases[-1][0] == "yielded"
        assert len(first) == 8
        # Mined at the time the plans were priced for: realized profits are exact.
        await fork_rpc.call("evm_setNextBlockTimestamp", [head.timestamp + BLOCK_TIME_S])
        await sc.mine(1)
        head = await head_of(fork_rpc)
        report = await runner.handle(head)
        assert not report.yielded
        rows = bot.ledger.rows()
        assert len(rows) > len(first) + 8  # more than a batch: it did not yield
        assert len({r.user for r in rows}) == len(rows)  # no user planned twice
        for _ in range(5):
            await fork_rpc.call("evm_setNextBlockTimestamp", [head.timestamp + BLOCK_TIME_S])
            await sc.mine(1)
            head = await head_of(fork_rpc)
            await runner.handle(head)
            if not bot.executor.in_flight:
                break
        won = [r for r in bot.ledger.rows()[: len(rows)] if r.outcome == Outcome.WON]
        assert len(won) == len(rows), [(r.outcome, r.reason) for r in bot.ledger.rows()]
        assert all(r.realized_profit == r.predicted_profit for r in won)


async def test_inventory_takes_what_no_sale_pays_for_and_keeps_the_collateral(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, tmp_path: Path, crashed: tuple[Manifest, Scenario]
) -> None:
    """``strategy.inventory = "fallback"``: with the WETH pools 15% under the oracle, no
    sale of seized WETH pays; the owner's stablecoins repay those users instead and the
    WETH is handed over unsold, each transaction exactly as predicted."""
    m, sc = crashed
    weth = m.reserve("WETH").address
    price = await sc.price("WETH")
    await sc.set_price("WETH", price * 85 // 100)  # the pools follow...
    await sc.set_price("WETH", price, align_pools=False)  # ...the oracle comes back
    overrides = {"strategy": {"inventory": "fallback", "max_plans_per_block": 64}}
    async with bot_mined_by_hand(fork, fork_rpc, m, tmp_path, overrides=overrides) as bot:
        runner, signer = bot.runner, bot.executor.signer
        assert signer is not None and bot.executor.settings.liquidator
        owner, liquidator = signer.address, bot.executor.settings.liquidator
        _, inp = await plan_now(bot, fork_rpc)
        sold = runner.strategy.plan(inp)
        assert all(not p.keep for p in sold)  # no inventory yet
        assert all(p.steps[0].collateral_asset.lower() != weth.lower() for p in sold)
        stables = {r.address.lower(): r.symbol for r in m.reserves if r.symbol in ("USDC", "DAI")}
        stock = 10**30
        await fork_rpc.call("evm_setAutomine", [True])
        for asset, symbol in stables.items():
            await sc.fund(owner, symbol, stock)
            await sc.send(owner, asset, ERC20.fn("approve"), liquidator, MAX_UINT)
        await sc.chain.auto_impersonate(False)
        await fork_rpc.call("evm_setAutomine", [False])
        _, inp = await plan_now(bot, fork_rpc)
        planned = runner.strategy.plan(inp)
        kept = [p for p in planned if p.keep]
        assert len(kept) >= 5, [(p.user, p.net_profit_base) for p in planned]
        assert {p.steps[0].collateral_asset.lower() for p in kept} == {weth.lower()}
        assert {p.debt_asset.lower() for p in kept} <= set(stables)
        for _ in range(6):
            head = await head_of(fork_rpc)
            report = await runner.handle(head)
            if not report.attempts and bot.executor.in_flight == 0:
                break
            # At the time the plans were priced for: exact to the wei.
            await sc.chain.set_next_timestamp(head.timestamp + BLOCK_TIME_S)
            await sc.mine(1)
        rows = bot.ledger.rows()
    assert {r.outcome for r in rows} == {"won"}, [(r.outcome, r.reason) for r in rows]
    keeps = [r for r in rows if r.profit_asset.lower() == weth.lower()]
    assert {r.user for r in keeps} >= {p.user for p in kept}
    for r in rows:
        assert r.realized_profit == r.predicted_profit, r  # to the wei
    for r in keeps:
        assert r.swap_cost_base == r.flash_premium == 0 and r.realized_net_base > 0
    balance = ERC20.fn("balanceOf")
    got = await sc.chain.call(weth, balance, owner)
    assert got == sum(r.realized_profit for r in keeps)  # the owner held no WETH before
    for asset in stables:
        repaid = sum(r.debt_repaid for r in keeps if r.debt_asset.lower() == asset)
        earned = sum(
            r.realized_profit for r in rows if r.debt_asset.lower() == asset and r not in keeps
        )
        assert await sc.chain.call(asset, balance, owner) == stock - repaid + earned
    async with devnet_bot(fork.url, m, tmp_path / "check.db", live=False) as check:
        _, inp = await plan_now(check, fork_rpc)
        assert check.runner.strategy.plan(inp) == []  # nothing left that a sale pays for
