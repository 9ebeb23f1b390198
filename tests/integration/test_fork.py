"""The fork follows the origin up to the fork block and never writes back to it."""

from __future__ import annotations

import pytest

from bot.abi import load_abi
from bot.chain.anvil import AnvilProcess
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.devnet import Devnet, start_fork
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.errors import DevnetError
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
POOL = load_abi("Pool")


async def test_fork_sees_origin_state(
    fork_rpc: JsonRpcClient, manifest: Manifest, devnet: Devnet
) -> None:
    fork = AnvilRpc(fork_rpc)
    async with JsonRpcClient(devnet.url) as o:
        origin = AnvilRpc(o)
        assert await fork.chain_id() == await origin.chain_id()
        user = manifest.borrowers[0].address
        fn = POOL.fn("getUserAccountData")
        head = await origin.block_number()
        assert await fork.call(manifest.aave.pool, fn, user, block=head) == await origin.call(
            manifest.aave.pool, fn, user, block=head
        )


async def test_fork_changes_leave_origin_untouched(
    fork_scenario: Scenario, manifest: Manifest, devnet: Devnet
) -> None:
    async with JsonRpcClient(devnet.url) as o:
        origin = AnvilRpc(o)
        head_before = await origin.block_number()
        block_before = await origin.block(head_before)
        price_before = await Scenario(o, manifest).price("WETH")
        user = manifest.borrowers[0].address
        data_before = await origin.call(manifest.aave.pool, POOL.fn("getUserAccountData"), user)

        await fork_scenario.set_price("WETH", price_before // 2)
        await fork_scenario.advance_time(86_400)
        assert await fork_scenario.price("WETH") == price_before // 2

        assert await origin.block_number() == head_before
        assert (await origin.block(head_before))["hash"] == block_before["hash"]
        assert await Scenario(o, manifest).price("WETH") == price_before
        assert (
            await origin.call(manifest.aave.pool, POOL.fn("getUserAccountData"), user)
            == data_before
        )


async def test_snapshot_isolation(fork_rpc: JsonRpcClient, manifest: Manifest) -> None:
    """A snapshot/revert pair undoes price changes, time and blocks."""
    sc = Scenario(fork_rpc, manifest)
    head = await sc.chain.block_number()
    price = await sc.price("WBTC")
    snap = await sc.snapshot()
    await sc.set_price("WBTC", price * 2, align_pools=False)
    await sc.mine(5)
    await sc.revert(snap)
    assert await sc.price("WBTC") == price
    assert await sc.chain.block_number() == head


async def test_fork_at_an_explicit_block(devnet: Devnet, manifest: Manifest) -> None:
    async with JsonRpcClient(devnet.url) as o:
        head = await AnvilRpc(o).block_number()
    proc: AnvilProcess = await start_fork(devnet.url, head - 1)
    try:
        async with JsonRpcClient(proc.url) as f:
            assert await AnvilRpc(f).block_number() == head - 1
    finally:
        proc.stop()
    with pytest.raises(DevnetError, match="past the head"):
        await start_fork(devnet.url, head + 100)
