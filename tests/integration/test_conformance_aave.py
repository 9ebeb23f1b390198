"""Aave V3 passes the adapter conformance kit (bot/testing/conformance.py) on forks of
the session devnet."""

from __future__ import annotations

from typing import Any

import pytest
from test_indexer_recovery import _activity

from bot.abi import load_abi
from bot.config import manifest_settings
from bot.devnet.devnet import Devnet
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.rpc import JsonRpcClient
from bot.testing.conformance import AdapterConformance, ConformanceHarness

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POOL = load_abi("Pool")
WAD = 10**18
ACTOR = "0x00000000000000000000000000000000000c0f01"


class AaveHarness(ConformanceHarness):
    protocol = "aave-v3"

    def __init__(self, net: Devnet) -> None:
        self.net = net

    async def origin(self) -> tuple[str, Manifest]:
        return self.net.url, self.net.manifest

    def settings(self, url: str) -> dict[str, Any]:
        return manifest_settings(self.net.manifest.with_rpc_url(url), self.protocol)

    def _scenario(self, rpc: JsonRpcClient) -> Scenario:
        return Scenario(rpc, self.net.manifest)

    async def crash(self, rpc: JsonRpcClient) -> None:
        await self._scenario(rpc).scale_price("WETH", 7_600)  # ETH -24%

    async def chain_liquidatable(self, rpc: JsonRpcClient, key: str) -> bool:
        fn = POOL.fn("getUserAccountData")
        data = fn.encode_hex(key)
        raw = await rpc.call(
            "eth_call", [{"to": self.net.manifest.aave.pool, "data": data}, "latest"]
        )
        health_factor = fn.decode(raw)[-1]
        return bool(health_factor < WAD)

    async def activity(self, rpc: JsonRpcClient, blocks: int) -> None:
        await _activity(self._scenario(rpc), self.net.manifest, ACTOR, blocks)


class TestAaveV3(AdapterConformance):
    @pytest.fixture
    def harness(self, devnet: Devnet) -> ConformanceHarness:
        return AaveHarness(devnet)
