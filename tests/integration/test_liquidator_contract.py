"""The Liquidator contract on the fork: access control, and profits exact to the wei.

Every expected number comes from the formulas (Aave's liquidation math in
``bot.adapters.aave_v3.health``, Uniswap V2's getAmountOut, Aave's flash premium), never
from the transaction being checked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
import pytest_asyncio
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from bot.abi import load_abi
from bot.adapters.aave_v3.health import (
    CLOSE_FACTOR_HF_THRESHOLD,
    LiquidationAmounts,
    ReserveState,
    calculate_account_data,
    liquidation_amounts,
    normalized_debt,
    normalized_income,
)
from bot.adapters.aave_v3.math import percent_mul, ray_div
from bot.adapters.aave_v3.reader import AaveV3Reader, MarketState, UserState
from bot.api import LiquidationPlan, LiquidationStep
from bot.devnet.anvil_rpc import Tx
from bot.devnet.deploy import deploy_liquidator
from bot.devnet.manifest import Manifest
from bot.devnet.report import read_accounts
from bot.devnet.scenario import Scenario
from bot.errors import ExecutionReverted
from bot.execution.liquidator import (
    LIQUIDATOR_ABI,
    decode_revert,
    encode_liquidate,
)
from bot.multicall import Multicall
from bot.rpc import to_int

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WAD = 10**18
MAX_UINT = 2**256 - 1
GAS = 3_000_000
POOL = load_abi("Pool")
ERC20 = load_abi("ERC20")
PAIR = load_abi("UniswapV2Pair")
OWNER = to_checksum_address(keccak(text="liqbot liquidator owner")[-20:])
STRANGER = to_checksum_address(keccak(text="liqbot liquidator stranger")[-20:])
STABLES = ("USDC", "DAI")


@dataclass(frozen=True)
class Victim:
    """A liquidatable user with WETH collateral and a stablecoin debt, as read at the head,
    with its health factor at ``ts`` (the timestamp the liquidation will be mined at)."""

    user: str
    debt_symbol: str
    coll: ReserveState
    debt: ReserveState
    market: MarketState
    state: UserState
    health_factor: int
    ts: int

    def amounts(
        self, state: UserState, health_factor: int, debt_to_cover: int
    ) -> LiquidationAmounts:
        return liquidation_amounts(
            health_factor=health_factor,
            collateral_reserve=self.coll,
            debt_reserve=self.debt,
            user_collateral=state.reserves[self.coll.id],
            user_debt=state.reserves[self.debt.id],
            user_emode=state.emode,
            emode_categories=self.market.emode_categories,
            debt_to_cover=debt_to_cover,
            ts=self.ts,
        )

    def exact(self, state: UserState, health_factor: int, debt_to_cover: int) -> LiquidationAmounts:
        """Amounts for a ``debtToCover`` of at most the allowed maximum, recomputed with the
        repay amount itself (what the bot passes), which is what the pool then takes."""
        capped = self.amounts(state, health_factor, debt_to_cover)
        exact = self.amounts(state, health_factor, capped.actual_debt_to_liquidate)
        assert exact.actual_debt_to_liquidate == capped.actual_debt_to_liquidate
        return exact

    def after(self, state: UserState, done: LiquidationAmounts) -> UserState:
        """The user's state after a liquidation moved ``done``: the same scaled-amount
        roundings the aToken burn, the fee transfer and the debt burn use."""
        c, d = state.reserves[self.coll.id], state.reserves[self.debt.id]
        income, debt_index = (
            normalized_income(self.coll, self.ts),
            normalized_debt(self.debt, self.ts),
        )
        burned = ray_div(done.collateral_to_liquidate, income)
        fee = ray_div(done.liquidation_protocol_fee_amount, income)
        reserves = dict(state.reserves)
        reserves[self.coll.id] = replace(c, scaled_atoken=c.scaled_atoken - burned - fee)
        reserves[self.debt.id] = replace(
            d,
            scaled_variable_debt=d.scaled_variable_debt
            - ray_div(done.actual_debt_to_liquidate, debt_index),
        )
        return UserState(state.emode, reserves)

    def health(self, state: UserState) -> int:
        # Indexes at ts are the same before and after the pool's updateState at ts, so the
        # market read before the transaction still prices the state after a step.
        return calculate_account_data(
            state.reserves, self.market.reserves, state.emode, self.market.emode_categories, self.ts
        ).health_factor


@dataclass(frozen=True)
class Setup:
    sc: Scenario
    manifest: Manifest
    liquidator: str
    victim: Victim
    premium_bps: int

    @property
    def debt_asset(self) -> str:
        return self.manifest.reserve(self.victim.debt_symbol).address

    @property
    def weth(self) -> str:
        return self.manifest.reserve("WETH").address

    async def pair_reserves(self) -> tuple[int, int]:
        """(WETH reserve, debt-asset reserve) of their Uniswap V2 pair."""
        pair = self.manifest.uniswap.pair("WETH", self.victim.debt_symbol)
        token0 = await self.sc.chain.call(pair, PAIR.fn("token0"))
        r0, r1, _ = await self.sc.chain.call(pair, PAIR.fn("getReserves"))
        return (r0, r1) if token0.lower() == self.weth.lower() else (r1, r0)

    async def holdings(self, account: str) -> dict[str, int]:
        return {r.symbol: await self.sc.balance(account, r.symbol) for r in self.manifest.reserves}


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2Library.getAmountOut, written out again so the test does not trust the bot."""
    return amount_in * 997 * reserve_out // (reserve_in * 1000 + amount_in * 997)


def flash_profit(seized: int, flash: int, reserves: tuple[int, int], premium_bps: int) -> int:
    """What the owner gets from a flash liquidation: the sale of the collateral minus the
    loan and its premium (Aave's percentMul, half up)."""
    return amount_out(seized, *reserves) - flash - percent_mul(flash, premium_bps)


def plan_of(s: Setup, amounts: list[tuple[int, LiquidationAmounts]], flash: int) -> LiquidationPlan:
    """A plan with just what the contract call needs (the rest is the strategy's business)."""
    steps = tuple(
        LiquidationStep(
            user=s.victim.user,
            collateral_asset=s.weth,
            debt_asset=s.debt_asset,
            debt_to_cover=debt_to_cover,
            collateral_seized=a.collateral_to_liquidate,
            protocol_fee=a.liquidation_protocol_fee_amount,
            bonus_bps=s.victim.coll.config.liquidation_bonus,
        )
        for debt_to_cover, a in amounts
    )
    return LiquidationPlan(
        protocol="aave-v3",
        user=s.victim.user,
        debt_asset=s.debt_asset,
        health_factor=s.victim.health_factor,
        steps=steps,
        swaps=(),
        flash_amount=flash,
        flash_premium=0,
        profit=0,
        profit_base=0,
        bonus_base=0,
        protocol_fee_base=0,
        swap_cost_base=0,
        flash_premium_base=0,
        gas_units=0,
        gas_price_wei=0,
        gas_cost_base=0,
        net_profit_base=0,
    )


async def send(
    s: Setup, sender: str, to: str, data: bytes, *, ts: int | None = None
) -> dict[str, Any]:
    """Mine one transaction with a fixed gas limit (no estimate, so reverts get mined too)
    and return its receipt whatever its status."""
    await s.sc.chain.auto_impersonate(True)
    if ts is not None:
        await s.sc.chain.set_next_timestamp(ts)
    receipt: dict[str, Any] = await s.sc.chain.rpc.call(
        "eth_sendTransactionSync", [Tx(sender, to, data, gas=GAS).params()]
    )
    return receipt


async def revert_reason(s: Setup, sender: str, to: str, data: bytes) -> str:
    with pytest.raises(ExecutionReverted) as info:
        await s.sc.chain.rpc.call(
            "eth_call", [{"from": sender, "to": to, "data": "0x" + data.hex()}, "latest"]
        )
    return decode_revert(info.value.revert_data or "0x")


def liquidated_events(s: Setup, receipt: dict[str, Any]) -> list[dict[str, Any]]:
    ev = LIQUIDATOR_ABI.event("Liquidated")
    decoded = [
        ev.decode([bytes.fromhex(t[2:]) for t in lg["topics"]], bytes.fromhex(lg["data"][2:]))
        for lg in receipt["logs"]
        if lg["address"].lower() == s.liquidator.lower() and lg["topics"][0] == ev.topic0_hex
    ]
    return [{**d, "debtAsset": to_checksum_address(d["debtAsset"])} for d in decoded]


async def find_victim(sc: Scenario, manifest: Manifest) -> Victim:
    rpc = sc.chain.rpc
    reader = AaveV3Reader(
        Multicall(rpc, manifest.multicall3), manifest.aave.pool, manifest.aave.oracle
    )
    rows = await read_accounts(rpc, manifest, [b.address for b in manifest.borrowers])
    users = [r.user for r in rows if r.health_factor < WAD]
    assert users, "the WETH crash should make positions liquidatable"
    head = await sc.chain.block()
    block, ts = to_int(head["number"]), to_int(head["timestamp"]) + 12
    market = await reader.market(block, emode_ids=[e.id for e in manifest.emode_categories])
    states = await reader.users(users, market.tokens, block)
    coll = market.by_asset(manifest.reserve("WETH").address)
    found = []
    for user, state in states.items():
        c = state.reserves.get(coll.id)
        if c is None or not c.collateral_enabled or not c.scaled_atoken:
            continue
        for symbol in STABLES:
            debt = market.by_asset(manifest.reserve(symbol).address)
            d = state.reserves.get(debt.id)
            if d is None or not d.scaled_variable_debt or d.stable_debt_principal:
                continue
            hf = calculate_account_data(
                state.reserves, market.reserves, state.emode, market.emode_categories, ts
            ).health_factor
            if hf >= WAD:
                continue
            v = Victim(user, symbol, coll, debt, market, state, hf, ts)
            full = v.amounts(state, hf, MAX_UINT)
            # Far from taking all the collateral, so that a second step has some left.
            if full.collateral_to_liquidate < c.scaled_atoken // 2:
                value = full.actual_debt_to_liquidate * debt.price // 10**debt.config.decimals
                found.append((value, v))
    assert found, "no liquidatable WETH-collateral / stablecoin-debt position"
    # The largest liquidation: the clearest profit over the swap's price impact.
    return max(found, key=lambda f: f[0])[1]


@pytest_asyncio.fixture
async def setup(fork_scenario: Scenario, manifest: Manifest) -> Setup:
    sc = fork_scenario
    await sc.fund_eth(OWNER, 10**20)
    await sc.fund_eth(STRANGER, 10**20)
    liquidator = await deploy_liquidator(
        sc.chain, OWNER, manifest.aave.pool, manifest.uniswap.factory
    )
    assert to_checksum_address(await sc.chain.call(liquidator, LIQUIDATOR_ABI.fn("owner"))) == OWNER
    await sc.scale_price("WETH", 6_800)  # ETH -32%
    premium = await sc.chain.call(manifest.aave.pool, POOL.fn("FLASHLOAN_PREMIUM_TOTAL"))
    assert premium == 5
    victim = await find_victim(sc, manifest)
    return Setup(sc, manifest, liquidator, victim, premium)


async def call_output(s: Setup, receipt: dict[str, Any]) -> str:
    """The top-level return (or revert) data of a mined transaction."""
    trace = await s.sc.chain.rpc.call(
        "debug_traceTransaction", [receipt["transactionHash"], {"tracer": "callTracer"}]
    )
    return str(trace.get("output") or "0x")


def liquidation_events(s: Setup, receipt: dict[str, Any]) -> list[dict[str, Any]]:
    ev = POOL.event("LiquidationCall")
    return [
        ev.decode([bytes.fromhex(t[2:]) for t in lg["topics"]], bytes.fromhex(lg["data"][2:]))
        for lg in receipt["logs"]
        if lg["address"].lower() == s.manifest.aave.pool.lower()
        and lg["topics"][0] == ev.topic0_hex
    ]


async def user_state(s: Setup) -> UserState:
    reader = AaveV3Reader(
        Multicall(s.sc.chain.rpc, s.manifest.multicall3),
        s.manifest.aave.pool,
        s.manifest.aave.oracle,
    )
    block = await s.sc.chain.block_number()
    return (await reader.users([s.victim.user], s.victim.market.tokens, block))[s.victim.user]


async def allowance(s: Setup, token: str, owner: str, spender: str) -> int:
    value: int = await s.sc.chain.call(token, ERC20.fn("allowance"), owner, spender)
    return value


async def assert_empty(s: Setup) -> None:
    """Nothing left in the contract: no tokens, no allowance to the pool."""
    assert set((await s.holdings(s.liquidator)).values()) == {0}
    for r in s.manifest.reserves:
        assert await allowance(s, r.address, s.liquidator, s.manifest.aave.pool) == 0


async def test_only_the_owner_and_the_pool_get_in(setup: Setup) -> None:
    s, v = setup, setup.victim
    full = v.exact(v.state, v.health_factor, MAX_UINT)
    plan = plan_of(s, [(full.actual_debt_to_liquidate, full)], full.actual_debt_to_liquidate)
    for funded in (False, True):
        data = encode_liquidate(plan, 0, funded=funded)
        assert await revert_reason(s, STRANGER, s.liquidator, data) == "NotOwner()"
    sweep = LIQUIDATOR_ABI.fn("sweep").encode(s.debt_asset, STRANGER)
    assert await revert_reason(s, STRANGER, s.liquidator, sweep) == "NotOwner()"

    steps = [(s.weth, v.user, full.actual_debt_to_liquidate)]
    params = abi_encode(["(address,address,uint256)[]", "uint256", "uint256"], [steps, 0, 0])
    execute = LIQUIDATOR_ABI.fn("executeOperation").encode(
        s.debt_asset, full.actual_debt_to_liquidate, 10**6, s.liquidator, params
    )
    for caller in (STRANGER, OWNER):
        assert await revert_reason(s, caller, s.liquidator, execute) == "NotPool()"
    # Someone else's flash loan naming the liquidator as receiver: the pool is the caller,
    # but the liquidator did not ask for it.
    flash = POOL.fn("flashLoanSimple").encode(
        s.liquidator, s.debt_asset, full.actual_debt_to_liquidate, params, 0
    )
    assert await revert_reason(s, STRANGER, s.manifest.aave.pool, flash) == "BadInitiator()"

    receipt = await send(s, STRANGER, s.liquidator, encode_liquidate(plan, 0), ts=v.ts)
    assert to_int(receipt["status"]) == 0
    assert decode_revert(await call_output(s, receipt)) == "NotOwner()"
    assert await user_state(s) == v.state


async def test_owner_sweeps_tokens_and_eth(setup: Setup) -> None:
    s = setup
    await s.sc.fund(s.liquidator, "DAI", 12_345)
    await s.sc.chain.set_balance(s.liquidator, 6_789)
    dai_before = await s.sc.balance(STRANGER, "DAI")
    eth_before = to_int(await s.sc.chain.rpc.call("eth_getBalance", [STRANGER, "latest"]))
    sweep = LIQUIDATOR_ABI.fn("sweep")
    for token in (s.manifest.reserve("DAI").address, "0x" + "00" * 20):
        receipt = await send(s, OWNER, s.liquidator, sweep.encode(token, STRANGER))
        assert to_int(receipt["status"]) == 1
    assert await s.sc.balance(STRANGER, "DAI") == dai_before + 12_345
    eth_after = to_int(await s.sc.chain.rpc.call("eth_getBalance", [STRANGER, "latest"]))
    assert eth_after == eth_before + 6_789
    assert to_int(await s.sc.chain.rpc.call("eth_getBalance", [s.liquidator, "latest"])) == 0
    await assert_empty(s)


async def test_flash_liquidation_pays_the_exact_profit(setup: Setup) -> None:
    s, v = setup, setup.victim
    a = v.exact(v.state, v.health_factor, MAX_UINT)
    repay, seized = a.actual_debt_to_liquidate, a.collateral_to_liquidate
    weth_reserve, debt_reserve = await s.pair_reserves()
    profit = flash_profit(seized, repay, (weth_reserve, debt_reserve), s.premium_bps)
    assert profit > 0
    before = await s.holdings(OWNER)

    # min_profit = the exact profit: the tightest bound that still passes.
    plan = plan_of(s, [(repay, a)], repay)
    receipt = await send(s, OWNER, s.liquidator, encode_liquidate(plan, profit), ts=v.ts)
    assert to_int(receipt["status"]) == 1, decode_revert(await call_output(s, receipt))
    print(f"\ngas used, 1-step flash liquidation: {to_int(receipt['gasUsed'])}")

    after = await s.holdings(OWNER)
    assert after[v.debt_symbol] - before[v.debt_symbol] == profit
    assert {k: after[k] - before[k] for k in after if k != v.debt_symbol} == {
        k: 0 for k in after if k != v.debt_symbol
    }
    assert LIQUIDATOR_ABI.fn("liquidate").decode_one(await call_output(s, receipt)) == profit
    assert liquidated_events(s, receipt) == [
        {"debtAsset": s.debt_asset, "repaid": repay, "profit": profit}
    ]
    (event,) = liquidation_events(s, receipt)
    assert (event["debtToCover"], event["liquidatedCollateralAmount"]) == (repay, seized)
    assert await s.pair_reserves() == (
        weth_reserve + seized,
        debt_reserve - amount_out(seized, weth_reserve, debt_reserve),
    )
    assert await user_state(s) == v.after(v.state, a)
    await assert_empty(s)


async def test_unprofitable_call_reverts_and_costs_only_gas(setup: Setup) -> None:
    s, v = setup, setup.victim
    a = v.exact(v.state, v.health_factor, MAX_UINT)
    repay = a.actual_debt_to_liquidate
    weth_reserve, debt_reserve = await s.pair_reserves()
    profit = flash_profit(
        a.collateral_to_liquidate, repay, (weth_reserve, debt_reserve), s.premium_bps
    )
    owner_tokens, contract_tokens = await s.holdings(OWNER), await s.holdings(s.liquidator)
    eth_before = to_int(await s.sc.chain.rpc.call("eth_getBalance", [OWNER, "latest"]))

    plan = plan_of(s, [(repay, a)], repay)
    receipt = await send(s, OWNER, s.liquidator, encode_liquidate(plan, profit + 1), ts=v.ts)
    assert to_int(receipt["status"]) == 0
    assert decode_revert(await call_output(s, receipt)) == (
        f"InsufficientProfit(profit={profit}, min={profit + 1})"
    )
    assert await s.holdings(OWNER) == owner_tokens
    assert await s.holdings(s.liquidator) == contract_tokens
    assert await s.pair_reserves() == (weth_reserve, debt_reserve)
    assert await user_state(s) == v.state
    gas_paid = to_int(receipt["gasUsed"]) * to_int(receipt["effectiveGasPrice"])
    eth_after = to_int(await s.sc.chain.rpc.call("eth_getBalance", [OWNER, "latest"]))
    assert eth_after == eth_before - gas_paid


async def test_funded_liquidation_returns_amount_plus_profit(setup: Setup) -> None:
    s, v = setup, setup.victim
    a = v.exact(v.state, v.health_factor, MAX_UINT)
    repay, seized = a.actual_debt_to_liquidate, a.collateral_to_liquidate
    weth_reserve, debt_reserve = await s.pair_reserves()
    profit = amount_out(seized, weth_reserve, debt_reserve) - repay  # no flash premium
    assert profit > 0
    spare = 777  # the owner's other funds stay where they are
    await s.sc.fund(OWNER, v.debt_symbol, repay + spare)
    await s.sc.send(OWNER, s.debt_asset, ERC20.fn("approve"), s.liquidator, repay)
    before = await s.holdings(OWNER)

    plan = plan_of(s, [(repay, a)], repay)
    data = encode_liquidate(plan, profit, funded=True)
    receipt = await send(s, OWNER, s.liquidator, data, ts=v.ts)
    assert to_int(receipt["status"]) == 1, decode_revert(await call_output(s, receipt))
    print(f"\ngas used, 1-step funded liquidation: {to_int(receipt['gasUsed'])}")

    after = await s.holdings(OWNER)
    # The contract took `repay` and gave back `repay + profit`.
    assert after[v.debt_symbol] == before[v.debt_symbol] + profit
    assert after[v.debt_symbol] == repay + spare + profit
    assert LIQUIDATOR_ABI.fn("liquidateFunded").decode_one(await call_output(s, receipt)) == profit
    assert liquidated_events(s, receipt) == [
        {"debtAsset": s.debt_asset, "repaid": repay, "profit": profit}
    ]
    assert await allowance(s, s.debt_asset, OWNER, s.liquidator) == 0
    assert await user_state(s) == v.after(v.state, a)
    await assert_empty(s)


def kept_events(s: Setup, receipt: dict[str, Any]) -> list[dict[str, Any]]:
    ev = LIQUIDATOR_ABI.event("Kept")
    return [
        ev.decode([bytes.fromhex(t[2:]) for t in lg["topics"]], bytes.fromhex(lg["data"][2:]))
        for lg in receipt["logs"]
        if lg["address"].lower() == s.liquidator.lower() and lg["topics"][0] == ev.topic0_hex
    ]


async def test_keeping_hands_over_the_collateral_and_the_unspent_debt(setup: Setup) -> None:
    s, v = setup, setup.victim
    a = v.exact(v.state, v.health_factor, MAX_UINT)
    repay, seized = a.actual_debt_to_liquidate, a.collateral_to_liquidate
    extra, spare = 1_000, 777  # approved and taken, but not spent; never approved
    await s.sc.fund(OWNER, v.debt_symbol, repay + extra + spare)
    await s.sc.send(OWNER, s.debt_asset, ERC20.fn("approve"), s.liquidator, repay + extra)
    before, pools = await s.holdings(OWNER), await s.pair_reserves()

    plan = replace(plan_of(s, [(repay, a)], repay + extra), keep=True)
    receipt = await send(s, OWNER, s.liquidator, encode_liquidate(plan, seized), ts=v.ts)
    assert to_int(receipt["status"]) == 1, decode_revert(await call_output(s, receipt))
    print(f"\ngas used, 1-step keep liquidation: {to_int(receipt['gasUsed'])}")

    after = await s.holdings(OWNER)
    assert after[v.debt_symbol] == before[v.debt_symbol] - repay
    assert after["WETH"] == before["WETH"] + seized
    assert LIQUIDATOR_ABI.fn("liquidateKeeping").decode_one(await call_output(s, receipt)) == seized
    assert kept_events(s, receipt) == [
        {"debtAsset": s.debt_asset.lower(), "collateralAsset": s.weth.lower(),
         "repaid": repay, "seized": seized}
    ]  # fmt: skip
    assert liquidated_events(s, receipt) == []
    assert await s.pair_reserves() == pools  # nothing sold
    assert await allowance(s, s.debt_asset, OWNER, s.liquidator) == 0
    assert await user_state(s) == v.after(v.state, a)
    await assert_empty(s)


async def test_keeping_reverts_below_the_minimum_seizure(setup: Setup) -> None:
    s, v = setup, setup.victim
    a = v.exact(v.state, v.health_factor, MAX_UINT)
    repay, seized = a.actual_debt_to_liquidate, a.collateral_to_liquidate
    await s.sc.fund(OWNER, v.debt_symbol, repay)
    await s.sc.send(OWNER, s.debt_asset, ERC20.fn("approve"), s.liquidator, repay)
    before = await s.holdings(OWNER)
    plan = replace(plan_of(s, [(repay, a)], repay), keep=True)
    receipt = await send(s, OWNER, s.liquidator, encode_liquidate(plan, seized + 1), ts=v.ts)
    assert to_int(receipt["status"]) == 0
    assert decode_revert(await call_output(s, receipt)) == (
        f"InsufficientProfit(profit={seized}, min={seized + 1})"
    )
    assert await s.holdings(OWNER) == before
    assert await user_state(s) == v.state


async def test_keeping_takes_one_collateral_other_than_the_debt(setup: Setup) -> None:
    s, v = setup, setup.victim
    a = v.exact(v.state, v.health_factor, MAX_UINT)
    repay = a.actual_debt_to_liquidate
    plan = replace(plan_of(s, [(repay, a)], repay), keep=True)
    other = replace(plan.steps[0], collateral_asset=s.debt_asset)
    for steps in ((plan.steps[0], other), (other,)):
        data = encode_liquidate(replace(plan, steps=steps), 0)
        assert await revert_reason(s, OWNER, s.liquidator, data) == "NotOneCollateral()"
    data = encode_liquidate(replace(plan, keep=False), 0, funded=True)
    keep = encode_liquidate(plan, 0)
    assert data[:4] != keep[:4]
    assert await revert_reason(s, STRANGER, s.liquidator, keep) == "NotOwner()"


async def test_two_steps_on_one_user(setup: Setup) -> None:
    s, v = setup, setup.victim
    full = v.exact(v.state, v.health_factor, MAX_UINT)
    first = v.exact(v.state, v.health_factor, full.actual_debt_to_liquidate // 4)
    middle = v.after(v.state, first)
    hf_middle = v.health(middle)
    assert hf_middle < WAD, "the second step must still find the user liquidatable"
    second = v.exact(middle, hf_middle, MAX_UINT)
    repaid = first.actual_debt_to_liquidate + second.actual_debt_to_liquidate
    seized = first.collateral_to_liquidate + second.collateral_to_liquidate
    weth_reserve, debt_reserve = await s.pair_reserves()
    profit = flash_profit(seized, repaid, (weth_reserve, debt_reserve), s.premium_bps)
    assert profit > 0
    before = await s.holdings(OWNER)

    steps = [(first.actual_debt_to_liquidate, first), (second.actual_debt_to_liquidate, second)]
    receipt = await send(
        s, OWNER, s.liquidator, encode_liquidate(plan_of(s, steps, repaid), profit), ts=v.ts
    )
    assert to_int(receipt["status"]) == 1, decode_revert(await call_output(s, receipt))
    print(
        f"\ngas used, 2-step flash liquidation: {to_int(receipt['gasUsed'])}"
        f" (HF {v.health_factor / WAD:.4f} -> {hf_middle / WAD:.4f},"
        f" close factor {'50' if hf_middle > CLOSE_FACTOR_HF_THRESHOLD else '100'}% on step 2)"
    )

    after = await s.holdings(OWNER)
    assert after[v.debt_symbol] - before[v.debt_symbol] == profit
    assert liquidated_events(s, receipt) == [
        {"debtAsset": s.debt_asset, "repaid": repaid, "profit": profit}
    ]
    events = liquidation_events(s, receipt)
    assert [(e["debtToCover"], e["liquidatedCollateralAmount"]) for e in events] == [
        (first.actual_debt_to_liquidate, first.collateral_to_liquidate),
        (second.actual_debt_to_liquidate, second.collateral_to_liquidate),
    ]
    assert await user_state(s) == v.after(middle, second)
    await assert_empty(s)


async def test_capped_step_leaves_the_unspent_loan_as_profit(setup: Setup) -> None:
    """debtToCover above what the pool may take (here uint256 max): the pool takes the
    close-factor amount, and the rest of the loan only costs its premium."""
    s, v = setup, setup.victim
    a = v.exact(v.state, v.health_factor, MAX_UINT)
    repay, seized = a.actual_debt_to_liquidate, a.collateral_to_liquidate
    flash = repay + repay // 10
    weth_reserve, debt_reserve = await s.pair_reserves()
    profit = flash_profit(seized, flash, (weth_reserve, debt_reserve), s.premium_bps) + (
        flash - repay
    )
    before = await s.holdings(OWNER)

    plan = plan_of(s, [(MAX_UINT, a)], flash)
    receipt = await send(s, OWNER, s.liquidator, encode_liquidate(plan, profit), ts=v.ts)
    assert to_int(receipt["status"]) == 1, decode_revert(await call_output(s, receipt))

    after = await s.holdings(OWNER)
    assert after[v.debt_symbol] - before[v.debt_symbol] == profit
    assert liquidated_events(s, receipt) == [
        {"debtAsset": s.debt_asset, "repaid": repay, "profit": profit}
    ]
    (event,) = liquidation_events(s, receipt)
    assert (event["debtToCover"], event["liquidatedCollateralAmount"]) == (repay, seized)
    await assert_empty(s)
