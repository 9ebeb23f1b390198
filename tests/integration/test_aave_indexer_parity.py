"""Parity with the chain, to the wei, on the 2,000-borrower devnet (run on a fork of it).

After backfill, after time passes (interest), after price moves, and after live activity
of every kind, the indexer's scaled balances equal ``scaledBalanceOf`` and our exact
total collateral, total debt and health factor equal ``getUserAccountData``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aave_parity import assert_parity, make_indexer

from bot.abi import load_abi
from bot.chain.anvil import AnvilProcess
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.devnet import Devnet, DevnetSpec, start_devnet, start_fork
from bot.devnet.scenario import Scenario
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]
WAD = 10**18
MAX = 2**256 - 1
POOL = load_abi("Pool")
ERC20 = load_abi("ERC20")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def devnet2k() -> AsyncIterator[Devnet]:
    net = await start_devnet(DevnetSpec(borrowers=2000))
    try:
        yield net
    finally:
        net.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fork2k(devnet2k: Devnet) -> AsyncIterator[AnvilProcess]:
    proc = await start_fork(devnet2k.url)
    try:
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture
async def rpc2k(fork2k: AnvilProcess) -> AsyncIterator[JsonRpcClient]:
    async with JsonRpcClient(fork2k.url) as rpc, AnvilRpc(rpc).isolated():
        yield rpc


async def test_parity_after_backfill(rpc2k: JsonRpcClient, devnet2k: Devnet) -> None:
    m = devnet2k.manifest
    indexer, adapter = await make_indexer(rpc2k, m)
    report = await indexer.sync()
    assert report.head.number == await AnvilRpc(rpc2k).block_number()
    hfs = await assert_parity(rpc2k, m, adapter, report.head.number)
    assert sum(1 for b in m.borrowers if b.address.lower() in hfs) == 2000
    kinds = {b.kind for b in m.borrowers}
    assert {"multi", "multi3", "emode-usdc-dai", "emode-dai-usdc"} <= kinds


async def test_parity_after_time_and_price_moves(rpc2k: JsonRpcClient, devnet2k: Devnet) -> None:
    m = devnet2k.manifest
    sc = Scenario(rpc2k, m)
    indexer, adapter = await make_indexer(rpc2k, m)
    await indexer.sync()

    await sc.advance_time(30 * 86_400)  # a month of interest, no events for most users
    report = await indexer.sync()
    await assert_parity(rpc2k, m, adapter, report.head.number)

    await sc.scale_price("WETH", 7_500)
    await sc.scale_price("WBTC", 9_000)
    await sc.set_price("USDC", 101_000_000)  # moves e-mode users too
    await sc.set_price("DAI", 99_000_000)
    await sc.advance_time(3_600)
    report = await indexer.sync()
    hfs = await assert_parity(rpc2k, m, adapter, report.head.number)
    assert sum(1 for h in hfs.values() if h < WAD) >= 50, "the crash should put many below 1"


async def test_parity_after_live_activity_of_every_kind(
    rpc2k: JsonRpcClient, devnet2k: Devnet
) -> None:
    m = devnet2k.manifest
    sc = Scenario(rpc2k, m)
    pool = m.aave.pool
    indexer, adapter = await make_indexer(rpc2k, m, confirmations=2)
    await indexer.sync()
    rows = {b.address: b for b in m.borrowers}
    weth, usdc, dai = (m.reserve(s) for s in ("WETH", "USDC", "DAI"))

    async def act(who: str, token: str, fn: str, *args: object) -> None:
        await sc.send(who, token, POOL.fn(fn) if token == pool else ERC20.fn(fn), *args)

    async def prepare(who: str, sym: str, amount: int) -> None:
        await sc.fund_eth(who, 10**19)
        await sc.fund(who, sym, amount)
        await act(who, m.reserve(sym).address, "approve", pool, MAX)

    # supply + borrow by a newcomer
    newcomer = "0x00000000000000000000000000000000000a0001"
    await prepare(newcomer, "WETH", 10 * 10**18)
    await act(newcomer, pool, "supply", weth.address, 10 * 10**18, newcomer, 0)
    await act(newcomer, pool, "borrow", usdc.address, 5_000 * 10**6, 2, 0, newcomer)
    # partial and full repay by existing borrowers
    eth_usdc = [a for a, b in rows.items() if b.kind == "eth-usdc"]
    await prepare(eth_usdc[0], "USDC", 10**12)
    await act(eth_usdc[0], pool, "repay", usdc.address, 100 * 10**6, 2, eth_usdc[0])
    await prepare(eth_usdc[1], "USDC", 10**13)
    await act(eth_usdc[1], pool, "repay", usdc.address, MAX, 2, eth_usdc[1])
    # partial withdraw, then a full withdraw that clears the collateral bit
    healthy = sorted(rows.values(), key=lambda b: -b.target_health_factor_wad)
    saver = "0x00000000000000000000000000000000000a0002"
    await prepare(saver, "DAI", 1_000 * 10**18)
    await act(saver, pool, "supply", dai.address, 1_000 * 10**18, saver, 0)
    await act(saver, pool, "withdraw", dai.address, 400 * 10**18, saver)
    await act(saver, pool, "withdraw", dai.address, MAX, saver)
    # aToken transfers: to a fresh address and to an existing borrower
    eth_holders = [b for b in healthy if b.kind in ("eth-usdc", "eth-dai", "eth-btc")]
    giver = eth_holders[0].address
    await sc.fund_eth(giver, 10**19)
    await act(giver, weth.a_token, "transfer", "0x00000000000000000000000000000000000a0003", 10**16)
    await act(giver, weth.a_token, "transfer", eth_holders[1].address, 10**16)
    # e-mode switch in and out, and a collateral toggle
    looper = "0x00000000000000000000000000000000000a0004"
    await prepare(looper, "USDC", 10_000 * 10**6)
    await act(looper, pool, "supply", usdc.address, 10_000 * 10**6, looper, 0)
    await act(looper, pool, "setUserEMode", 1)
    await act(looper, pool, "borrow", dai.address, 1_000 * 10**18, 2, 0, looper)
    await act(looper, pool, "setUserEMode", 0)
    await prepare(newcomer, "DAI", 500 * 10**18)
    await act(newcomer, pool, "supply", dai.address, 500 * 10**18, newcomer, 0)
    await act(newcomer, pool, "setUserUseReserveAsCollateral", dai.address, False)
    report = await indexer.sync()
    await assert_parity(rpc2k, m, adapter, report.head.number)
    await act(newcomer, pool, "setUserUseReserveAsCollateral", dai.address, True)
    report = await indexer.sync()
    await assert_parity(rpc2k, m, adapter, report.head.number)

    # liquidations, receiving the underlying and receiving aTokens
    await sc.scale_price("WETH", 6_500)
    report = await indexer.sync()
    hfs = await assert_parity(rpc2k, m, adapter, report.head.number)
    victims = [u for u, h in sorted(hfs.items(), key=lambda kv: kv[1]) if h < WAD]
    liquidator = "0x00000000000000000000000000000000000a0005"
    await prepare(liquidator, "USDC", 10**14)
    done = 0
    for v in victims:
        pos = adapter.indexing.book.get(v)
        assert pos is not None
        usdc_id = next(
            i for i, t in adapter.indexing.tokens.items() if t.asset.lower() == usdc.address.lower()
        )
        weth_id = next(
            i for i, t in adapter.indexing.tokens.items() if t.asset.lower() == weth.address.lower()
        )
        if (
            usdc_id in pos.reserves
            and pos.reserves[usdc_id].scaled_variable_debt
            and weth_id in pos.reserves
        ):
            await act(
                liquidator, pool, "liquidationCall", weth.address, usdc.address, v, MAX, done == 1
            )
            done += 1
        if done == 2:
            break
    assert done == 2
    await sc.mine(3)
    report = await indexer.sync()
    await assert_parity(rpc2k, m, adapter, report.head.number)
    # The blocks one head brought are stored once a second answer agreed: the next head's.
    assert indexer.store.events("aave.liquidation") == []
    await sc.mine(1)
    await indexer.sync()
    liquidations = indexer.store.events("aave.liquidation")
    # Liquidations in blocks that are now confirmed are in the store's history.
    assert len(liquidations) == 2
