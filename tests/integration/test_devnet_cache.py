"""The state cache reloads a deployed market with identical state and history."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.abi import load_abi
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.devnet import DevnetSpec, start_devnet
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _snapshot_view(url: str, users: list[str], pool: str) -> tuple[int, list[object], int]:
    async with JsonRpcClient(url) as rpc:
        chain = AnvilRpc(rpc)
        head = await chain.block_number()
        fn = load_abi("Pool").fn("getUserAccountData")
        datas = [await chain.call(pool, fn, u, block=head) for u in users]
        logs = await rpc.call(
            "eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(head), "address": pool}]
        )
        return head, datas, len(logs)


async def test_cache_round_trip(tmp_path: Path) -> None:
    spec = DevnetSpec(borrowers=12, seed=7)
    first = await start_devnet(spec, state_cache=tmp_path)
    try:
        assert not first.from_cache
        users = [b.address for b in first.manifest.borrowers]
        view1 = await _snapshot_view(first.url, users, first.manifest.aave.pool)
    finally:
        first.stop()
    assert (tmp_path / spec.cache_key() / "state.json").is_file()

    manifest_path = tmp_path / "m.json"
    second = await start_devnet(spec, state_cache=tmp_path, manifest_path=manifest_path)
    try:
        assert second.from_cache
        assert second.manifest.rpc_url == second.url != first.url
        assert second.manifest.model_dump(exclude={"rpc_url"}) == first.manifest.model_dump(
            exclude={"rpc_url"}
        )
        view2 = await _snapshot_view(second.url, users, second.manifest.aave.pool)
        assert view2 == view1  # same head, same accounts, same event history
        assert view1[2] > 0
        assert manifest_path.read_text().count(second.url) == 1
    finally:
        second.stop()


async def test_cache_key_changes_with_spec() -> None:
    assert DevnetSpec(borrowers=10).cache_key() != DevnetSpec(borrowers=11).cache_key()
    assert DevnetSpec(seed=1).cache_key() != DevnetSpec(seed=2).cache_key()
    assert DevnetSpec().cache_key() == DevnetSpec().cache_key()
