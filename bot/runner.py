"""The bot's per-head pipeline and its run loop.

new head → incremental index update → exact health of the affected positions → strategy
→ executor. One handler at a time, on the newest head only: ``LatestHeads`` keeps just the
newest arrival, so a slow block is followed by the current head, never by a backlog,
and a crash head with many batches to send stops after its current one when a newer head
has arrived.
A handler that fails (an RPC that times out or lies, a reorg deeper than the tip) is
logged with its block and the loop carries on with the next head; only ``FatalError``
(e.g. the node switched chains) stops the bot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bot.aio import give_up
from bot.api import BlockRef, LiquidationAdapter, LiquidationPlan, PlanTerms, Scan
from bot.chain.heads import LatestHeads
from bot.errors import BotHalted, FatalError
from bot.execution.executor import (
    Attempt,
    Executor,
    GasContext,
    InFlight,
    Simulation,
    admitted,
)
from bot.execution.inventory import Inventory
from bot.execution.quotes import PairBook
from bot.execution.sequencing import HeadPlans, PlanSequence, leg_pool
from bot.indexer.indexer import Indexer
from bot.ledger import Outcome
from bot.rpc import JsonRpcClient
from strategies.api import PairQuote, Strategy, best_first

log = logging.getLogger(__name__)

# Simulation rounds per head: the first, and re-plans after failures that moved shared pools.
_ROUNDS = 3
# Batch sizes of a head with many targets: each batch is priced, simulated and sent
# before the next is priced, so the best plans leave first; the growth keeps the number of
# simulation round trips at a few.
_FIRST_BATCH = 8
_BATCH_GROWTH = 4
_GONE = frozenset({Outcome.SENT, Outcome.DRY_RUN})  # later plans are priced after these
_YIELDED = "yielded"
# Aave's interest accrual run at a time before the state's last update.
_UNDERFLOW = "Panic(0x11)"
# A head's pools, and the owner's inventory (empty when keep plans are off).
_Quotes = tuple[dict[frozenset[str], PairQuote], dict[str, int]]


@dataclass(frozen=True, slots=True)
class RunSettings:
    min_profit_base: int
    max_plans_per_block: int
    block_time_s: int
    priority_fee_wei: int
    max_consecutive_failures: int = 20


@dataclass(frozen=True, slots=True)
class HeadReport:
    head: BlockRef
    liquidatable: int
    planned: int
    attempts: tuple[Attempt, ...]
    settled: tuple[Attempt, ...]
    elapsed_s: float
    error: str | None = None  # the handler failed; the next head retries
    # Seconds from the start of the handler to the end of each step ("sync", "scan",
    # "settle", "plan", then "priced k", "simulated k", "sent k" for batch k, k = 0 for
    # the plans that displace queued ones), "yielded" when a newer head took over its
    # remaining batches: where a slow head went.
    phases: tuple[tuple[str, float], ...] = ()

    @property
    def yielded(self) -> bool:
        """It left batches to a newer head (``Runner.handle``)."""
        return any(step == _YIELDED for step, _ in self.phases)


@dataclass(slots=True)
class _HeadWork:
    """What a head's batches share."""

    head: BlockRef
    gas: GasContext
    inp: Any  # the strategy's input for the head's targets
    priced: HeadPlans  # their plans against the head's pools, best first, priced lazily
    mark: Callable[[str], None]  # notes a step's end (``HeadReport.phases``)
    newer: Callable[[], bool]  # a newer head waits to be handled
    done: set[str] = field(default_factory=set)  # users recorded at this head

    def yields(self) -> bool:
        """Leave the head's remaining batches to the newer head, which plans them afresh
        against fresher pools: once this head has recorded a batch (so a node slower than
        its blocks still gets every head's best plans sent)."""
        return bool(self.done) and self.newer()


def _never() -> bool:
    return False


class Runner:
    def __init__(
        self,
        *,
        rpc: JsonRpcClient,
        indexer: Indexer,
        adapter: LiquidationAdapter,
        pairs: PairBook,
        strategy: Strategy,
        executor: Executor,
        settings: RunSettings,
        inventory: Inventory | None = None,
    ) -> None:
        """``inventory``: the owner's tokens keep plans may use (None: no keep plans)."""
        self.rpc = rpc
        self.indexer = indexer
        self.adapter = adapter
        self.pairs = pairs
        self.strategy = strategy
        self.executor = executor
        self.settings = settings
        self.inventory = inventory
        self.handled = 0
        self.failures = 0
        # The head whose pending block proved later than its plans' time (see ``_batch``):
        # its later batches simulate at the node's time straight away, not twice each.
        self._late_head: int | None = None

    async def handle(self, head: BlockRef, newer: Callable[[], bool] = _never) -> HeadReport:
        """Index, evaluate, plan and send for ``head``. ``newer`` tells whether a newer
        head is waiting (``LatestHeads.waiting``): the head then stops after its current
        batch rather than hold the newer one back."""
        t0 = time.perf_counter()
        phases: list[tuple[str, float]] = []

        def mark(step: str) -> None:
            phases.append((step, time.perf_counter() - t0))

        self.rpc.note_head(head.number)
        # The head's reads all leave at once, before its logs are read: the adapter's
        # (the market, for scan), the pools and the inventory (asked in the same turn:
        # where the adapter reads through its multicall they share its eth_call, so a
        # quiet head costs no extra call) and our transactions' receipts (a batch of
        # their own).
        self.adapter.prefetch(head)
        quotes = self._quotes(head)
        polled = asyncio.ensure_future(self.executor.poll())
        try:
            sync = await self.indexer.sync(head)
            if sync.head.number != head.number:  # a catch-up or a reorg: read it anew
                give_up(quotes)
                self.adapter.prefetch(sync.head)
                quotes = self._quotes(sync.head)
            head = sync.head
            mark("sync")
            changed = self.adapter.positions_of(sync.dirty)
            self.executor.changed(changed)
            scan = await self.adapter.scan(head, changed)
            mark("scan")
            gas = GasContext(head.base_fee, scan.native_price_base)
            self.executor.final(self.indexer.confirmed_block)
            try:
                answers = await polled
            except Exception as e:  # asked again by on_head
                log.info("receipts unavailable", extra={"err": repr(e)})
                answers = None
            if sync.reorged:
                # Our transactions in the blocks the reorg dropped are in flight again.
                await self.executor.reorged(head)
                answers = None  # asked before the reorg was handled
            settled = await self.executor.on_head(head, gas, answers)
            mark("settle")
            targets = self.executor.idle(sorted(scan.liquidatable), head.number)
            attempts: list[Attempt] = []
            room = self.executor.gas_room(head)
            front = self.executor.front(head)
            if targets and (front or room is None or room > 0):
                inp = await self.planning_input(head, scan, targets, gas, quotes)
                mark("plan")
                w = _HeadWork(
                    head, gas, inp, HeadPlans(best_first(self.strategy, inp)), mark, newer
                )
                if front:
                    attempts = await self._preempt(w, front)
                    room = self.executor.gas_room(head)
                if room is None or room > 0:
                    attempts += await self._execute(w, room)
        finally:
            # Unused (nothing to plan, a failed step): cancelled, or their error taken.
            give_up(quotes)
            give_up(polled)
        planned = len(attempts)
        report = HeadReport(
            head,
            len(scan.liquidatable),
            planned,
            tuple(attempts),
            tuple(settled),
            time.perf_counter() - t0,
            phases=tuple(phases),
        )
        log.info(
            "block",
            extra={
                "block": head.number,
                "liquidatable": report.liquidatable,
                "planned": planned,
                "sent": sum(a.outcome == "sent" for a in attempts),
                "settled": len(settled),
                "ms": round(report.elapsed_s * 1e3, 1),
                **({"phases_ms": {k: round(v * 1e3) for k, v in phases}} if planned else {}),
            },
        )
        return report

    def _quotes(self, head: BlockRef) -> asyncio.Future[_Quotes]:
        """The pools and the inventory at ``head``, asked for in this turn."""
        pools = asyncio.ensure_future(self.pairs.quotes(head.number))
        held = None
        if self.inventory is not None:
            held = asyncio.ensure_future(self.inventory.read(self.adapter.assets(), head.number))

        async def both() -> _Quotes:
            return await pools, {} if held is None else await held

        def drop(_: object) -> None:  # also when given up before it ever ran
            give_up(pools)
            if held is not None:
                give_up(held)

        out = asyncio.ensure_future(both())
        out.add_done_callback(drop)
        return out

    async def _simulation_time(
        self, ts: int, head: BlockRef, latest: asyncio.Task[BlockRef]
    ) -> int:
        """The timestamp to simulate at: the plans' own (``head`` + the block time), unless
        the chain has moved past ``head`` while we worked (a slow head, a crash head's
        later batches, a reorg's new blocks). The simulation runs on the newest state, and
        at a time before that state's last update Aave's interest accrual underflows
        (``Panic(0x11)``) instead of telling whether the plan still pays (see ``_batch``
        for a pending block later than this)."""
        try:
            newest = await latest
        except Exception as e:  # the plans' own time is still a fine guess
            log.info("latest block unavailable", extra={"err": repr(e)})
            return ts
        if newest.number <= head.number:
            return ts
        return max(ts, newest.timestamp + self.settings.block_time_s)

    async def _preempt(self, w: _HeadWork, front: Sequence[InFlight]) -> list[Attempt]:
        """The head's best plans take the nonces of ``front`` (``Executor.front``: the
        start of a queue deeper than one block) from flights that earn less, so they are
        mined in the next block rather than behind the queue. They execute before
        anything of ours in the pool, so they are priced against the head's pools alone
        and simulated on the latest block. Adds the users it recorded to ``w.done``.

        The flights behind them trade after them now: where they share a pool, each
        realizes a little more or less than predicted, and its on-chain minProfit still
        turns a loss into a revert."""
        latest = asyncio.create_task(self.indexer.latest())
        try:
            seq = PlanSequence(self.strategy, w.inp, plans=iter(w.priced))
            # The queue keeps its inventory: displaced or not, each of those transactions
            # may still be mined.
            for queued in self.executor.pending_plans():
                seq.spend(queued)
            plans: list[LiquidationPlan] = []
            # As few as the first batch of a crash: the displaced nonces are the next
            # block's, so the plans must reach the node before it is built (at 20,000
            # borrowers, a front of 50 priced in 356 ms and arrived after the block).
            for flight in front[: min(self.settings.max_plans_per_block, _FIRST_BATCH)]:
                plan = seq.next()
                if plan is None or plan.net_profit_base <= flight.net(w.gas):
                    break
                seq.commit(plan)
                plans.append(plan)
            w.mark("priced 0")
            if not plans:
                return []
            ts = await self._simulation_time(w.inp.ts, w.head, latest)
        finally:
            latest.cancel()
        sims = await self.executor.simulate(plans, ts, tag="latest")
        w.mark("simulated 0")
        got = await self.executor.preempt(sims, front, w.head, w.gas)
        w.mark("sent 0")
        w.done |= {x.plan.user for x in sims[: len(got)]}
        return got

    async def _execute(self, w: _HeadWork, room: int | None) -> list[Attempt]:
        """Up to ``max_plans_per_block`` plans, priced in sending order, in batches of
        growing size (8, 32, 128, ...), while their expected gas fits ``room`` (the
        executor's ``gas_room``; None: no limit). The plans past it are not recorded:
        the next heads plan them afresh, as the block room frees up.

        Each batch is simulated and sent before the next is priced: at a crash with
        hundreds of targets, pricing all of them first would hold back the most profitable
        ones past the next block. A batch is priced after the earlier batches' swaps (and
        simulated on a pending state that holds them), so each prediction stays exact.
        Every user is priced at most once against the head's pools, best bound first and
        only as far as the batches read (``HeadPlans``); a plan is priced again only when
        an earlier one moved its pool (``PlanSequence``). A head that recorded a batch
        stops when a newer head waits (``_HeadWork.yields``).
        """
        head = w.head
        budget = self.settings.max_plans_per_block - len(w.done)
        attempts: list[Attempt] = []
        # Our transactions still in the pool move the pools before anything sent now: at
        # a crash, the heads after the first priced against the head's pools alone and
        # most of their plans failed simulation (274 of 390 at 20,000 borrowers).
        committed: list[LiquidationPlan] = self.executor.pending_plans()
        seq: PlanSequence | None = None
        size = min(budget, _FIRST_BATCH)
        k = 0
        while size > 0:
            if w.yields():
                w.mark(_YIELDED)
                log.info("yielding to a newer head", extra={"block": head.number, "batches": k})
                break
            k += 1
            # Awaited once the batch is priced (pricing does not yield, so the request
            # leaves then): the freshest newest block for ``_simulation_time``, at one
            # round trip per batch. Read any earlier and a block mined meanwhile would
            # put the simulation before the chain's time again.
            latest = asyncio.create_task(self.indexer.latest())
            try:
                batch, seq = await self._batch(
                    w, committed, size, latest, seq, partial(_numbered, w.mark, k)
                )
            finally:
                latest.cancel()
            sims = _fitting(batch, room)
            got = await self.executor.submit(sims, head, w.gas)
            attempts += got
            w.mark(f"sent {k}")
            w.done |= {x.plan.user for x in sims}
            gone = [x.plan for x, a in zip(sims, got, strict=True) if a.outcome in _GONE]
            committed += gone
            if len(gone) != sum(x.ok for x in sims):
                seq = None  # it committed a plan that was not sent
            if len(sims) < size:
                break  # nothing left to plan, or no block room left
            size = min(budget - len(attempts), size * _BATCH_GROWTH)
            room = self.executor.gas_room(head)
            if room is not None:
                # Simulate about what still fits, not a whole batch to drop most of it.
                used = [x.gas for x in sims if x.ok]
                if sum(used) > 0:
                    size = min(size, room * len(used) // sum(used) + 1)
        return attempts

    async def _batch(
        self,
        w: _HeadWork,
        committed: Sequence[LiquidationPlan],
        limit: int,
        latest: asyncio.Task[BlockRef],
        seq: PlanSequence | None,
        mark: Callable[[str], None],
    ) -> tuple[list[Simulation], PlanSequence | None]:
        """Up to ``limit`` plans for the users not in ``w.done``, priced after ``committed``
        (sent earlier at this head), simulated in one request at ``_simulation_time``.
        ``seq``: the sequence the previous batch took its plans from, when its state is
        still ``committed`` (it goes on where it stopped).

        A plan whose simulation fails is not sent, so when it shared a pool with plans
        after it, those were priced for a pool it would have moved: they are planned and
        simulated again without it (at most ``_ROUNDS`` times), which keeps each sent
        plan's prediction exact to the wei. Returns the simulations, and the sequence
        when every plan it committed passed (None: the next batch starts afresh).
        """
        refused: list[Simulation] = []
        ok: list[Simulation] = []
        failed: list[Simulation] = []
        ts: int | None = None
        head = w.head
        for round_ in range(_ROUNDS):
            if seq is None or round_ > 0:
                skip = w.done | {r.plan.user for r in refused}
                # The head's plans, stale once ``committed`` moves their pools: only the
                # ones that reach the front are priced again.
                seq = PlanSequence(
                    self.strategy, w.inp, plans=(p for p in w.priced if p.user not in skip)
                )
                for plan in committed:
                    seq.commit(plan)
            plans = seq.take(limit - len(refused))
            mark("priced")
            if ts is None:
                ts = await self._simulation_time(w.inp.ts, head, latest)
            late = self._late_head == head.number
            sims = await self.executor.simulate(plans, None if late else ts)
            if not late and any(x.reason == _UNDERFLOW for x in sims):
                # The pending block our earlier transactions run in is already later than
                # ``ts``: anvil stamps it with the wall clock, which a miner lagging on
                # loaded cores leaves behind (512 plans refused at 20,000 borrowers).
                # Again at the node's own next-block time, which follows that state.
                self._late_head = head.number
                sims = await self.executor.simulate(plans)
            mark("simulated")
            failed = [x for x in sims if not x.ok]
            ok = [x for x in sims if x.ok]
            refused += failed
            moved = {leg_pool(leg) for x in failed for leg in x.plan.swaps}
            if not moved or round_ == _ROUNDS - 1:
                break
            if not any(leg_pool(leg) in moved for x in ok for leg in x.plan.swaps):
                break
        return refused + ok, None if failed else seq

    async def planning_input(
        self,
        head: BlockRef,
        scan: Scan,
        targets: Sequence[str],
        gas: GasContext,
        quotes: asyncio.Future[_Quotes] | None = None,
    ) -> Any:
        """What the strategy sees for ``targets`` at ``head``: plans are priced for the
        next block (``head.timestamp + block_time_s``), pools, inventory and gas as of
        ``head`` (``quotes``: the pools and inventory already asked for at ``head``)."""
        s = self.settings
        if await self.pairs.include(self.adapter.assets(), head.number) or quotes is None:
            if quotes is not None:
                give_up(quotes)  # read before the new pairs were found
            quotes = self._quotes(head)
        pairs, held = await quotes
        terms = PlanTerms(
            ts=head.timestamp + s.block_time_s,
            gas_price_wei=gas.base_fee_wei + s.priority_fee_wei,
            native_price_base=gas.native_price_base,
            min_profit_base=s.min_profit_base,
            inventory=held,
            inventory_use="off" if self.inventory is None else self.inventory.use,
        )
        return self.adapter.planning_input(scan, targets, pairs, terms)

    async def profitable_left(self, head: BlockRef) -> int:
        """How many positions the strategy would still liquidate profitably at ``head``
        (busy or not): zero once a crash has been fully worked off."""
        scan = await self.adapter.scan(head, set())
        if not scan.liquidatable:
            return 0
        gas = GasContext(head.base_fee, scan.native_price_base)
        inp = await self.planning_input(head, scan, sorted(scan.liquidatable), gas)
        return len(self.strategy.plan(inp))

    async def run(
        self,
        heads: LatestHeads,
        stop: asyncio.Event,
        on_report: Callable[[HeadReport], None] | None = None,
    ) -> None:
        """Handle heads until ``stop`` is set (SIGINT/SIGTERM) or a fatal error.

        ``max_consecutive_failures`` failed heads in a row raise ``BotHalted``: something is
        persistently wrong (the node, the config), and a supervisor restarting the process
        with an alert beats a bot that silently does nothing.
        """
        streak = 0
        while not stop.is_set():
            next_head = asyncio.ensure_future(heads.next())
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({next_head, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if next_head not in done:
                next_head.cancel()
                break
            stopping.cancel()
            head = next_head.result()
            try:
                report = await self.handle(head, heads.waiting)
            except FatalError:
                raise
            except Exception as e:
                # A timeout, a lying or rate-limiting RPC, a reorg deeper than the tip: the
                # next head retries from the indexer's checkpoint, so nothing is lost.
                self.failures += 1
                streak += 1
                log.exception("block failed", extra={"block": head.number, "err": repr(e)})
                report = HeadReport(head, 0, 0, (), (), 0.0, error=repr(e))
                if streak >= self.settings.max_consecutive_failures:
                    if on_report is not None:
                        on_report(report)
                    raise BotHalted(
                        f"{streak} heads in a row failed (last: block {head.number}, {e!r}); "
                        "check the node and the configuration, then restart"
                    ) from e
            else:
                self.handled += 1
                streak = 0
            if on_report is not None:
                on_report(report)


def _fitting(sims: Sequence[Simulation], room: int | None) -> list[Simulation]:
    """``sims`` (in sending order, as simulated) up to the first passing one that no
    longer fits ``room`` (None: no limit), as a block builder admits them (``admitted``).
    A failed one takes no room: it is recorded, never sent."""
    if room is None:
        return list(sims)
    return list(sims[: admitted([(x.gas_limit, x.gas) if x.ok else (0, 0) for x in sims], room)])


def _numbered(mark: Callable[[str], None], k: int, step: str) -> None:
    mark(f"{step} {k}")
