"""Seed the devnet with borrowers of varied mixes and health factors.

Planning is pure and deterministic (a seed gives the same borrowers, amounts and targets);
execution sends the plan's transactions in bulk from impersonated borrower accounts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eth_utils import keccak, to_checksum_address

from bot.devnet import artifacts as art
from bot.devnet.anvil_rpc import AnvilRpc, Tx
from bot.devnet.manifest import BorrowerInfo, Manifest
from bot.devnet.market import BPS, MarketParams

WAD = 10**18
VARIABLE_RATE = 2
SUPPLY_GAS = 400_000
BORROW_GAS = 600_000
SMALL_GAS = 120_000


@dataclass(frozen=True, slots=True)
class BorrowerPlan:
    address: str
    kind: str
    emode: int
    collateral: tuple[tuple[str, int], ...]  # (symbol, amount in base units)
    debt: tuple[tuple[str, int], ...]
    target_health_factor_wad: int


# kind -> (weight, collateral symbols, debt symbols, e-mode category)
MIXES: tuple[tuple[str, int, tuple[str, ...], tuple[str, ...], int], ...] = (
    ("eth-usdc", 20, ("WETH",), ("USDC",), 0),
    ("eth-dai", 12, ("WETH",), ("DAI",), 0),
    ("btc-usdc", 13, ("WBTC",), ("USDC",), 0),
    ("multi", 20, ("WETH", "WBTC"), ("USDC", "DAI"), 0),
    ("multi3", 5, ("WETH", "WBTC", "USDC"), ("DAI",), 0),
    ("emode-usdc-dai", 10, ("USDC",), ("DAI",), 1),
    ("emode-dai-usdc", 5, ("DAI",), ("USDC",), 1),
    ("usdc-eth", 10, ("USDC",), ("WETH",), 0),
    ("eth-btc", 5, ("WETH",), ("WBTC",), 0),
)


def borrower_address(seed: int, index: int) -> str:
    return to_checksum_address(keccak(f"liqbot/borrower/{seed}/{index}".encode())[12:])


def _target_hf(rng: random.Random, hf_min: float) -> float:
    """Health factors spread over ~[hf_min, 3.0], a third of them close to liquidation."""
    u = rng.random()
    lo, hi = (hf_min, 1.15) if u < 0.3 else (1.15, 1.6) if u < 0.7 else (1.6, 3.0)
    lo = max(lo, hf_min)
    hi = max(hi, lo * 1.01)
    return lo * math.exp(rng.random() * math.log(hi / lo))


def plan_borrowers(
    n: int, market: MarketParams, prices_8: Mapping[str, int], *, seed: int = 1
) -> list[BorrowerPlan]:
    """Deterministic borrower plans whose health factors at ``prices_8`` hit their targets."""
    rng = random.Random(seed)
    weights = [m[1] for m in MIXES]
    emodes = {e.category_id: e for e in market.emodes}
    plans = []
    for i in range(n):
        kind, _, colls, debts, emode = rng.choices(MIXES, weights)[0]
        # Collateral value per asset: log-uniform between $1k and $500k.
        coll_usd = {s: 1_000 * math.exp(rng.random() * math.log(500)) for s in colls}
        weighted_lt = weighted_ltv = 0.0
        for s, usd in coll_usd.items():
            r = market.reserve(s)
            in_emode = emode and r.emode_category == emode
            weighted_lt += usd * (
                emodes[emode].liquidation_threshold if in_emode else r.liquidation_threshold
            )
            weighted_ltv += usd * (emodes[emode].ltv if in_emode else r.ltv)
        # Borrowing is allowed up to the LTV; keep 0.3% clear of it.
        hf_min = weighted_lt / weighted_ltv * 1.003
        hf = _target_hf(rng, hf_min)
        debt_usd = weighted_lt / BPS / hf
        shares = [rng.uniform(0.3, 0.7) for _ in debts]
        total = sum(shares)
        collateral = tuple(
            (s, int(usd * 10**6) * 10 ** market.reserve(s).decimals * 10**2 // prices_8[s])
            for s, usd in coll_usd.items()
        )
        debt = tuple(
            (
                s,
                int(debt_usd * sh / total * 10**6)
                * 10 ** market.reserve(s).decimals
                * 10**2
                // prices_8[s],
            )
            for s, sh in zip(debts, shares, strict=True)
        )
        plans.append(
            BorrowerPlan(
                address=borrower_address(seed, i),
                kind=kind,
                emode=emode,
                collateral=collateral,
                debt=debt,
                target_health_factor_wad=int(hf * WAD),
            )
        )
    return plans


def plan_transactions(plans: Sequence[BorrowerPlan], manifest: Manifest) -> list[Tx]:
    """Each borrower: mint, approve and supply each collateral; e-mode; borrow each debt."""
    erc20 = art.aave("MintableERC20").abi
    pool_abi = art.aave("Pool").abi
    pool = manifest.aave.pool
    mint, approve = erc20.fn("mint(uint256)"), erc20.fn("approve")
    supply, borrow, emode = (
        pool_abi.fn("supply"),
        pool_abi.fn("borrow"),
        pool_abi.fn("setUserEMode"),
    )
    txs: list[Tx] = []
    for p in plans:
        who = p.address
        for sym, amount in p.collateral:
            token = manifest.reserve(sym).address
            txs.append(Tx(who, token, mint.encode(amount), gas=SMALL_GAS, label=f"mint {sym}"))
            txs.append(Tx(who, token, approve.encode(pool, amount), gas=SMALL_GAS, label="approve"))
            txs.append(
                Tx(
                    who,
                    pool,
                    supply.encode(token, amount, who, 0),
                    gas=SUPPLY_GAS,
                    label=f"supply {sym} for {who}",
                )
            )
        if p.emode:
            txs.append(Tx(who, pool, emode.encode(p.emode), gas=BORROW_GAS, label=f"e-mode {who}"))
        for sym, amount in p.debt:
            token = manifest.reserve(sym).address
            txs.append(
                Tx(
                    who,
                    pool,
                    borrow.encode(token, amount, VARIABLE_RATE, 0, who),
                    gas=BORROW_GAS,
                    label=f"borrow {sym} for {who}",
                )
            )
    return txs


async def seed_borrowers(
    chain: AnvilRpc, manifest: Manifest, market: MarketParams, n: int, *, seed: int = 1
) -> Manifest:
    """Open ``n`` borrower positions; returns the manifest with the borrowers listed."""
    prices = {r.symbol: r.price_usd_8 for r in market.reserves}
    plans = plan_borrowers(n, market, prices, seed=seed)
    await chain.auto_impersonate(True)
    await chain.set_balances([p.address for p in plans], 10 * 10**18)
    await chain.send_many(plan_transactions(plans, manifest))
    borrowers = tuple(
        BorrowerInfo(
            address=p.address, kind=p.kind, target_health_factor_wad=p.target_health_factor_wad
        )
        for p in plans
    )
    return manifest.model_copy(update={"borrowers": manifest.borrowers + borrowers})
