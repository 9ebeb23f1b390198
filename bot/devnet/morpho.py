"""Morpho Blue on the devnet: the real contract (compiled from the pinned sources), markets
between the devnet's tokens, loan liquidity and seeded borrowers.

Only the oracles (``OracleMock``) and the rate model (``IrmMock``: x% utilization = x%
APR) are Morpho's own test doubles. Loan and collateral tokens are the Aave market's
WETH / WBTC / USDC / DAI, so seized collateral can be sold on the devnet's Uniswap pools.

Borrower planning is pure and deterministic for a seed; execution is bulk, as in
``seed.py``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eth_utils import keccak, to_checksum_address

from bot.adapters.morpho_blue.math import ORACLE_PRICE_SCALE, WAD, max_borrow, w_mul_down
from bot.adapters.morpho_blue.types import MarketParams, Position
from bot.devnet import artifacts as art
from bot.devnet import morpho_build
from bot.devnet.anvil_rpc import AnvilRpc, Tx
from bot.devnet.manifest import Manifest, MorphoBorrowerInfo, MorphoInfo, MorphoMarketInfo

MAX_UINT = 2**256 - 1
SMALL_GAS = 120_000
MORPHO_GAS = 400_000


@dataclass(frozen=True, slots=True)
class MorphoMarketSpec:
    loan: str  # reserve symbols of the devnet
    collateral: str
    lltv: int  # WAD
    fee: int = 0  # WAD share of interest minted to the fee recipient


# LLTVs among Morpho's governance-approved set; one market takes a fee so that fee shares
# (and the fee recipient's position) are exercised.
DEFAULT_MARKETS = (
    MorphoMarketSpec("USDC", "WETH", 860_000_000_000_000_000, fee=100_000_000_000_000_000),
    MorphoMarketSpec("USDC", "WBTC", 770_000_000_000_000_000),
    MorphoMarketSpec("DAI", "WETH", 915_000_000_000_000_000),
)


@dataclass(frozen=True, slots=True)
class MorphoOptions:
    markets: tuple[MorphoMarketSpec, ...] = DEFAULT_MARKETS
    borrowers_per_market: int = 12
    liquidity_usd: int = 20_000_000  # loan tokens the liquidity provider supplies per market


def oracle_price(coll_usd_8: int, coll_decimals: int, loan_usd_8: int, loan_decimals: int) -> int:
    """Morpho's oracle convention: loan base units per collateral base unit, × 1e36."""
    return coll_usd_8 * ORACLE_PRICE_SCALE * 10**loan_decimals // (loan_usd_8 * 10**coll_decimals)


@dataclass(frozen=True, slots=True)
class MorphoBorrowerPlan:
    address: str
    market_id: str
    collateral: int
    borrow: int
    target_ltv_share_wad: int  # borrowed / max borrow at the seeding price


def morpho_borrower_address(seed: int, market: int, index: int) -> str:
    return to_checksum_address(keccak(f"liqbot/morpho/{seed}/{market}/{index}".encode())[12:])


def _ltv_share(rng: random.Random) -> float:
    """Debt as a share of the borrowing limit: a third within 10% of it (under water after
    a 10-30% collateral drop), the rest spread down to a fifth."""
    u = rng.random()
    lo, hi = (0.90, 0.99) if u < 0.35 else (0.6, 0.9) if u < 0.7 else (0.2, 0.6)
    return rng.uniform(lo, hi)


def plan_morpho_borrowers(
    markets: Sequence[tuple[MarketParams, int, int]], per_market: int, *, seed: int
) -> list[MorphoBorrowerPlan]:
    """``markets``: (params, oracle price, collateral units per $1). Collateral is worth
    $1k-$500k (log-uniform); the debt is a drawn share of the exact borrowing limit."""
    rng = random.Random(seed)
    plans = []
    for m, (params, price, units_per_usd) in enumerate(markets):
        for i in range(per_market):
            usd = 1_000 * math.exp(rng.random() * math.log(500))
            collateral = int(usd * units_per_usd)
            share = int(_ltv_share(rng) * 10_000) * WAD // 10_000
            limit = max_borrow(Position(collateral=collateral), price, params.lltv)
            plans.append(
                MorphoBorrowerPlan(
                    morpho_borrower_address(seed, m, i),
                    params.id,
                    collateral,
                    w_mul_down(limit, share),
                    share,
                )
            )
    return plans


class MorphoDeployer:
    def __init__(self, chain: AnvilRpc, deployer: str, lp: str, fee_recipient: str) -> None:
        self.chain = chain
        self.deployer = deployer
        self.lp = lp
        self.fee_recipient = fee_recipient

    async def deploy(self, manifest: Manifest, opts: MorphoOptions, *, seed: int) -> MorphoInfo:
        chain = self.chain
        await chain.auto_impersonate(True)
        deploy_block = await chain.block_number() + 1
        morpho_art = morpho_build.artifact("Morpho")
        oracle_art = morpho_build.artifact("OracleMock")
        mabi = morpho_art.abi
        morpho = await chain.deploy(
            self.deployer, morpho_art.creation_code(self.deployer), "Morpho"
        )
        irm = await chain.deploy(
            self.deployer, morpho_build.artifact("IrmMock").creation_code(), "IrmMock"
        )
        prices_8 = {r.symbol: await self._aave_price(manifest, r.symbol) for r in manifest.reserves}

        setup: list[Tx] = [
            Tx(self.deployer, morpho, mabi.fn("enableIrm").encode(irm), label="enableIrm"),
            Tx(
                self.deployer,
                morpho,
                mabi.fn("setFeeRecipient").encode(self.fee_recipient),
                label="setFeeRecipient",
            ),
        ]
        setup += [
            Tx(self.deployer, morpho, mabi.fn("enableLltv").encode(lltv), label="enableLltv")
            for lltv in sorted({s.lltv for s in opts.markets})
        ]
        markets: list[MorphoMarketInfo] = []
        for spec in opts.markets:
            loan, coll = manifest.reserve(spec.loan), manifest.reserve(spec.collateral)
            price = oracle_price(
                prices_8[coll.symbol], coll.decimals, prices_8[loan.symbol], loan.decimals
            )
            oracle = await chain.deploy(self.deployer, oracle_art.creation_code(), "OracleMock")
            params = MarketParams(loan.address, coll.address, oracle, irm, spec.lltv)
            setup.append(
                Tx(
                    self.deployer,
                    oracle,
                    oracle_art.abi.fn("setPrice").encode(price),
                    label="setPrice",
                )
            )
            setup.append(
                Tx(
                    self.deployer,
                    morpho,
                    mabi.fn("createMarket").encode(params.as_tuple()),
                    label="createMarket",
                )
            )
            if spec.fee:
                setup.append(
                    Tx(
                        self.deployer,
                        morpho,
                        mabi.fn("setFee").encode(params.as_tuple(), spec.fee),
                        label="setFee",
                    )
                )
            markets.append(
                MorphoMarketInfo(
                    id=params.id,
                    loan_symbol=loan.symbol,
                    collateral_symbol=coll.symbol,
                    loan_token=loan.address,
                    collateral_token=coll.address,
                    oracle=oracle,
                    irm=irm,
                    lltv=spec.lltv,
                    fee=spec.fee,
                    initial_price=price,
                )
            )
        await chain.send_many(setup)
        await self._supply_liquidity(manifest, morpho, markets, opts, prices_8)
        borrowers = await self._seed(manifest, morpho, markets, opts, prices_8, seed)
        return MorphoInfo(
            morpho=morpho,
            irm=irm,
            owner=self.deployer,
            fee_recipient=self.fee_recipient,
            deploy_block=deploy_block,
            liquidity_provider=self.lp,
            markets=tuple(markets),
            borrowers=borrowers,
        )

    async def _aave_price(self, manifest: Manifest, symbol: str) -> int:
        oracle = art.aave("AaveOracle").abi.fn("getAssetPrice")
        value: int = await self.chain.call(
            manifest.aave.oracle, oracle, manifest.reserve(symbol).address
        )
        return value

    async def _supply_liquidity(
        self,
        manifest: Manifest,
        morpho: str,
        markets: Sequence[MorphoMarketInfo],
        opts: MorphoOptions,
        prices_8: Mapping[str, int],
    ) -> None:
        erc20 = art.aave("MintableERC20").abi
        mabi = morpho_build.artifact("Morpho").abi
        txs: list[Tx] = []
        for m in markets:
            loan = manifest.reserve(m.loan_symbol)
            amount = opts.liquidity_usd * 10**loan.decimals * 10**8 // prices_8[loan.symbol]
            txs += [
                Tx(self.lp, loan.address, erc20.fn("mint(uint256)").encode(amount), gas=SMALL_GAS),
                Tx(
                    self.lp,
                    loan.address,
                    erc20.fn("approve").encode(morpho, MAX_UINT),
                    gas=SMALL_GAS,
                ),
                Tx(
                    self.lp,
                    morpho,
                    mabi.fn("supply").encode(m.params.as_tuple(), amount, 0, self.lp, b""),
                    gas=MORPHO_GAS,
                    label=f"supply {m.loan_symbol} to {m.id}",
                ),
            ]
        await self.chain.send_many(txs)

    async def _seed(
        self,
        manifest: Manifest,
        morpho: str,
        markets: Sequence[MorphoMarketInfo],
        opts: MorphoOptions,
        prices_8: Mapping[str, int],
        seed: int,
    ) -> tuple[MorphoBorrowerInfo, ...]:
        inputs = []
        for m in markets:
            coll = manifest.reserve(m.collateral_symbol)
            inputs.append(
                (m.params, m.initial_price, 10**coll.decimals * 10**8 // prices_8[coll.symbol])
            )
        plans = plan_morpho_borrowers(inputs, opts.borrowers_per_market, seed=seed)
        by_id = {m.id: m for m in markets}
        erc20 = art.aave("MintableERC20").abi
        mabi = morpho_build.artifact("Morpho").abi
        txs: list[Tx] = []
        for p in plans:
            m, who = by_id[p.market_id], p.address
            token = m.collateral_token
            txs += [
                Tx(who, token, erc20.fn("mint(uint256)").encode(p.collateral), gas=SMALL_GAS),
                Tx(who, token, erc20.fn("approve").encode(morpho, MAX_UINT), gas=SMALL_GAS),
                Tx(
                    who,
                    morpho,
                    mabi.fn("supplyCollateral").encode(m.params.as_tuple(), p.collateral, who, b""),
                    gas=MORPHO_GAS,
                    label=f"supplyCollateral for {who}",
                ),
                Tx(
                    who,
                    morpho,
                    mabi.fn("borrow").encode(m.params.as_tuple(), p.borrow, 0, who, who),
                    gas=MORPHO_GAS,
                    label=f"borrow for {who}",
                ),
            ]
        await self.chain.set_balances(sorted({p.address for p in plans}), 10 * 10**18)
        await self.chain.send_many(txs)
        return tuple(
            MorphoBorrowerInfo(
                address=p.address,
                market_id=p.market_id,
                target_ltv_share_wad=p.target_ltv_share_wad,
            )
            for p in plans
        )


async def deploy_morpho(
    chain: AnvilRpc, manifest: Manifest, opts: MorphoOptions, *, seed: int
) -> Manifest:
    """Deploy Morpho Blue next to the devnet's Aave market; returns the extended manifest.

    The Aave deployer owns Morpho, its liquidity provider supplies the loan liquidity and
    Aave's treasury receives Morpho's fees.
    """
    deployer = MorphoDeployer(
        chain, manifest.deployer, manifest.liquidity_provider, manifest.aave.treasury
    )
    info = await deployer.deploy(manifest, opts, seed=seed)
    return manifest.model_copy(update={"morpho": info})
