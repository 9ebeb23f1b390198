"""Morpho Blue passes the adapter conformance kit (bot/testing/conformance.py) on forks of
the session Morpho devnet, its oracles following the Aave feeds."""

from __future__ import annotations

from typing import Any

import pytest
from morpho_parity import MORPHO
from test_morpho_parity import LIQUIDATOR, Actor

from bot.adapters.morpho_blue.math import max_borrow
from bot.adapters.morpho_blue.types import Position
from bot.config import manifest_settings
from bot.devnet.devnet import Devnet
from bot.devnet.manifest import Manifest, MorphoInfo
from bot.errors import ExecutionReverted
from bot.rpc import JsonRpcClient
from bot.testing.conformance import AdapterConformance, ConformanceHarness

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NEWCOMER = "0x00000000000000000000000000000000000c0f02"


class MorphoHarness(ConformanceHarness):
    protocol = "morpho-blue"

    def __init__(self, net: Devnet) -> None:
        self.net = net
        assert net.manifest.morpho is not None
        self.info: MorphoInfo = net.manifest.morpho

    async def origin(self) -> tuple[str, Manifest]:
        return self.net.url, self.net.manifest

    def settings(self, url: str) -> dict[str, Any]:
        return manifest_settings(self.net.manifest.with_rpc_url(url), self.protocol)

    async def crash(self, rpc: JsonRpcClient) -> None:
        a = Actor(rpc, self.net.manifest)
        for m in self.info.markets:  # ``chain_liquidatable``'s probe repays with these
            await a.fund_liquidator(m)
        await a.sc.scale_price("WETH", 7_600)  # ETH -24% on Aave's feed ...
        await a.sc.follow_aave_prices()  # ... and on Morpho's oracles

    async def chain_liquidatable(self, rpc: JsonRpcClient, key: str) -> bool:
        """``liquidate`` of one unit of collateral succeeds under ``eth_call``."""
        market_id, borrower = key.split(":")
        (m,) = [m for m in self.info.markets if m.id == market_id]
        data = MORPHO.fn("liquidate").encode_hex(m.params.as_tuple(), borrower, 1, 0, b"")
        call = {"from": LIQUIDATOR, "to": self.info.morpho, "data": data}
        try:
            await rpc.call("eth_call", [call, "latest"])
        except ExecutionReverted as e:
            assert "position is healthy" in str(e), f"{key}: liquidate reverted: {e}"
            return False
        return True

    async def activity(self, rpc: JsonRpcClient, blocks: int) -> None:
        """A newcomer adds collateral and borrows against it, one transaction a block."""
        a = Actor(rpc, self.net.manifest)
        m = next(m for m in self.info.markets if m.collateral_symbol == "WETH")
        collateral = 10**18
        await a.fund(NEWCOMER, "WETH", collateral * blocks)
        price = await a.sc.morpho_price(m.id)
        borrow = max_borrow(Position(collateral=collateral), price, m.lltv) // 4
        p = m.params.as_tuple()
        for i in range(blocks):
            if i % 2 == 0:
                await a.act(NEWCOMER, "supplyCollateral", p, collateral, NEWCOMER, b"")
            else:
                await a.act(NEWCOMER, "borrow", p, borrow, 0, NEWCOMER, NEWCOMER)


class TestMorphoBlue(AdapterConformance):
    @pytest.fixture
    def harness(self, morpho_net: Devnet) -> ConformanceHarness:
        return MorphoHarness(morpho_net)
