"""Morpho Blue parity with the real contract (compiled from the pinned sources) on anvil.

The indexed state equals ``market(id)`` / ``position(id, user)`` field for field after
seeding and after random activity of every kind; our accrual at a later timestamp equals
the chain's after ``accrueInterest``; our health verdict for every borrower equals whether
``liquidate`` succeeds under ``eth_call``; our liquidation amounts (both directions, and bad
debt) equal a real ``liquidate``'s to the wei; a restart from the store resumes exactly.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from morpho_parity import (
    MORPHO,
    assert_parity,
    chain_markets,
    chain_positions,
    make_indexer,
    snapshot,
)

from bot.abi import load_abi
from bot.adapters.morpho_blue.events import ALL_TOPICS, LIQUIDATION_KIND, T_LIQUIDATE
from bot.adapters.morpho_blue.indexing import MorphoBlueIndexing
from bot.adapters.morpho_blue.math import (
    MAX_FEE,
    WAD,
    Liquidation,
    accrue_interest,
    borrowed_assets,
    irm_mock_rate,
    is_healthy,
    liquidate,
    max_borrow,
)
from bot.adapters.morpho_blue.types import Position
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.devnet import Devnet, DevnetSpec, start_devnet
from bot.devnet.manifest import Manifest, MorphoInfo, MorphoMarketInfo
from bot.devnet.scenario import Scenario
from bot.errors import ExecutionReverted
from bot.indexer.indexer import Indexer
from bot.indexer.store import Store
from bot.rpc import JsonRpcClient, to_int

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]
ERC20 = load_abi("ERC20")
MAX = 2**256 - 1
LIQUIDATOR = "0x00000000000000000000000000000000000b0001"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def morpho_net() -> AsyncIterator[Devnet]:
    """Its own Morpho devnet, not the session's: the random activity below draws amounts
    from positions that other modules' liquidations would leave as dust, and it needs
    the deployment's own history for the restart parity."""
    net = await start_devnet(DevnetSpec(borrowers=0, morpho=True))
    try:
        yield net
    finally:
        net.stop()


@pytest_asyncio.fixture
async def rpc(morpho_net: Devnet) -> AsyncIterator[JsonRpcClient]:
    async with JsonRpcClient(morpho_net.url) as client, AnvilRpc(client).isolated():
        yield client


def _info(net: Devnet) -> MorphoInfo:
    assert net.manifest.morpho is not None
    return net.manifest.morpho


class Actor:
    """Sends Morpho transactions as impersonated accounts, funding them as needed."""

    def __init__(self, rpc: JsonRpcClient, manifest: Manifest) -> None:
        self.sc = Scenario(rpc, manifest)
        self.chain = self.sc.chain
        self.manifest = manifest
        assert manifest.morpho is not None
        self.info = manifest.morpho
        self.morpho = manifest.morpho.morpho

    async def fund(self, who: str, symbol: str, amount: int) -> None:
        await self.sc.fund_eth(who, 10**19)
        await self.sc.fund(who, symbol, amount)
        token = self.manifest.reserve(symbol).address
        await self.sc.send(who, token, ERC20.fn("approve"), self.morpho, MAX)

    async def fund_liquidator(self, m: MorphoMarketInfo) -> None:
        """A billion units of the market's loan token, approved to Morpho."""
        decimals = self.manifest.reserve(m.loan_symbol).decimals
        await self.fund(LIQUIDATOR, m.loan_symbol, 10 ** (decimals + 9))

    async def act(self, who: str, fn: str, *args: object) -> dict[str, Any]:
        return await self.sc.send(who, self.morpho, MORPHO.fn(fn), *args)


async def _timestamp(rpc: JsonRpcClient, block: int | str = "latest") -> int:
    ref = hex(block) if isinstance(block, int) else block
    return to_int((await rpc.call("eth_getBlockByNumber", [ref, False]))["timestamp"])


NEWCOMERS = tuple(f"0x{0xC0000 + i:040x}" for i in range(4))
RECIPIENTS = tuple(f"0x{0xFEE000 + i:040x}" for i in range(3))
EXTRA_USERS = (*NEWCOMERS, *RECIPIENTS, LIQUIDATOR)


async def _random_activity(
    a: Actor, indexer: Indexer, protocol: MorphoBlueIndexing, rng: random.Random, steps: int
) -> None:
    """Every user and owner action Morpho has, drawn at random; amounts come from the
    indexed state so that each transaction is valid. Parity is checked along the way."""
    info, book = a.info, protocol.book
    newcomers = list(NEWCOMERS)
    ops = ("borrow", "repay", "repay_all", "add", "remove", "lp", "time", "fee", "recipient", "new")
    for step in range(steps):
        m = rng.choice(info.markets)
        p = m.params.as_tuple()
        ms = book.market(m.id)
        price = await a.sc.morpho_price(m.id)
        who = rng.choice(sorted(book.borrowers(m.id)))
        pos = book.position(m.id, who)
        op = ops[step] if step < len(ops) else rng.choice(ops)  # each at least once
        if op == "borrow":
            room = max_borrow(pos, price, m.lltv) - borrowed_assets(pos, ms.market)
            if room > 10:
                await a.act(who, "borrow", p, room // 10, 0, who, who)
        elif op == "repay":
            owed = borrowed_assets(pos, ms.market)
            await a.fund(who, m.loan_symbol, owed)
            await a.act(who, "repay", p, owed // 3 + 1, 0, who, b"")
        elif op == "repay_all":
            await a.fund(who, m.loan_symbol, 2 * borrowed_assets(pos, ms.market) + 10)
            await a.act(who, "repay", p, 0, pos.borrow_shares, who, b"")
        elif op == "add":
            amount = pos.collateral // rng.randint(2, 20) + 1
            await a.fund(who, m.collateral_symbol, amount)
            await a.act(who, "supplyCollateral", p, amount, who, b"")
        elif op == "remove":
            limit = max_borrow(pos, price, m.lltv)
            used = pos.collateral * borrowed_assets(pos, ms.market) // max(limit, 1)
            if pos.collateral - used > 10:
                await a.act(who, "withdrawCollateral", p, (pos.collateral - used) // 5, who, who)
        elif op == "lp":
            lp = info.liquidity_provider
            await a.fund(lp, m.loan_symbol, 10**12)
            await a.act(lp, "supply", p, rng.randint(1, 10**12), 0, lp, b"")
            shares = book.position(m.id, lp.lower()).supply_shares
            await a.act(lp, "withdraw", p, 0, shares // rng.randint(50, 200), lp, lp)
        elif op == "time":
            await a.chain.increase_time(rng.randint(600, 5 * 86_400))
            await a.act(a.manifest.deployer, "accrueInterest", p)
        elif op == "fee":
            new_fee = rng.randrange(10**15, MAX_FEE, 10**15)
            if new_fee != ms.market.fee:
                await a.act(info.owner, "setFee", p, new_fee)
        elif op == "recipient":
            new = next(r for r in RECIPIENTS[step % 2 :] if r != book.fee_recipient)
            await a.act(info.owner, "setFeeRecipient", new)
        elif newcomers:
            newcomer = newcomers.pop()
            collateral = 10 ** a.manifest.reserve(m.collateral_symbol).decimals
            await a.fund(newcomer, m.collateral_symbol, collateral)
            await a.act(newcomer, "supplyCollateral", p, collateral, newcomer, b"")
            limit = max_borrow(Position(collateral=collateral), price, m.lltv)
            await a.act(newcomer, "borrow", p, limit // 2, 0, newcomer, newcomer)
        if step % 6 == 5:
            report = await indexer.sync()
            await assert_parity(a.chain.rpc, info, protocol, report.head.number, EXTRA_USERS)


async def _liquidation_event(receipt: dict[str, Any]) -> tuple[int, ...]:
    """(repaidAssets, repaidShares, seizedAssets, badDebtAssets, badDebtShares)."""
    (log,) = [lg for lg in receipt["logs"] if lg["topics"][0] == T_LIQUIDATE]
    data = log["data"][2:]
    return tuple(int(data[64 * i : 64 * (i + 1)], 16) for i in range(5))


async def _predict_and_liquidate(
    a: Actor,
    protocol: MorphoBlueIndexing,
    m: MorphoMarketInfo,
    borrower: str,
    *,
    seized: int = 0,
    shares: int = 0,
) -> tuple[Liquidation, tuple[int, ...]]:
    """Our prediction at the next block's timestamp, and the real liquidation's event; the
    chain's market and position afterwards must be our predicted ones."""
    rpc = a.chain.rpc
    ts = await _timestamp(rpc) + 12
    await a.chain.set_next_timestamp(ts)
    ms = protocol.book.market(m.id)
    accrued = accrue_interest(ms.market, ts, irm_mock_rate).market
    price = await a.sc.morpho_price(m.id)
    pos = protocol.book.position(m.id, borrower)
    ours = liquidate(accrued, pos, price, m.lltv, seized_assets=seized, repaid_shares=shares)
    receipt = await a.act(
        LIQUIDATOR, "liquidate", m.params.as_tuple(), borrower, seized, shares, b""
    )
    block = to_int(receipt["blockNumber"])
    assert await _timestamp(rpc, block) == ts
    assert (await chain_markets(rpc, a.info, block))[m.id] == ours.market
    assert (await chain_positions(rpc, a.morpho, [(m.id, borrower)], block))[
        (m.id, borrower)
    ] == ours.position
    return ours, await _liquidation_event(receipt)


async def test_parity_after_seeding_activity_and_restart(
    rpc: JsonRpcClient, morpho_net: Devnet, tmp_path: Path
) -> None:
    info = _info(morpho_net)
    a = Actor(rpc, morpho_net.manifest)
    store_path = tmp_path / "morpho.sqlite"
    indexer, protocol = make_indexer(rpc, info, store=Store(store_path))
    report = await indexer.sync()
    await assert_parity(rpc, info, protocol, report.head.number)
    book = protocol.book
    assert len(book.markets) == 3
    assert {m.lltv for m in info.markets} == {77 * WAD // 100, 86 * WAD // 100, 915 * WAD // 1000}
    assert sum(len(book.borrowers(m.id)) for m in info.markets) == len(info.borrowers) == 36

    await _random_activity(a, indexer, protocol, random.Random(11), steps=36)

    # A liquidation inside the indexed history: the most indebted borrower of a market,
    # after a 30% collateral price drop.
    m = info.markets[1]
    await a.sc.scale_morpho_price(m.id, 7_000)
    await a.fund_liquidator(m)
    victim = max(book.borrowers(m.id), key=lambda u: book.position(m.id, u).borrow_shares)
    await _predict_and_liquidate(
        a, protocol, m, victim, seized=book.position(m.id, victim).collateral // 4
    )

    await a.chain.mine(3)  # past the confirmation depth
    report = await indexer.sync()
    # The blocks this head brought are stored once a second answer agreed: the next's.
    await a.chain.mine(1)
    await indexer.sync()
    await assert_parity(rpc, info, protocol, report.head.number, EXTRA_USERS)
    # Every event kind the indexer decodes occurred, and fees went to a recipient set
    # during the activity (its shares came from resolved AccrueInterest effects).
    logs = await rpc.call(
        "eth_getLogs",
        [{"address": info.morpho, "fromBlock": hex(info.deploy_block), "toBlock": "latest"}],
    )
    assert set(ALL_TOPICS) <= {lg["topics"][0] for lg in logs}
    assert any(book.position(m.id, r).supply_shares for m in info.markets for r in RECIPIENTS)
    records = indexer.store.events(LIQUIDATION_KIND)
    assert [r.payload for r in records] and victim in records[0].payload

    # Restart: a new indexer on the same database holds the same state before it syncs
    # (the tip was only the three empty blocks), and after.
    live = snapshot(protocol.book)
    indexer.store.close()
    again, protocol2 = make_indexer(rpc, info, store=Store(store_path))
    assert snapshot(protocol2.book) == live
    report = await again.sync()
    assert snapshot(protocol2.book) == live
    await assert_parity(rpc, info, protocol2, report.head.number, EXTRA_USERS)
    again.store.close()


async def test_accrued_totals_equal_the_chain_after_accrue_interest(
    rpc: JsonRpcClient, morpho_net: Devnet
) -> None:
    info = _info(morpho_net)
    a = Actor(rpc, morpho_net.manifest)
    indexer, protocol = make_indexer(rpc, info)
    await indexer.sync()
    start = await _timestamp(rpc)
    for k, m in enumerate(info.markets):
        # 9 days and some seconds later, a different span per market.
        ts = start + 9 * 86_400 + 1_000 * k + 7
        ours = accrue_interest(protocol.book.market(m.id).market, ts, irm_mock_rate)
        assert ours.interest > 0
        recipient = protocol.book.fee_recipient
        before = protocol.book.position(m.id, recipient).supply_shares
        await a.chain.set_next_timestamp(ts)
        receipt = await a.act(a.manifest.deployer, "accrueInterest", m.params.as_tuple())
        block = to_int(receipt["blockNumber"])
        assert (await chain_markets(rpc, info, block))[m.id] == ours.market
        (log,) = receipt["logs"]
        words = [int(log["data"][2 + 64 * i : 66 + 64 * i], 16) for i in range(3)]
        assert words == [ours.borrow_rate, ours.interest, ours.fee_shares]
        fee_pos = (await chain_positions(rpc, info.morpho, [(m.id, recipient)], block))[
            (m.id, recipient)
        ]
        assert fee_pos.supply_shares == before + ours.fee_shares
        assert (ours.fee_shares > 0) == (m.fee > 0)
    report = await indexer.sync()
    await assert_parity(rpc, info, protocol, report.head.number)


async def test_health_verdicts_equal_liquidate_simulations(
    rpc: JsonRpcClient, morpho_net: Devnet
) -> None:
    info = _info(morpho_net)
    a = Actor(rpc, morpho_net.manifest)
    indexer, protocol = make_indexer(rpc, info)
    for m, bps in zip(info.markets, (8_500, 7_500, 9_000), strict=True):
        await a.sc.scale_morpho_price(m.id, bps)
        await a.fund_liquidator(m)
    await a.chain.increase_time(3 * 86_400)  # interest pushes some over the line as well
    await a.chain.mine(1)
    report = await indexer.sync()
    ts = report.head.timestamp
    verdicts: dict[bool, int] = {True: 0, False: 0}
    for m in info.markets:
        ms = protocol.book.market(m.id)
        market = accrue_interest(ms.market, ts, irm_mock_rate).market
        price = await a.sc.morpho_price(m.id)
        liq = MORPHO.fn("liquidate")
        for user in protocol.book.borrowers(m.id):
            ours = not is_healthy(protocol.book.position(m.id, user), market, price, m.lltv)
            data = liq.encode_hex(m.params.as_tuple(), user, 1, 0, b"")
            try:
                await rpc.call(
                    "eth_call", [{"from": LIQUIDATOR, "to": info.morpho, "data": data}, "latest"]
                )
                chain = True
            except ExecutionReverted as e:
                assert "position is healthy" in str(e), str(e)
                chain = False
            assert ours == chain, f"{user} in {m.id}: ours {ours}, chain {chain}"
            verdicts[ours] += 1
    # The seeding puts a third of the borrowers within 10% of their limit.
    assert verdicts[True] >= 5 and verdicts[False] >= 10, verdicts


async def test_liquidation_amounts_equal_the_chain_to_the_wei(
    rpc: JsonRpcClient, morpho_net: Devnet
) -> None:
    info = _info(morpho_net)
    a = Actor(rpc, morpho_net.manifest)
    indexer, protocol = make_indexer(rpc, info)
    book = protocol.book
    for m in info.markets:
        await a.fund_liquidator(m)
    cases = 0
    for m, bps in zip(info.markets, (8_000, 7_000, 8_500), strict=True):
        await a.sc.scale_morpho_price(m.id, bps)
        await indexer.sync()
        ts = await _timestamp(rpc) + 12
        price = await a.sc.morpho_price(m.id)
        market = accrue_interest(book.market(m.id).market, ts, irm_mock_rate).market
        victims = sorted(
            u
            for u in book.borrowers(m.id)
            if not is_healthy(book.position(m.id, u), market, price, m.lltv)
        )
        assert len(victims) >= 2, f"the drop should leave two victims in {m.id}"
        # seizedAssets given: the chain computes repaidShares and repaidAssets.
        seized = book.position(m.id, victims[0]).collateral // 3
        ours, event = await _predict_and_liquidate(a, protocol, m, victims[0], seized=seized)
        assert event == (ours.repaid_assets, ours.repaid_shares, seized, 0, 0)
        await indexer.sync()
        # repaidShares given: the chain computes seizedAssets.
        shares = book.position(m.id, victims[1]).borrow_shares // 2
        ours, event = await _predict_and_liquidate(a, protocol, m, victims[1], shares=shares)
        assert event == (ours.repaid_assets, shares, ours.seized_assets, 0, 0)
        cases += 2
        report = await indexer.sync()
        await assert_parity(rpc, info, protocol, report.head.number, (LIQUIDATOR,))

    # Bad debt: halve a price and take all of the most indebted borrower's collateral.
    m = info.market("DAI", "WETH")
    await a.sc.scale_morpho_price(m.id, 5_000)
    await indexer.sync()
    victim = max(book.borrowers(m.id), key=lambda u: book.position(m.id, u).borrow_shares)
    pos = book.position(m.id, victim)
    ours, event = await _predict_and_liquidate(a, protocol, m, victim, seized=pos.collateral)
    assert ours.bad_debt_shares > 0 and ours.position == Position()
    assert event == (
        ours.repaid_assets,
        ours.repaid_shares,
        pos.collateral,
        ours.bad_debt_assets,
        ours.bad_debt_shares,
    )
    report = await indexer.sync()
    await assert_parity(rpc, info, protocol, report.head.number, (LIQUIDATOR,))
    assert cases == 6


async def test_manifest_round_trips_and_old_manifests_still_load(
    morpho_net: Devnet, tmp_path: Path
) -> None:
    m = morpho_net.manifest
    m.save(tmp_path / "new.json")
    assert Manifest.load(tmp_path / "new.json") == m
    # A manifest written before Morpho existed has no "morpho" key.
    old = json.loads((tmp_path / "new.json").read_text())
    del old["morpho"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = Manifest.load(tmp_path / "old.json")
    assert loaded.morpho is None
    assert loaded == m.model_copy(update={"morpho": None})
    info = _info(morpho_net)
    assert [mk.params.id for mk in info.markets] == [mk.id for mk in info.markets]
