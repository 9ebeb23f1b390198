"""A real liquidationCall on the fork moves exactly what Aave's formula says, to the wei."""

from __future__ import annotations

import pytest

from bot.abi import load_abi
from bot.adapters.aave_v3.health import (
    CLOSE_FACTOR_HF_THRESHOLD,
    calculate_account_data,
    liquidation_amounts,
    normalized_income,
)
from bot.adapters.aave_v3.math import ray_div
from bot.adapters.aave_v3.reader import AaveV3Reader
from bot.devnet.manifest import Manifest
from bot.devnet.report import read_accounts
from bot.devnet.scenario import Scenario
from bot.multicall import Multicall
from bot.rpc import to_int

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
WAD = 10**18
MAX_UINT = 2**256 - 1
POOL = load_abi("Pool")
ERC20 = load_abi("ERC20")
ATOKEN = load_abi("AToken")
LIQUIDATOR = "0x000000000000000000000000000000000000dEaD"


async def test_liquidation_call_matches_formula(
    fork_scenario: Scenario, manifest: Manifest
) -> None:
    sc = fork_scenario
    rpc = sc.chain.rpc
    reader = AaveV3Reader(
        Multicall(rpc, manifest.multicall3), manifest.aave.pool, manifest.aave.oracle
    )
    emode_ids = [e.id for e in manifest.emode_categories]
    await sc.scale_price("WETH", 6_800)  # ETH -32%
    await sc.scale_price("WBTC", 8_000)  # BTC -20%
    await sc.fund_eth(LIQUIDATOR, 10**20)

    rows = await read_accounts(rpc, manifest, [b.address for b in manifest.borrowers])
    victims = sorted((r for r in rows if r.health_factor < WAD), key=lambda r: r.health_factor)
    assert len(victims) >= 5, "the crash should make several positions liquidatable"

    seen = {"close_factor_50": 0, "close_factor_100": 0, "collateral_capped": 0, "protocol_fee": 0}
    checked = 0
    for victim in victims:
        head = await sc.chain.block()
        block, ts = to_int(head["number"]), to_int(head["timestamp"]) + 12
        market = await reader.market(block, emode_ids=emode_ids)
        user = (await reader.users([victim.user], market.tokens, block))[victim.user]
        # Our exact account data at the head equals the chain's view.
        at_head = calculate_account_data(
            user.reserves,
            market.reserves,
            user.emode,
            market.emode_categories,
            to_int(head["timestamp"]),
        )
        assert at_head.health_factor == victim.health_factor
        assert at_head.total_debt_base == victim.total_debt_base
        account = calculate_account_data(
            user.reserves, market.reserves, user.emode, market.emode_categories, ts
        )

        collaterals = [
            i for i, u in user.reserves.items() if u.collateral_enabled and u.scaled_atoken
        ]
        debts = [i for i, u in user.reserves.items() if u.scaled_variable_debt]
        for c in collaterals:
            for d in debts:
                if c == d:
                    continue
                coll, debt = market.reserves[c], market.reserves[d]
                expected = liquidation_amounts(
                    health_factor=account.health_factor,
                    collateral_reserve=coll,
                    debt_reserve=debt,
                    user_collateral=user.reserves[c],
                    user_debt=user.reserves[d],
                    user_emode=user.emode,
                    emode_categories=market.emode_categories,
                    debt_to_cover=MAX_UINT,
                    ts=ts,
                )
                snap = await sc.snapshot()
                try:
                    got = await _liquidate(
                        sc, manifest, victim.user, coll.asset, debt.asset, ts, expected[0]
                    )
                finally:
                    await sc.revert(snap)
                debt_repaid, collateral_received, treasury_scaled, event = got
                assert debt_repaid == expected.actual_debt_to_liquidate
                assert collateral_received == expected.collateral_to_liquidate
                assert treasury_scaled == ray_div(
                    expected.liquidation_protocol_fee_amount, normalized_income(coll, ts)
                )
                assert event["debtToCover"] == expected.actual_debt_to_liquidate
                assert event["liquidatedCollateralAmount"] == expected.collateral_to_liquidate
                checked += 1
                half = account.health_factor > CLOSE_FACTOR_HF_THRESHOLD
                seen["close_factor_50" if half else "close_factor_100"] += 1
                seen["protocol_fee"] += expected.liquidation_protocol_fee_amount > 0
                full_debt = await _total_debt(
                    sc, market.tokens[d].variable_debt_token, victim.user, block
                )
                capped = (
                    expected.actual_debt_to_liquidate
                    < full_debt * (5_000 if half else 10_000) // 10_000 - 1
                )
                seen["collateral_capped"] += capped
        if checked >= 10 and all(seen.values()):
            break
    assert all(seen.values()), f"cases not covered: {seen}"


async def _total_debt(sc: Scenario, vtoken: str, user: str, block: int) -> int:
    value: int = await sc.chain.call(vtoken, ERC20.fn("balanceOf"), user, block=block)
    return value


async def _liquidate(
    sc: Scenario,
    manifest: Manifest,
    user: str,
    collateral: str,
    debt: str,
    ts: int,
    debt_needed: int,
) -> tuple[int, int, int, dict[str, object]]:
    """liquidationCall at timestamp ``ts``; returns (debt repaid, collateral received,
    treasury scaled aToken gained, decoded LiquidationCall event)."""
    debt_sym = next(r.symbol for r in manifest.reserves if r.address.lower() == debt.lower())
    coll_info = next(r for r in manifest.reserves if r.address.lower() == collateral.lower())
    funded = debt_needed * 2 + 10
    await sc.fund(LIQUIDATOR, debt_sym, funded)
    await sc.send(LIQUIDATOR, debt, ERC20.fn("approve"), manifest.aave.pool, MAX_UINT)
    coll_before = await sc.chain.call(collateral, ERC20.fn("balanceOf"), LIQUIDATOR)
    debt_before = await sc.chain.call(debt, ERC20.fn("balanceOf"), LIQUIDATOR)
    treasury = manifest.aave.treasury
    tre_before = await sc.chain.call(coll_info.a_token, ATOKEN.fn("scaledBalanceOf"), treasury)
    await sc.chain.set_next_timestamp(ts)
    receipt = await sc.send(
        LIQUIDATOR,
        manifest.aave.pool,
        POOL.fn("liquidationCall"),
        collateral,
        debt,
        user,
        MAX_UINT,
        False,
    )
    assert to_int((await sc.chain.block(to_int(receipt["blockNumber"])))["timestamp"]) == ts
    ev = POOL.event("LiquidationCall")
    (log,) = [lg for lg in receipt["logs"] if lg["topics"][0] == ev.topic0_hex]
    event = ev.decode([bytes.fromhex(t[2:]) for t in log["topics"]], bytes.fromhex(log["data"][2:]))
    coll_after = await sc.chain.call(collateral, ERC20.fn("balanceOf"), LIQUIDATOR)
    debt_after = await sc.chain.call(debt, ERC20.fn("balanceOf"), LIQUIDATOR)
    tre_after = await sc.chain.call(coll_info.a_token, ATOKEN.fn("scaledBalanceOf"), treasury)
    return debt_before - debt_after, coll_after - coll_before, tre_after - tre_before, event
