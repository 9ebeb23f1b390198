"""``Liquidator.liquidateMorpho`` on the Morpho devnet, planned by ``MorphoStrategy``.

The strategy's input is read from the chain (``market``, ``position``, the oracle, the
Uniswap pair), accrued to the timestamp the transaction is then mined at, so the plan is
exact: the owner receives ``plan.profit`` to the wei, Morpho's ``Liquidate`` event and the
position afterwards are ``math.liquidate``'s. Each test runs between evm_snapshot and
evm_revert on the session's Morpho devnet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from eth_utils import keccak, to_checksum_address
from morpho_parity import MORPHO, chain_markets, chain_positions

from bot.abi import load_abi
from bot.adapters.morpho_blue.events import T_LIQUIDATE
from bot.adapters.morpho_blue.math import accrue_interest, irm_mock_rate, liquidate
from bot.adapters.morpho_blue.types import Market, Position
from bot.api import LiquidationPlan
from bot.devnet.anvil_rpc import AnvilRpc, Tx
from bot.devnet.deploy import deploy_liquidator
from bot.devnet.devnet import Devnet
from bot.devnet.manifest import Manifest, MorphoInfo, MorphoMarketInfo
from bot.devnet.scenario import Scenario
from bot.errors import ExecutionReverted
from bot.execution.liquidator import LIQUIDATOR_ABI, decode_revert, encode_morpho_liquidate
from bot.rpc import JsonRpcClient, to_int
from strategies import (
    MorphoMarketView,
    MorphoStrategy,
    MorphoStrategyInput,
    MorphoTarget,
    PairQuote,
    pair_key,
    position_key,
)
from strategies.morpho import MORPHO_LIQUIDATION_GAS

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

GAS = 3_000_000
GAS_PRICE = 10**9
ERC20 = load_abi("ERC20")
PAIR = load_abi("UniswapV2Pair")
ORACLE = load_abi("AaveOracle")
OWNER = to_checksum_address(keccak(text="liqbot morpho liquidator owner")[-20:])
STRANGER = to_checksum_address(keccak(text="liqbot morpho liquidator stranger")[-20:])


@pytest_asyncio.fixture
async def rpc(morpho_net: Devnet) -> AsyncIterator[JsonRpcClient]:
    async with JsonRpcClient(morpho_net.url) as client, AnvilRpc(client).isolated():
        yield client


@dataclass(frozen=True)
class Setup:
    sc: Scenario
    manifest: Manifest
    info: MorphoInfo
    liquidator: str

    @property
    def rpc(self) -> JsonRpcClient:
        return self.sc.chain.rpc

    async def holdings(self, account: str) -> dict[str, int]:
        return {r.symbol: await self.sc.balance(account, r.symbol) for r in self.manifest.reserves}

    async def pair_quote(self, m: MorphoMarketInfo) -> PairQuote:
        pair = self.manifest.uniswap.pair(m.collateral_symbol, m.loan_symbol)
        token0 = str(await self.sc.chain.call(pair, PAIR.fn("token0")))
        token1 = str(await self.sc.chain.call(pair, PAIR.fn("token1")))
        r0, r1, _ = await self.sc.chain.call(pair, PAIR.fn("getReserves"))
        return PairQuote(pair, token0, token1, r0, r1)


@dataclass(frozen=True)
class Planned:
    """A plan and the input it came from."""

    morpho: str
    market: MorphoMarketInfo
    inp: MorphoStrategyInput
    plan: LiquidationPlan

    @property
    def target(self) -> MorphoTarget:
        return self.inp.positions[self.plan.user]

    @property
    def view(self) -> MorphoMarketView:
        return self.inp.markets[self.market.id]

    @property
    def data(self) -> bytes:
        return self.calldata(self.plan.profit)

    def calldata(self, min_profit: int) -> bytes:
        return encode_morpho_liquidate(self.morpho, self.market.params, self.plan, min_profit)


@pytest_asyncio.fixture
async def setup(rpc: JsonRpcClient, morpho_net: Devnet) -> Setup:
    manifest = morpho_net.manifest
    assert manifest.morpho is not None
    sc = Scenario(rpc, manifest)
    await sc.fund_eth(OWNER, 10**20)
    await sc.fund_eth(STRANGER, 10**20)
    liquidator = await deploy_liquidator(
        sc.chain, OWNER, manifest.aave.pool, manifest.uniswap.factory
    )
    return Setup(sc, manifest, manifest.morpho, liquidator)


async def crash(s: Setup, m: MorphoMarketInfo, bps: int) -> None:
    """The collateral falls by the same share on the Aave oracle (the pools follow it) and
    on the market's own oracle: the pools then trade near the price Morpho liquidates at."""
    await s.sc.scale_price(m.collateral_symbol, bps)
    await s.sc.scale_morpho_price(m.id, bps)


async def plan_market(s: Setup, m: MorphoMarketInfo) -> tuple[Planned, int]:
    """The strategy's best plan on the market from chain reads, exact at the returned
    timestamp (the next block's, to be set with evm_setNextBlockTimestamp)."""
    head = await s.sc.chain.block()
    block, ts = to_int(head["number"]), to_int(head["timestamp"]) + 12
    market: Market = (await chain_markets(s.rpc, s.info, block))[m.id]
    accrued = accrue_interest(market, ts, irm_mock_rate).market
    price = await s.sc.morpho_price(m.id)
    borrowers = [b.address for b in s.info.borrowers if b.market_id == m.id]
    positions = await chain_positions(s.rpc, s.info.morpho, [(m.id, b) for b in borrowers], block)
    targets = {
        position_key(m.id, user): MorphoTarget(m.id, user, pos)
        for (_, user), pos in positions.items()
    }
    tokens = [s.manifest.reserve(sym) for sym in (m.loan_symbol, m.collateral_symbol, "WETH")]
    prices = {
        r.address.lower(): await s.sc.chain.call(
            s.manifest.aave.oracle, ORACLE.fn("getAssetPrice"), r.address
        )
        for r in tokens
    }
    quote = await s.pair_quote(m)
    inp = MorphoStrategyInput(
        markets={m.id: MorphoMarketView(m.id, m.params, accrued, price)},
        ts=ts,
        positions=targets,
        pairs={pair_key(quote.token0, quote.token1): quote},
        base_prices=prices,
        decimals={r.address.lower(): r.decimals for r in tokens},
        gas_price_wei=GAS_PRICE,
        native_price_base=prices[s.manifest.reserve("WETH").address.lower()],
    )
    plans = MorphoStrategy().plan(inp)
    assert plans, f"the crash should make a profitable liquidation in {m.id}"
    return Planned(s.info.morpho, m, inp, plans[0]), ts


async def send(s: Setup, sender: str, data: bytes, *, ts: int | None = None) -> dict[str, Any]:
    """Mine one call of the liquidator with a fixed gas limit (no estimate, so reverts get
    mined too) and return its receipt whatever its status."""
    await s.sc.chain.auto_impersonate(True)
    if ts is not None:
        await s.sc.chain.set_next_timestamp(ts)
    receipt: dict[str, Any] = await s.rpc.call(
        "eth_sendTransactionSync", [Tx(sender, s.liquidator, data, gas=GAS).params()]
    )
    return receipt


async def call_output(s: Setup, receipt: dict[str, Any]) -> str:
    """The top-level return (or revert) data of a mined transaction."""
    trace = await s.rpc.call(
        "debug_traceTransaction", [receipt["transactionHash"], {"tracer": "callTracer"}]
    )
    return str(trace.get("output") or "0x")


async def revert_reason(s: Setup, sender: str, data: bytes) -> str:
    with pytest.raises(ExecutionReverted) as info:
        await s.rpc.call(
            "eth_call",
            [{"from": sender, "to": s.liquidator, "data": "0x" + data.hex()}, "latest"],
        )
    return decode_revert(info.value.revert_data or "0x")


def morpho_liquidate_event(s: Setup, receipt: dict[str, Any]) -> dict[str, Any]:
    ev = MORPHO.event("Liquidate")
    (log,) = [
        lg
        for lg in receipt["logs"]
        if lg["address"].lower() == s.info.morpho.lower() and lg["topics"][0] == T_LIQUIDATE
    ]
    return ev.decode([bytes.fromhex(t[2:]) for t in log["topics"]], bytes.fromhex(log["data"][2:]))


def liquidated_events(s: Setup, receipt: dict[str, Any]) -> list[dict[str, Any]]:
    ev = LIQUIDATOR_ABI.event("Liquidated")
    decoded = [
        ev.decode([bytes.fromhex(t[2:]) for t in lg["topics"]], bytes.fromhex(lg["data"][2:]))
        for lg in receipt["logs"]
        if lg["address"].lower() == s.liquidator.lower() and lg["topics"][0] == ev.topic0_hex
    ]
    return [{**d, "debtAsset": to_checksum_address(d["debtAsset"])} for d in decoded]


async def on_chain(s: Setup, p: Planned, block: int | None = None) -> tuple[Market, Position]:
    at = block if block is not None else await s.sc.chain.block_number()
    market = (await chain_markets(s.rpc, s.info, at))[p.market.id]
    key = (p.market.id, p.target.borrower)
    return market, (await chain_positions(s.rpc, s.info.morpho, [key], at))[key]


async def assert_empty(s: Setup) -> None:
    """Nothing left in the contract: no tokens, no allowance to Morpho."""
    assert set((await s.holdings(s.liquidator)).values()) == {0}
    for r in s.manifest.reserves:
        allowance = await s.sc.chain.call(
            r.address, ERC20.fn("allowance"), s.liquidator, s.info.morpho
        )
        assert allowance == 0


@pytest.mark.parametrize(
    ("loan", "collateral", "bps"),
    [
        ("USDC", "WETH", 8_000),  # -20%: a partial liquidation, sized against the pool
        ("DAI", "WETH", 5_000),  # -50%: under water, all collateral taken, bad debt
    ],
)
async def test_planned_liquidation_pays_the_exact_profit(
    setup: Setup, loan: str, collateral: str, bps: int
) -> None:
    s = setup
    m = s.info.market(loan, collateral)
    await crash(s, m, bps)
    p, ts = await plan_market(s, m)
    plan, v, target = p.plan, p.view, p.target
    (step,) = plan.steps
    predicted = liquidate(
        v.market, target.position, v.price, m.lltv, seized_assets=step.collateral_seized
    )
    assert plan.profit > 0 and step.debt_to_cover == predicted.repaid_assets
    quote_before = await s.pair_quote(m)
    before = await s.holdings(OWNER)

    # min_profit = the exact profit: the tightest bound that still passes.
    receipt = await send(s, OWNER, p.data, ts=ts)
    assert to_int(receipt["status"]) == 1, decode_revert(await call_output(s, receipt))
    gas_used = to_int(receipt["gasUsed"])
    print(f"\ngas used, liquidateMorpho on {collateral}/{loan}: {gas_used}")
    assert gas_used <= MORPHO_LIQUIDATION_GAS

    after = await s.holdings(OWNER)
    assert after[loan] - before[loan] == plan.profit
    assert {k: after[k] - before[k] for k in after if k != loan} == {
        k: 0 for k in after if k != loan
    }
    assert LIQUIDATOR_ABI.fn("liquidateMorpho").decode_one(await call_output(s, receipt)) == (
        plan.profit
    )
    event = morpho_liquidate_event(s, receipt)
    assert (event["seizedAssets"], event["repaidAssets"], event["repaidShares"]) == (
        step.collateral_seized,
        step.debt_to_cover,
        predicted.repaid_shares,
    )
    assert (event["badDebtAssets"], event["badDebtShares"]) == (
        predicted.bad_debt_assets,
        predicted.bad_debt_shares,
    )
    assert to_checksum_address(event["borrower"]) == to_checksum_address(target.borrower)
    assert liquidated_events(s, receipt) == [
        {
            "debtAsset": to_checksum_address(m.loan_token),
            "repaid": step.debt_to_cover,
            "profit": plan.profit,
        }
    ]
    block = to_int(receipt["blockNumber"])
    assert to_int((await s.sc.chain.block(block))["timestamp"]) == ts
    assert await on_chain(s, p, block) == (predicted.market, predicted.position)
    (swap,) = plan.swaps
    quote_after = await s.pair_quote(m)
    r_in, r_out = quote_before.reserves_for(m.collateral_token)
    assert quote_after.reserves_for(m.collateral_token) == (
        r_in + swap.amount_in,
        r_out - swap.amount_out,
    )
    if bps == 5_000:
        assert step.collateral_seized == target.position.collateral
        assert predicted.bad_debt_shares > 0 and predicted.position == Position()
    else:
        assert step.collateral_seized < target.position.collateral
    await assert_empty(s)


async def test_only_the_owner_and_the_ongoing_morpho_get_in(setup: Setup) -> None:
    s = setup
    m = s.info.market("USDC", "WETH")
    await crash(s, m, 8_000)
    p, ts = await plan_market(s, m)
    assert await revert_reason(s, STRANGER, p.data) == "NotOwner()"
    callback = LIQUIDATOR_ABI.fn("onMorphoLiquidate").encode(p.plan.steps[0].debt_to_cover, b"\x01")
    # Morpho itself too: outside a liquidateMorpho call no caller is the ongoing Morpho.
    for caller in (STRANGER, OWNER, s.info.morpho):
        assert await revert_reason(s, caller, callback) == "NotMorpho()"
    # Someone else's Morpho liquidation naming the liquidator as the callback target is
    # impossible (Morpho calls back msg.sender); a mined non-owner call changes nothing.
    before = await on_chain(s, p)
    receipt = await send(s, STRANGER, p.data, ts=ts)
    assert to_int(receipt["status"]) == 0
    assert decode_revert(await call_output(s, receipt)) == "NotOwner()"
    assert await on_chain(s, p) == before


async def test_min_profit_above_the_real_profit_reverts(setup: Setup) -> None:
    s = setup
    m = s.info.market("USDC", "WETH")
    await crash(s, m, 8_000)
    p, ts = await plan_market(s, m)
    profit = p.plan.profit
    owner_tokens, contract_tokens = await s.holdings(OWNER), await s.holdings(s.liquidator)
    quote = await s.pair_quote(m)
    eth_before = to_int(await s.rpc.call("eth_getBalance", [OWNER, "latest"]))
    receipt = await send(s, OWNER, p.calldata(profit + 1), ts=ts)
    assert to_int(receipt["status"]) == 0
    # The callback's check: the profit is known exactly before Morpho pulls its due.
    assert decode_revert(await call_output(s, receipt)) == (
        f"InsufficientProfit(profit={profit}, min={profit + 1})"
    )
    assert await s.holdings(OWNER) == owner_tokens
    assert await s.holdings(s.liquidator) == contract_tokens
    assert await s.pair_quote(m) == quote
    _, position = await on_chain(s, p)
    assert position == p.target.position
    gas_paid = to_int(receipt["gasUsed"]) * to_int(receipt["effectiveGasPrice"])
    eth_after = to_int(await s.rpc.call("eth_getBalance", [OWNER, "latest"]))
    assert eth_after == eth_before - gas_paid
