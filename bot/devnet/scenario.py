"""Scenario helpers for tests, the demo and backtests: prices, time, funds, snapshots.

Every helper acts through the chain's own rules (feed owner transactions, token mints,
real swaps), except the anvil cheat codes for time and impersonation.
"""

from __future__ import annotations

import math
from typing import Any

from bot.abi import AbiFunction, load_abi
from bot.devnet import morpho_build
from bot.devnet.anvil_rpc import AnvilRpc, Tx
from bot.devnet.manifest import Manifest, MorphoMarketInfo, ReserveInfo
from bot.rpc import JsonRpcClient
from strategies.api import v2_amount_out

_ERC20 = load_abi("ERC20")
_FEED = load_abi("SettableAggregator")
_ORACLE = load_abi("AaveOracle")
_PAIR = load_abi("UniswapV2Pair")


class Scenario:
    def __init__(self, rpc: JsonRpcClient, manifest: Manifest) -> None:
        self.chain = AnvilRpc(rpc)
        self.manifest = manifest

    # -- generic -----------------------------------------------------------------------
    async def send(
        self, sender: str, to: str, fn: AbiFunction, *args: Any, value: int = 0
    ) -> dict[str, Any]:
        """Send a transaction as ``sender`` (impersonated) and return its receipt."""
        await self.chain.auto_impersonate(True)
        return await self.chain.send(Tx(sender, to, fn.encode(*args), value=value, label=fn.name))

    async def snapshot(self) -> str:
        return await self.chain.snapshot()

    async def revert(self, snapshot_id: str) -> None:
        await self.chain.revert(snapshot_id)

    async def mine(self, blocks: int = 1) -> None:
        await self.chain.mine(blocks)

    async def advance_time(self, seconds: int, *, mine: bool = True) -> None:
        """Move the clock forward (interest accrues); mines a block unless told not to."""
        await self.chain.increase_time(seconds)
        if mine:
            await self.chain.mine(1)

    # -- prices ------------------------------------------------------------------------
    async def price(self, symbol: str) -> int:
        """The Aave oracle's price (8 decimals, USD)."""
        r = self.manifest.reserve(symbol)
        value: int = await self.chain.call(
            self.manifest.aave.oracle, _ORACLE.fn("getAssetPrice"), r.address
        )
        return value

    async def set_price(self, symbol: str, price_8: int, *, align_pools: bool = True) -> None:
        """Post a new feed answer; by default also arbitrage the Uniswap pools to it."""
        feed = self.manifest.reserve(symbol).price_feed
        await self.send(self.manifest.deployer, feed, _FEED.fn("setAnswer"), price_8)
        if align_pools:
            await self.align_pools()

    async def scale_price(self, symbol: str, bps: int, *, align_pools: bool = True) -> int:
        """Multiply the price by ``bps``/10_000 (7_000 = a 30% drop); returns the new price."""
        new = await self.price(symbol) * bps // 10_000
        await self.set_price(symbol, new, align_pools=align_pools)
        return new

    # -- Morpho Blue prices (each market has its own OracleMock) ---------------------
    def morpho_market(self, market_id: str) -> MorphoMarketInfo:
        if self.manifest.morpho is None:
            raise KeyError("the devnet has no Morpho Blue (start it with morpho=True)")
        for m in self.manifest.morpho.markets:
            if m.id == market_id:
                return m
        raise KeyError(f"no Morpho market {market_id} in manifest")

    async def morpho_price(self, market_id: str) -> int:
        """The market oracle's price: loan units per collateral unit, scaled by 1e36."""
        oracle = self.morpho_market(market_id).oracle
        value: int = await self.chain.call(
            oracle, morpho_build.artifact("OracleMock").abi.fn("price")
        )
        return value

    async def set_morpho_price(self, market_id: str, price: int) -> None:
        """Set a Morpho market's oracle price (the Uniswap pools are left as they are)."""
        oracle = self.morpho_market(market_id).oracle
        setter = morpho_build.artifact("OracleMock").abi.fn("setPrice")
        await self.send(self.manifest.deployer, oracle, setter, price)

    async def scale_morpho_price(self, market_id: str, bps: int) -> int:
        """Multiply a Morpho market's price by ``bps``/10_000; returns the new price."""
        new = await self.morpho_price(market_id) * bps // 10_000
        await self.set_morpho_price(market_id, new)
        return new

    async def follow_aave_prices(self) -> None:
        """Set every Morpho market's oracle to the Aave oracle's prices of its two tokens,
        as a real Morpho oracle reading the same Chainlink feeds would answer."""
        from bot.devnet.morpho import oracle_price

        assert self.manifest.morpho is not None, "the devnet has no Morpho Blue"
        for m in self.manifest.morpho.markets:
            loan = self.manifest.reserve(m.loan_symbol)
            coll = self.manifest.reserve(m.collateral_symbol)
            price = oracle_price(
                await self.price(coll.symbol),
                coll.decimals,
                await self.price(loan.symbol),
                loan.decimals,
            )
            await self.set_morpho_price(m.id, price)

    # -- funds -------------------------------------------------------------------------
    async def fund(self, account: str, symbol: str, amount: int) -> None:
        """Mint ``amount`` base units of a reserve's (test) token to ``account``."""
        token = self.manifest.reserve(symbol).address
        await self.send(
            self.manifest.deployer, token, _ERC20.fn("mint(address,uint256)"), account, amount
        )

    async def fund_eth(self, account: str, wei: int) -> None:
        await self.chain.set_balance(account, wei)

    async def balance(self, account: str, symbol: str) -> int:
        value: int = await self.chain.call(
            self.manifest.reserve(symbol).address, _ERC20.fn("balanceOf"), account
        )
        return value

    # -- pools -------------------------------------------------------------------------
    async def align_pools(self) -> None:
        """Arbitrage every Uniswap V2 pair back to the oracle's price ratio.

        Without this a price crash would leave the pools at the old price, and selling
        seized collateral there would look far more profitable than it could be.
        """
        prices = {r.symbol: await self.price(r.symbol) for r in self.manifest.reserves}
        for name, pair in self.manifest.uniswap.pairs.items():
            a, b = name.split("/")
            await self._align_pair(pair, self.manifest.reserve(a), self.manifest.reserve(b), prices)

    async def _align_pair(
        self, pair: str, ra: ReserveInfo, rb: ReserveInfo, prices: dict[str, int]
    ) -> None:
        token0 = await self.chain.call(pair, _PAIR.fn("token0"))
        r0, r1, _ = await self.chain.call(pair, _PAIR.fn("getReserves"))
        t0, t1 = (ra, rb) if token0.lower() == ra.address.lower() else (rb, ra)
        # Target: r1/r0 (in base units) equals price0/price1 scaled by decimals.
        # With k = r0*r1 fixed (ignoring the fee): r0' = sqrt(k * p1 * 10^d0 / (p0 * 10^d1)).
        k = r0 * r1
        num = k * prices[t1.symbol] * 10**t0.decimals
        den = prices[t0.symbol] * 10**t1.decimals
        target0 = math.isqrt(num // den)
        if target0 == r0:
            return
        arb = self.manifest.deployer
        if target0 > r0:  # pool short of token0: sell token0 for token1
            amount_in = (target0 - r0) * 1000 // 997
            out = v2_amount_out(amount_in, r0, r1)
            if out == 0:  # already aligned to within a unit: a swap would revert
                return
            await self.fund(pair, t0.symbol, amount_in)
            await self.send(arb, pair, _PAIR.fn("swap"), 0, out, arb, b"")
        else:
            target1 = k // target0
            amount_in = (target1 - r1) * 1000 // 997
            out = v2_amount_out(amount_in, r1, r0)
            if out == 0:  # already aligned to within a unit: a swap would revert
                return
            await self.fund(pair, t1.symbol, amount_in)
            await self.send(arb, pair, _PAIR.fn("swap"), out, 0, arb, b"")
