"""Replay a block range: every liquidation opportunity, what we would have earned, and what
actually happened on chain.

The walk, block by block over ``[from_block, to_block]``:

* the production indexer follows the range on the archive RPC (confirmation depth 0:
  history does not reorganise) -- but only at blocks with transactions, since an empty
  block changes no state;
* the market (reserves and prices) is read at each block with transactions, and reused
  for empty blocks, where only the timestamp moves;
* every position is evaluated exactly at every block with the compiled kernel
  (``PackedBook``), at that block's timestamp, so interest accrual alone making a
  position liquidatable is caught at the block it happens;
* a position entering the liquidatable set opens an *opportunity*: the fork is reset to
  that block, the production strategy plans (priced for the next block, pools as of this
  one) and the dry-run executor simulates the plans on the fork, in sending order;
* a ``LiquidationCall`` closes the user's open opportunity (liquidator, block delay, debt
  repaid, collateral seized); a position back above 1 without one is ``recovered``.

Progress (the last block walked) and rows are committed together per block: rerun the
same command to continue an interrupted backtest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bot.adapters.aave_v3.kernel import HealthBatch, PackedBook
from bot.adapters.aave_v3.reader import MarketState
from bot.api import BlockRef, EventRecord
from bot.config import Settings
from bot.errors import ConfigError
from bot.execution.sequencing import PlanSequence
from bot.indexer.store import Store
from bot.plugins import load_adapter
from bot.research.fork import ResearchFork
from bot.research.ledger import Opportunity, ResearchLedger
from bot.research.planner import Planner
from bot.wiring import IndexService, open_index

log = logging.getLogger(__name__)

LIQUIDATION = "aave.liquidation"
LEDGER_FILE = "backtest.db"
INDEX_FILE = "index.db"
WEI = 10**18


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    from_block: int
    to_block: int
    ours: frozenset[str] = frozenset()  # lower-case addresses whose liquidations are ours
    max_blocks: int | None = None  # walk at most this many blocks in this run
    header_batch: int = 200

    def __post_init__(self) -> None:
        if not 1 < self.from_block <= self.to_block:
            raise ConfigError(
                "--from-block", f"range {self.from_block}..{self.to_block} is empty or invalid"
            )


@dataclass(frozen=True, slots=True)
class BacktestResult:
    rows: list[Opportunity]
    last_block: int
    complete: bool
    walked: int  # blocks walked in this run


def backtest_settings(settings: Settings, out: Path) -> Settings:
    """The bot's settings with the index in ``out`` and no confirmation depth."""
    ix = settings.indexer.model_copy(update={"database": str(out / INDEX_FILE), "confirmations": 0})
    return settings.model_copy(update={"indexer": ix})


def _drop_stale_index(out: Path, walked_to: int) -> None:
    """An index past the walk (a crash between the two commits) is rebuilt from scratch:
    the walk needs every block's changes."""
    path = out / INDEX_FILE
    if not path.exists():
        return
    store = Store(path)
    try:
        cp = store.checkpoint()
    finally:
        store.close()
    if cp is not None and cp.number > walked_to:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


async def run_backtest(
    settings: Settings,
    spec: BacktestSpec,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    with ResearchLedger(out / LEDGER_FILE) as ledger:
        ledger.bind(
            {
                "rpc": settings.chain.rpc_url,
                "market": load_adapter(settings.market.protocol).identity(settings.market),
                "from_block": str(spec.from_block),
                "to_block": str(spec.to_block),
            },
            str(out),
        )
        start = ledger.last_block or spec.from_block - 1
        _drop_stale_index(out, start)
        async with open_index(backtest_settings(settings, out)) as svc:
            walk = _Walk(svc, ledger, spec, await Planner.connect(svc.aave, settings))
            head = to_block = spec.to_block
            if (latest := (await svc.indexer.latest()).number) < to_block:
                raise ConfigError("--to-block", f"{to_block} is past the RPC's head {latest}")
            if spec.max_blocks is not None:
                head = min(to_block, start + spec.max_blocks)
            pool = svc.adapter.reader.pool
            factory = settings.swap.uniswap_v2_factory or ""
            async with ResearchFork(
                settings.chain.rpc_url,
                max(start, spec.from_block),
                pool,
                factory,
                min_profit_base=walk.planner.min_profit_base,
                priority_fee_wei=walk.planner.priority_fee_wei,
            ) as fork:
                walked = await walk.run(start, head, fork, progress)
        return BacktestResult(ledger.rows(), head, head == to_block, walked)


class _Walk:
    def __init__(
        self, svc: IndexService, ledger: ResearchLedger, spec: BacktestSpec, planner: Planner
    ) -> None:
        self.svc = svc
        self.ledger = ledger
        self.spec = spec
        self.planner = planner
        self.open: dict[str, Opportunity] = {r.user: r for r in ledger.rows("open")}
        self.last_hf: dict[str, int] = {r.user: r.health_factor for r in self.open.values()}

    async def run(
        self, start: int, head: int, fork: ResearchFork, progress: Callable[[int, int], None] | None
    ) -> int:
        ix, adapter = self.svc.indexer, self.svc.adapter
        await ix.sync(start)
        book = adapter.indexing.book
        packed = PackedBook(book.users)
        market = await adapter.market(start)
        total = self.spec.to_block - self.spec.from_block + 1
        walked = 0
        for first in range(start + 1, head + 1, self.spec.header_batch):
            last = min(head, first + self.spec.header_batch - 1)
            headers = await self.svc.rpc.batch_strict(
                [("eth_getBlockByNumber", [hex(n), False]) for n in range(first, last + 1)]
            )
            for raw in headers:
                ref = BlockRef.from_json(raw)
                events: list[EventRecord] = []
                if raw["transactions"]:
                    report = await ix.sync(ref.number)
                    for u in adapter.indexing.users_of(report.dirty):
                        pos = book.get(u)
                        if pos is None:
                            if u in packed:
                                packed.remove(u)
                        else:
                            packed.update(u, pos)
                    market = await adapter.market(ref.number)
                    events = [
                        e
                        for e in self.svc.store.events(LIQUIDATION, ref.number)
                        if e.block == ref.number
                    ]
                batch = packed.evaluate(market, ref.timestamp)
                rows = await self._block(ref, market, batch, events, fork)
                if ref.number == self.spec.to_block:
                    rows += self._finish(ref.number)
                self.ledger.commit_block(ref.number, rows)
                walked += 1
                if progress is not None:
                    progress(ref.number - self.spec.from_block + 1, total)
        return walked

    async def _block(
        self,
        ref: BlockRef,
        market: MarketState,
        batch: HealthBatch,
        events: Sequence[EventRecord],
        fork: ResearchFork,
    ) -> list[Opportunity]:
        changed: list[Opportunity] = []
        for e in events:
            changed.append(self._liquidated(e, ref))
        below = set(batch.liquidatable())
        for user in sorted(set(self.open) - below):
            opp = self.open.pop(user)
            changed.append(replace(opp, status="recovered", end_block=ref.number))
        index = {u: i for i, u in enumerate(batch.users) if u in below}
        for user in below & set(self.open):
            self.last_hf[user] = batch.health_factor(index[user])
        new = sorted(below - set(self.open))
        if new:
            for opp in await self._opportunities(ref, market, batch, index, new, fork):
                self.open[opp.user] = opp
                self.last_hf[opp.user] = opp.health_factor
                changed.append(opp)
        return changed

    def _liquidated(self, e: EventRecord, ref: BlockRef) -> Opportunity:
        p = json.loads(e.payload)
        user = p["user"].lower()
        opp = self.open.pop(user, None)
        if opp is None:  # liquidated in the very block it became liquidatable
            opp = Opportunity(user, ref.number, ref.timestamp, 0, 0, 0, plan="not-simulated")
        ours = p["liquidator"].lower() in self.spec.ours
        return replace(
            opp,
            status="ours" if ours else "taken",
            end_block=e.block,
            delay_blocks=e.block - opp.block,
            liquidator=p["liquidator"],
            liquidation_tx=e.tx,
            liquidated_debt_asset=p["debt"],
            liquidated_debt=int(p["debt_to_cover"]),
            liquidated_collateral_asset=p["collateral"],
            liquidated_collateral=int(p["collateral_amount"]),
            health_factor_at_liquidation=self.last_hf.pop(user, opp.health_factor),
        )

    def _finish(self, block: int) -> list[Opportunity]:
        done = [replace(o, status="unresolved", end_block=block) for o in self.open.values()]
        self.open.clear()
        return done

    async def _opportunities(
        self,
        ref: BlockRef,
        market: MarketState,
        batch: HealthBatch,
        index: dict[str, int],
        users: list[str],
        fork: ResearchFork,
    ) -> list[Opportunity]:
        book = self.svc.adapter.indexing.book
        base = {}
        for u in users:
            a = batch.account(index[u])
            base[u] = Opportunity(
                u,
                ref.number,
                ref.timestamp,
                a.health_factor,
                a.total_collateral_base,
                a.total_debt_base,
                plan="no-plan",
            )
        inp = await self.planner.input(ref, market, {u: book.users[u] for u in users})
        plans = PlanSequence(self.planner.strategy, inp).take(len(users))
        if not plans:
            return list(base.values())
        await fork.reset(ref.number)
        sims = await fork.executor.simulate(plans, inp.ts)
        native = inp.native_price_base
        for sim in sims:
            plan = sim.plan
            opp = replace(
                base[plan.user],
                plan="planned",
                debt_asset=plan.debt_asset,
                collateral_assets=",".join(s.collateral_asset for s in plan.steps),
                steps=len(plan.steps),
                debt_repaid=plan.flash_amount,
                collateral_seized=sum(s.collateral_seized for s in plan.steps),
                bonus_base=plan.bonus_base,
                swap_cost_base=plan.swap_cost_base,
                predicted_profit=plan.profit,
                predicted_profit_base=plan.profit_base,
                predicted_gas_cost_base=plan.gas_cost_base,
                predicted_net_base=plan.net_profit_base,
            )
            if sim.profit is None:
                opp = replace(opp, simulated=sim.reason or "reverted")
            else:
                value = sim.profit * plan.profit_base // plan.profit if plan.profit else 0
                gas_base = sim.gas * inp.gas_price_wei * native // WEI
                opp = replace(
                    opp,
                    simulated="ok",
                    simulated_profit=sim.profit,
                    simulated_profit_base=value,
                    simulated_gas=sim.gas,
                    simulated_gas_cost_base=gas_base,
                    simulated_net_base=value - gas_base,
                )
            base[plan.user] = opp
        return list(base.values())
