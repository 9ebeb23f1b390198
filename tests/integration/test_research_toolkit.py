"""The research toolkit on a generated history: backtest, resume, price shocks.

One origin devnet per module, with a ~2,000-block history (borrowers arriving and
leaving, a random walk with a crash, a competitor liquidating directly on the pool).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.abi import load_abi
from bot.adapters.aave_v3.kernel import PackedBook
from bot.config import Settings, manifest_settings
from bot.devnet.devnet import Devnet, DevnetSpec, start_devnet, start_fork
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.research.backtest import BacktestResult, BacktestSpec, run_backtest
from bot.research.history import History, HistorySpec, generate_history
from bot.research.planner import Planner
from bot.research.shock import resolve_asset, shock
from bot.rpc import JsonRpcClient, to_int
from bot.wiring import open_index

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow]
WAD = 10**18
POOL = load_abi("Pool")
LIQUIDATION_TOPIC = POOL.event("LiquidationCall").topic0_hex


@pytest_asyncio.fixture(scope="module")
async def generated() -> AsyncIterator[tuple[Devnet, History, Manifest]]:
    net = await start_devnet(DevnetSpec(borrowers=40))
    try:
        history, manifest = await generate_history(
            net.url, net.manifest, HistorySpec(blocks=2_000, seed=7), devnet_seed=1
        )
        yield net, history, manifest
    finally:
        net.stop()


def settings_for(manifest: Manifest, db: Path | None = None) -> Settings:
    data = manifest_settings(manifest)
    if db is not None:
        data["indexer"] = {"database": str(db)}
    return Settings.model_validate(data)


@pytest_asyncio.fixture(scope="module")
async def resumed(
    generated: tuple[Devnet, History, Manifest], tmp_path_factory: pytest.TempPathFactory
) -> tuple[BacktestResult, BacktestResult]:
    """The backtest interrupted after 700 blocks and resumed, and one run straight through."""
    _, h, m = generated
    settings = settings_for(m)
    out = tmp_path_factory.mktemp("resumed")
    first = await run_backtest(
        settings, BacktestSpec(h.from_block, h.to_block, max_blocks=700), out
    )
    assert not first.complete and first.last_block == h.from_block + 699
    again = await run_backtest(settings, BacktestSpec(h.from_block, h.to_block), out)
    straight = await run_backtest(
        settings, BacktestSpec(h.from_block, h.to_block), tmp_path_factory.mktemp("straight")
    )
    return again, straight


async def test_every_liquidation_call_is_taken_by_other(
    generated: tuple[Devnet, History, Manifest], resumed: tuple[BacktestResult, BacktestResult]
) -> None:
    net, h, m = generated
    result, _ = resumed
    assert result.complete
    async with JsonRpcClient(net.url) as rpc:
        logs = await rpc.call(
            "eth_getLogs",
            [
                {
                    "address": m.aave.pool,
                    "topics": [LIQUIDATION_TOPIC],
                    "fromBlock": hex(h.from_block),
                    "toBlock": hex(h.to_block),
                }
            ],
        )
    assert len(logs) == len(h.liquidations) >= 10
    taken = {(r.user, r.end_block): r for r in result.rows if r.status == "taken"}
    assert len(taken) == len(logs)
    for lg in logs:
        user = "0x" + lg["topics"][3][26:]
        block = to_int(lg["blockNumber"])
        row = taken[(user, block)]
        data = lg["data"][2:]
        assert row.liquidator.lower() == h.competitor.lower()
        assert row.liquidation_tx == lg["transactionHash"]
        assert row.liquidated_debt == int(data[0:64], 16)
        assert row.liquidated_collateral == int(data[64:128], 16)
        assert row.delay_blocks == block - row.block > 0
        assert 0 < row.health_factor_at_liquidation < WAD
        # The profit liqbot would have made there is reported (simulated on a fork).
        if row.plan == "planned":
            assert row.simulated == "ok" and row.simulated_net_base > 0


async def test_simulated_profit_is_the_prediction_to_the_wei(
    resumed: tuple[BacktestResult, BacktestResult],
) -> None:
    result, _ = resumed
    planned = [r for r in result.rows if r.plan == "planned"]
    assert len(planned) >= 10
    for r in planned:
        assert r.simulated == "ok", r
        assert r.simulated_profit == r.predicted_profit > 0, r
        assert r.health_factor < WAD
    # Episodes nobody closed are reported as missed, not dropped.
    assert {r.status for r in result.rows} <= {"taken", "recovered", "unresolved"}


async def test_resume_gives_the_uninterrupted_result(
    resumed: tuple[BacktestResult, BacktestResult],
) -> None:
    again, straight = resumed
    keys = [(r.user, r.block) for r in again.rows]
    assert len(keys) == len(set(keys))
    assert again.rows == straight.rows


@pytest.mark.parametrize("change_bps", [-1_000, -3_000])
async def test_shock_counts_match_get_user_account_data(
    generated: tuple[Devnet, History, Manifest], tmp_path: Path, change_bps: int
) -> None:
    net, h, m = generated
    fork = await start_fork(net.url, h.to_block)
    try:
        fm = m.with_rpc_url(fork.url)
        async with open_index(settings_for(fm, tmp_path / "ix.db")) as svc:
            head = await svc.indexer.block(h.to_block)
            await svc.indexer.sync(head.number)
            planner = await Planner.connect(svc.aave, settings_for(fm))
            asset = await resolve_asset(planner, "WETH")
            market = await svc.adapter.market(head.number)
            users = sorted(svc.adapter.indexing.book.users)
            (level,) = await shock(
                planner,
                PackedBook(svc.adapter.indexing.book.users),
                head,
                market,
                asset,
                [change_bps],
            )
        async with JsonRpcClient(fork.url) as rpc:
            sc = Scenario(rpc, fm)
            await sc.set_price("WETH", level.price, align_pools=False)
            fn = POOL.fn("getUserAccountData")
            out = await rpc.batch_strict(
                [
                    ("eth_call", [{"to": m.aave.pool, "data": fn.encode_hex(u)}, "latest"])
                    for u in users
                ]
            )
        below = sorted(u for u, raw in zip(users, out, strict=True) if fn.decode(raw)[5] < WAD)
        assert level.liquidatable == len(below) > 0
        assert list(level.users) == below
        assert level.debt_base > 0
    finally:
        fork.stop()
