"""Optimistic mode: make each borrower liquidatable on a fork in turn, liquidate it, revert.

Runs on the RPC it is given, which must be an anvil chain (a devnet or a fork: it uses
``evm_snapshot`` / ``evm_revert``, impersonation and the devnet's settable price feeds).
Everything it does is reverted: the liquidator it deploys, every price it sets, every
liquidation it sends.

For each borrower (the riskiest first), from a snapshot:

* the liquidation block's timestamp ``ts`` is fixed in advance (a minute past the chain's
  clock), so the evaluator sees exactly the state the liquidation will see;
* the shocked price: the largest oracle price of the borrower's largest collateral at
  which its health factor at ``ts`` is below 1, found by integer bisection with the exact
  evaluator (the kernel), over the market read once at the start (setting a price and
  swapping on Uniswap do not touch Aave's reserves);
* the price is posted on the feed with ``Scenario.set_price`` (pools arbitraged to it);
* the production strategy plans against the pools as they then are, priced for ``ts``;
  the production executor simulates the plan, and the same calldata is sent by the
  liquidator's owner, mined at ``ts``; the receipt gives the gas used and the profit the
  contract paid; ``getUserAccountData`` after it the health factor after;
* the snapshot is reverted. Any failure becomes the row's ``error``; the loop goes on.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO

from bot.abi import load_abi
from bot.adapters.aave_v3.health import atoken_balance
from bot.adapters.aave_v3.kernel import PackedBook
from bot.adapters.aave_v3.reader import MarketState
from bot.adapters.aave_v3.state import UserPosition
from bot.api import BlockRef
from bot.config import Settings
from bot.devnet.anvil_rpc import AnvilRpc, Tx
from bot.devnet.deploy import deploy_liquidator
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.execution.executor import Executor, ExecutorSettings, _realized_profit
from bot.ledger import Ledger
from bot.research.fork import OWNER_ETH, research_owner
from bot.research.planner import Planner
from bot.rpc import JsonRpcClient, to_int
from bot.wiring import open_index

log = logging.getLogger(__name__)

WAD = 10**18
INDEX_FILE = "index.db"
CSV_FILE = "optimistic.csv"
# The liquidation block is mined this long after the chain's clock at the snapshot:
# setting a price takes a few blocks, each at least a second later.
LEAD_S = 60
_POOL = load_abi("Pool")


@dataclass(frozen=True, slots=True)
class OptimisticRecord:
    """One borrower made liquidatable and liquidated. Exact integers: prices in oracle
    units, health factors WAD, profit in debt-asset units."""

    user: str
    collateral_asset: str = ""
    price: int = 0  # the collateral's oracle price before the shock
    shocked_price: int = 0  # the largest price at which HF < 1
    health_factor_before: int = 0  # exact, at the shocked price, at the liquidation's time
    health_factor_one_up: int = 0  # exact, at the shocked price + 1 (>= 1 unless unshocked)
    health_factor_after: int = 0  # getUserAccountData after the liquidation
    debt_asset: str = ""
    predicted_profit: int = 0  # the plan's
    simulated_profit: int = 0  # the executor's simulation
    realized_profit: int = 0  # the Liquidated event of the mined transaction
    gas_used: int = 0
    tx: str = ""
    status: str = "error"  # ok, no-plan, simulation-reverted, not-liquidatable, error
    error: str = ""


COLUMNS = [f.name for f in fields(OptimisticRecord)]


def with_price(market: MarketState, asset: str, price: int) -> MarketState:
    reserves = {
        rid: replace(r, price=price) if r.asset.lower() == asset.lower() else r
        for rid, r in market.reserves.items()
    }
    return replace(market, reserves=reserves)


def largest_collateral(position: UserPosition, market: MarketState, ts: int) -> str | None:
    """The asset of the position's largest collateral by base value (None: no collateral)."""
    best: tuple[int, str] | None = None
    for rid, u in position.reserves.items():
        r = market.reserves.get(rid)
        if r is None or not u.collateral_enabled or r.config.liquidation_threshold == 0:
            continue
        value = atoken_balance(u, r, ts) * r.price // 10**r.config.decimals
        if value > 0 and (best is None or value > best[0]):
            best = (value, r.asset)
    return None if best is None else best[1]


def liquidation_price(
    user: str, position: UserPosition, market: MarketState, asset: str, ts: int
) -> tuple[int, int, int] | None:
    """(price, HF, HF one unit up): the largest oracle price of ``asset`` at which ``user``'s
    exact health factor at ``ts`` is below 1; None when no positive price gets it there."""
    book = PackedBook({user: position})

    def hf(price: int) -> int:
        return book.evaluate(with_price(market, asset, price), ts).health_factor(0)

    hi = market.by_asset(asset).price
    if (h := hf(hi)) < WAD:
        return hi, h, hf(hi + 1)  # liquidatable already
    lo = 1
    if hf(lo) >= WAD:
        return None
    while hi - lo > 1:  # invariant: hf(lo) < 1 <= hf(hi)
        mid = (lo + hi) // 2
        if hf(mid) < WAD:
            lo = mid
        else:
            hi = mid
    return lo, hf(lo), hf(hi)


def borrowers(
    positions: dict[str, UserPosition], market: MarketState, ts: int, limit: int | None
) -> list[str]:
    """Users with debt, lowest health factor first (ties by address)."""
    batch = PackedBook(positions).evaluate(market, ts)
    rows = [
        (batch.health_factor(i), u)
        for i, u in enumerate(batch.users)
        if batch.account(i).total_debt_base > 0
    ]
    users = [u for _, u in sorted(rows)]
    return users if limit is None else users[:limit]


class _Run:
    def __init__(
        self,
        rpc: JsonRpcClient,
        manifest: Manifest,
        planner: Planner,
        market: MarketState,
        executor: Executor,
        owner: str,
    ) -> None:
        self.rpc = rpc
        self.chain = AnvilRpc(rpc)
        self.scenario = Scenario(rpc, manifest)
        self.symbols = {r.address.lower(): r.symbol for r in manifest.reserves}
        self.planner = planner
        self.market = market
        self.executor = executor
        self.owner = owner

    async def account(self, user: str, position: UserPosition) -> OptimisticRecord:
        rec = OptimisticRecord(user)
        snap = await self.chain.snapshot()
        try:
            rec = await self._liquidate(rec, position)
        except Exception as e:  # one row per account, whatever happens
            log.info("optimistic: %s failed", user, exc_info=True)
            rec = replace(rec, status="error", error=f"{type(e).__name__}: {e}")
        finally:
            await self.chain.revert(snap)
        return rec

    async def _liquidate(self, rec: OptimisticRecord, position: UserPosition) -> OptimisticRecord:
        await self.chain.mine(1)  # the chain's clock now (consumes any pending timestamp)
        ts = await self.chain.timestamp() + LEAD_S
        asset = largest_collateral(position, self.market, ts)
        if asset is None:
            return replace(rec, status="not-liquidatable", error="no collateral")
        rec = replace(rec, collateral_asset=asset, price=self.market.by_asset(asset).price)
        found = liquidation_price(rec.user, position, self.market, asset, ts)
        if found is None:
            return replace(
                rec,
                status="not-liquidatable",
                error="HF >= 1 at any price of its largest collateral",
            )
        price, hf_before, hf_up = found
        rec = replace(
            rec, shocked_price=price, health_factor_before=hf_before, health_factor_one_up=hf_up
        )
        await self.scenario.set_price(self.symbols[asset.lower()], price)
        latest = BlockRef.from_json(await self.chain.block("latest"))
        if latest.timestamp >= ts:
            return replace(rec, error=f"setting the price took past the timestamp {ts}")
        market = with_price(self.market, asset, price)
        head = replace(latest, timestamp=ts - self.planner.block_time_s)
        pairs = await self.planner.pairs.quotes("latest")
        inp = await self.planner.input(head, market, {rec.user: position}, pairs=pairs)
        plans = self.planner.strategy.plan(inp)
        if not plans:
            return replace(rec, status="no-plan")
        plan = plans[0]
        rec = replace(rec, debt_asset=plan.debt_asset, predicted_profit=plan.profit)
        (sim,) = await self.executor.simulate([plan], ts)
        if sim.profit is None:
            return replace(rec, status="simulation-reverted", error=sim.reason or "reverted")
        rec = replace(rec, simulated_profit=sim.profit)
        liquidator = self.executor.settings.liquidator
        await self.chain.set_next_timestamp(ts)
        receipt = await self.chain.send(
            Tx(self.owner, liquidator, sim.data, gas=sim.gas_limit, label="liquidate")
        )
        account = await self.chain.call(
            self.scenario.manifest.aave.pool, _POOL.fn("getUserAccountData"), rec.user
        )
        return replace(
            rec,
            status="ok",
            tx=receipt["transactionHash"],
            gas_used=to_int(receipt["gasUsed"]),
            realized_profit=_realized_profit(receipt, liquidator),
            health_factor_after=int(account[5]),
        )


def _fresh_index(out: Path) -> None:
    """The chain is a fork that may differ from the last run's: index it from scratch."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(out / INDEX_FILE) + suffix).unlink(missing_ok=True)


async def run_optimistic(
    settings: Settings, manifest: Manifest, out: Path, limit: int | None = None
) -> list[OptimisticRecord]:
    """One record per borrower of the anvil chain at ``settings.chain.rpc_url``; the chain
    is left as it was. The index is rebuilt in ``out``."""
    await asyncio.to_thread(_fresh_index, out)
    ix = settings.indexer.model_copy(update={"database": str(out / INDEX_FILE), "confirmations": 0})
    manifest = manifest.with_rpc_url(settings.chain.rpc_url)
    async with open_index(settings.model_copy(update={"indexer": ix})) as svc:
        head = await svc.indexer.latest()
        await svc.indexer.sync(head.number)
        planner = await Planner.connect(svc.aave, settings)
        market = await svc.adapter.market(head.number)
        positions = dict(svc.adapter.indexing.book.users)
        users = borrowers(positions, market, head.timestamp, limit)
        chain = AnvilRpc(svc.rpc)
        outer = await chain.snapshot()
        try:
            owner = research_owner()
            await chain.set_balance(owner, OWNER_ETH)
            factory = settings.swap.uniswap_v2_factory or ""
            liquidator = await deploy_liquidator(chain, owner, svc.adapter.reader.pool, factory)
            with Ledger(":memory:") as ledger:
                executor = Executor(
                    svc.rpc,
                    ledger,
                    ExecutorSettings(
                        liquidator=liquidator,
                        owner=owner,
                        priority_fee_wei=planner.priority_fee_wei,
                        min_profit_base=planner.min_profit_base,
                        cooldown_blocks=0,
                    ),
                    None,
                    await chain.chain_id(),
                )
                run = _Run(svc.rpc, manifest, planner, market, executor, owner)
                return [await run.account(u, positions[u]) for u in users]
        finally:
            await chain.revert(outer)


def write_csv(records: Sequence[OptimisticRecord], out: IO[str]) -> None:
    w = csv.writer(out)
    w.writerow(COLUMNS)
    for r in records:
        w.writerow([getattr(r, c) for c in COLUMNS])
