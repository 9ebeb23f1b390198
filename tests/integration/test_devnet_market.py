"""The devnet holds a real, correctly configured Aave V3 market, Uniswap V2 and Multicall3."""

from __future__ import annotations

import pytest

from bot.abi import load_abi
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.deploy import MULTICALL3_ADDRESS
from bot.devnet.manifest import Manifest
from bot.devnet.market import DEFAULT_MARKET
from bot.devnet.report import read_reserves
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POOL = load_abi("Pool")
DP = load_abi("AaveProtocolDataProvider")
ERC20 = load_abi("ERC20")
PAIR = load_abi("UniswapV2Pair")
ROUTER = load_abi("UniswapV2Router02")


async def test_reserves_list_matches_manifest(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    chain = AnvilRpc(origin_rpc)
    listed = await chain.call(manifest.aave.pool, POOL.fn("getReservesList"))
    assert [a.lower() for a in listed] == [r.address.lower() for r in manifest.reserves]
    assert [r.symbol for r in manifest.reserves] == ["WETH", "WBTC", "USDC", "DAI"]


async def test_reserve_data_and_tokens(origin_rpc: JsonRpcClient, manifest: Manifest) -> None:
    chain = AnvilRpc(origin_rpc)
    for r in manifest.reserves:
        data = await chain.call(manifest.aave.pool, POOL.fn("getReserveData"), r.address)
        assert data[8].lower() == r.a_token.lower()
        assert data[10].lower() == r.variable_debt_token.lower()
        assert data[1] >= 10**27  # liquidity index starts at RAY and only grows
        assert await chain.call(r.address, ERC20.fn("decimals")) == r.decimals
        assert await chain.call(r.a_token, ERC20.fn("decimals")) == r.decimals
        underlying = await chain.call(r.a_token, load_abi("AToken").fn("UNDERLYING_ASSET_ADDRESS"))
        assert underlying.lower() == r.address.lower()


async def test_risk_parameters_match_market_params(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    rows = {row.symbol: row for row in await read_reserves(origin_rpc, manifest)}
    for p in DEFAULT_MARKET.reserves:
        row = rows[p.symbol]
        assert (row.ltv, row.liquidation_threshold, row.liquidation_bonus) == (
            p.ltv,
            p.liquidation_threshold,
            p.liquidation_bonus,
        )
        assert row.protocol_fee == p.liquidation_protocol_fee
        assert row.price_8 == p.price_usd_8
        assert row.total_borrowed > 0, f"{p.symbol} has no borrowers"
    assert any(p.liquidation_protocol_fee for p in DEFAULT_MARKET.reserves)
    assert len({(p.ltv, p.liquidation_threshold) for p in DEFAULT_MARKET.reserves}) == 4


async def test_emode_category(origin_rpc: JsonRpcClient, manifest: Manifest) -> None:
    chain = AnvilRpc(origin_rpc)
    (emode,) = manifest.emode_categories
    data = await chain.call(manifest.aave.pool, POOL.fn("getEModeCategoryData"), emode.id)
    assert (data[0], data[1], data[2]) == (
        emode.ltv,
        emode.liquidation_threshold,
        emode.liquidation_bonus,
    )
    assert data[4] == emode.label
    for r in manifest.reserves:
        cat = await chain.call(
            manifest.aave.data_provider, DP.fn("getReserveEModeCategory"), r.address
        )
        assert cat == r.emode_category
    assert {r.symbol for r in manifest.reserves if r.emode_category == emode.id} == {"USDC", "DAI"}


async def test_flash_loans_enabled_with_premium(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    chain = AnvilRpc(origin_rpc)
    premium = await chain.call(manifest.aave.pool, POOL.fn("FLASHLOAN_PREMIUM_TOTAL"))
    assert premium == DEFAULT_MARKET.flash_loan_premium_total
    for r in manifest.reserves:
        assert await chain.call(
            manifest.aave.data_provider, DP.fn("getFlashLoanEnabled"), r.address
        )


async def test_multicall3_at_canonical_address(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    chain = AnvilRpc(origin_rpc)
    assert manifest.multicall3 == MULTICALL3_ADDRESS
    mc = load_abi("Multicall3")
    assert (
        await chain.call(MULTICALL3_ADDRESS, mc.fn("getBlockNumber")) == await chain.block_number()
    )


async def test_uniswap_pools_at_oracle_prices(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    chain = AnvilRpc(origin_rpc)
    prices = {p.symbol: p.price_usd_8 for p in DEFAULT_MARKET.reserves}
    assert len(manifest.uniswap.pairs) == 6  # every pair of the four reserves
    for name, pair in manifest.uniswap.pairs.items():
        r0, r1, _ = await chain.call(pair, PAIR.fn("getReserves"))
        t0 = await chain.call(pair, PAIR.fn("token0"))
        a, b = (manifest.reserve(s) for s in name.split("/"))
        x, y = (a, b) if t0.lower() == a.address.lower() else (b, a)
        usd0 = r0 * prices[x.symbol] // 10**x.decimals
        usd1 = r1 * prices[y.symbol] // 10**y.decimals
        assert abs(usd0 - usd1) * 10_000 < usd0, f"{name} not at oracle prices"
        assert usd0 >= 10_000_000 * 10**8, f"{name} is not deep"


async def test_router_swaps_through_real_pairs(
    origin_rpc: JsonRpcClient, manifest: Manifest
) -> None:
    """The router computes pair addresses from the pair init-code hash: a swap proves it matches."""
    chain = AnvilRpc(origin_rpc)
    from bot.devnet.scenario import Scenario

    sc = Scenario(origin_rpc, manifest)
    trader = "0x00000000000000000000000000000000000A11CE"
    weth, usdc = manifest.reserve("WETH"), manifest.reserve("USDC")
    await sc.fund(trader, "WETH", 10**18)
    await sc.fund_eth(trader, 10**18)
    router = manifest.uniswap.router
    await sc.send(trader, weth.address, ERC20.fn("approve"), router, 10**18)
    quoted = await chain.call(
        router, ROUTER.fn("getAmountsOut"), 10**18, [weth.address, usdc.address]
    )
    await sc.send(
        trader,
        router,
        ROUTER.fn("swapExactTokensForTokens"),
        10**18,
        0,
        [weth.address, usdc.address],
        trader,
        2**40,
    )
    got = await sc.balance(trader, "USDC")
    assert got == quoted[1]
    assert 1_990 * 10**6 < got < 2_000 * 10**6  # $2,000 less the 0.3% fee and a little impact
