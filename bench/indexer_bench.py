"""Indexer and health-factor benchmark against on-chain baselines, all in one run.

Usage: .venv/bin/python bench/indexer_bench.py [--borrowers 2000] [--big 100000] [--json out.json]

On a fresh devnet with N borrowers it measures, side by side (the machine is noisy, so
compare the ratios):

* health factors/s — liqbot exact (compiled kernel, and the pure-Python AccountEvaluator)
  and screening (numpy Screener), at N
  real positions and at ``--big`` positions (the real ones replicated), next to the chain's
  ``getUserAccountData`` by raw JSON-RPC batch and by web3.py per call;
* backfill logs/s — liqbot's indexer (fetch + decode + apply + commit), next to web3.py's
  ``contract.events.X.get_logs`` and the raw ``eth_getLogs`` fetch with JSON parsing only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from timing import best_of, best_of_async
from web3 import AsyncHTTPProvider, AsyncWeb3

from bot.abi import load_abi
from bot.adapters.aave_v3.adapter import AaveV3Adapter, AaveV3Market
from bot.adapters.aave_v3.evaluator import AccountEvaluator
from bot.adapters.aave_v3.kernel import PackedBook
from bot.adapters.aave_v3.screening import Screener
from bot.adapters.aave_v3.state import UserPosition
from bot.devnet.devnet import DevnetSpec, start_devnet
from bot.indexer.indexer import Indexer, IndexerSettings
from bot.indexer.store import Store
from bot.rpc import JsonRpcClient


async def main(borrowers: int, big: int, out: str | None) -> None:
    net = await start_devnet(DevnetSpec(borrowers=borrowers))
    results: dict[str, float] = {}
    try:
        m = net.manifest
        async with JsonRpcClient(net.url) as rpc:
            head = int(await rpc.call("eth_blockNumber"), 16)
            market_cfg = AaveV3Market(m.aave.pool_addresses_provider, m.multicall3, m.deploy_block)

            # -- backfill --------------------------------------------------------------
            async def liqbot_backfill() -> Indexer:
                adapter = await AaveV3Adapter.connect(rpc, market_cfg, head)
                ix = Indexer(
                    rpc,
                    adapter.indexing,
                    Store(":memory:"),
                    IndexerSettings(start_block=m.deploy_block, confirmations=0),
                )
                await ix.sync(head)
                return ix

            ix = await liqbot_backfill()
            n_logs = ix.logs_seen
            flt = ix.fetcher.filter
            params = {
                "fromBlock": hex(m.deploy_block),
                "toBlock": hex(head),
                "address": list(flt.addresses),
                "topics": [list(flt.topics0)],
            }
            results["logs"] = n_logs
            results["backfill_liqbot"] = n_logs / await best_of_async(3, liqbot_backfill)
            results["backfill_raw_fetch"] = n_logs / await best_of_async(
                3, lambda: rpc.call("eth_getLogs", [params])
            )
            w3 = AsyncWeb3(AsyncHTTPProvider(net.url))
            contracts = [
                (
                    m.aave.pool,
                    "Pool",
                    (
                        "Supply",
                        "Withdraw",
                        "Borrow",
                        "Repay",
                        "LiquidationCall",
                        "ReserveUsedAsCollateralEnabled",
                        "ReserveUsedAsCollateralDisabled",
                        "UserEModeSet",
                        "ReserveDataUpdated",
                    ),
                )
            ]
            for r in m.reserves:
                contracts += [
                    (r.a_token, "AToken", ("Mint", "Burn", "BalanceTransfer")),
                    (r.variable_debt_token, "VariableDebtToken", ("Mint", "Burn")),
                    (r.stable_debt_token, "StableDebtToken", ("Mint", "Burn")),
                ]

            async def web3_decode() -> int:
                total = 0
                for address, abi_name, events in contracts:
                    c = w3.eth.contract(address=address, abi=load_abi(abi_name).json)
                    for ev in events:
                        got = await getattr(c.events, ev).get_logs(
                            from_block=m.deploy_block, to_block=head
                        )
                        total += len(got)
                return total

            web3_logs = await web3_decode()
            results["backfill_web3"] = web3_logs / await best_of_async(1, web3_decode)
            await w3.provider.disconnect()

            # -- health factors ----------------------------------------------------------
            adapter = ix.protocol
            book = adapter.book  # type: ignore[attr-defined]
            users = [b.address for b in m.borrowers]
            a2 = await AaveV3Adapter.connect(rpc, market_cfg, head)
            a2.indexing.book = book
            market = await a2.market(head)
            ts = int((await rpc.call("eth_getBlockByNumber", [hex(head), False]))["timestamp"], 16)
            pool_fn = load_abi("Pool").fn("getUserAccountData")
            calls = [
                ("eth_call", [{"to": m.aave.pool, "data": pool_fn.encode_hex(u)}, hex(head)])
                for u in users
            ]
            results["hf_chain_raw_batch"] = len(users) / await best_of_async(
                3, lambda: rpc.batch_strict(calls)
            )
            w3 = AsyncWeb3(AsyncHTTPProvider(net.url))
            pool = w3.eth.contract(address=m.aave.pool, abi=load_abi("Pool").json)
            sample = users[:300]

            async def web3_calls() -> None:
                for u in sample:
                    await pool.functions.getUserAccountData(u).call(block_identifier=head)

            results["hf_chain_web3"] = len(sample) / await best_of_async(1, web3_calls)
            await w3.provider.disconnect()

        positions = {u: p for u, p in book.users.items()}
        evaluator = AccountEvaluator(market, ts)
        results["hf_exact_n"] = len(positions) / best_of(
            5, lambda: evaluator.evaluate_many(positions)
        )
        many: dict[str, UserPosition] = {}
        real = list(positions.values())
        for i in range(big):
            many[f"{i:040x}"] = real[i % len(real)]
        results["hf_exact_big"] = big / best_of(3, lambda: evaluator.evaluate_many(many))
        packed_n, packed_big = PackedBook(positions), PackedBook(many)
        results["hf_kernel_n"] = len(positions) / best_of(5, lambda: packed_n.evaluate(market, ts))
        results["hf_kernel_big"] = big / best_of(5, lambda: packed_big.evaluate(market, ts))

        def kernel_as_ints() -> list[int]:
            batch = packed_big.evaluate(market, ts)
            return [batch.health_factor(i) for i in range(len(batch))]

        results["hf_kernel_ints_big"] = big / best_of(3, kernel_as_ints)
        ids = list(market.reserves)
        screener_n = Screener(positions, ids)
        screener_big = Screener(many, ids)
        results["hf_screen_n"] = len(positions) / best_of(
            5, lambda: screener_n.candidates(market, ts)
        )
        results["hf_screen_big"] = big / best_of(5, lambda: screener_big.candidates(market, ts))
    finally:
        net.stop()

    raw = results["hf_chain_raw_batch"]
    print(f"\n## Health factors/s ({borrowers:,} real positions; {big:,} = replicated)\n")
    print("| method | positions | per second | vs raw JSON-RPC batch |")
    print("|---|---:|---:|---:|")
    for label, key, n in (
        ("chain: web3.py per call", "hf_chain_web3", 300),
        ("chain: raw JSON-RPC batch of getUserAccountData", "hf_chain_raw_batch", borrowers),
        ("liqbot exact, pure Python (integer, to the wei)", "hf_exact_n", borrowers),
        ("liqbot exact, pure Python (integer, to the wei)", "hf_exact_big", big),
        ("liqbot exact, compiled kernel (256-bit, to the wei)", "hf_kernel_n", borrowers),
        ("liqbot exact, compiled kernel (256-bit, to the wei)", "hf_kernel_big", big),
        ("liqbot exact, kernel + every HF as a Python int", "hf_kernel_ints_big", big),
        ("liqbot screening (numpy float64)", "hf_screen_n", borrowers),
        ("liqbot screening (numpy float64)", "hf_screen_big", big),
    ):
        print(f"| {label} | {n:,} | {results[key]:,.0f} | {results[key] / raw:,.1f}× |")
    w3r = results["backfill_web3"]
    print(f"\n## Backfill logs/s ({int(results['logs']):,} logs)\n")
    print("| method | logs/s | vs web3.py get_logs | vs raw fetch |")
    print("|---|---:|---:|---:|")
    for label, key in (
        ("web3.py contract.events.X.get_logs", "backfill_web3"),
        ("raw eth_getLogs fetch + JSON parse (I/O bound)", "backfill_raw_fetch"),
        ("liqbot backfill (fetch, decode, apply, commit)", "backfill_liqbot"),
    ):
        print(
            f"| {label} | {results[key]:,.0f} | {results[key] / w3r:,.1f}× | "
            f"{results[key] / results['backfill_raw_fetch']:.2f}× |"
        )
    if out:
        Path(out).write_text(json.dumps(results, indent=1))  # noqa: ASYNC240 - after the timing


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--borrowers", type=int, default=2000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    asyncio.run(main(a.borrowers, a.big, a.json))
