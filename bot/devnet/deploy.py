"""Deploy a real Aave V3 market, Multicall3 and Uniswap V2 on a local anvil.

Bytecode comes from the pinned npm packages (@aave/core-v3, @uniswap/v2-*, viem for
Multicall3); only the price feeds (SettableAggregator) and ERC-20 tokens (Aave's own
MintableERC20 mock) are test doubles.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from eth_utils import to_checksum_address

from bot.devnet import artifacts as art
from bot.devnet.anvil_rpc import AnvilRpc, Tx
from bot.devnet.manifest import (
    AaveInfo,
    EModeInfo,
    Manifest,
    ReserveInfo,
    UniswapInfo,
)
from bot.devnet.market import DEFAULT_MARKET, MarketParams

log = logging.getLogger(__name__)

MULTICALL3_ADDRESS = to_checksum_address("0xcA11bde05977b3631167028862bE2a173976CA11")
ZERO = "0x0000000000000000000000000000000000000000"
MAX_UINT = 2**256 - 1
POOL_LIBRARIES = (
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "PoolLogic",
)


@dataclass(frozen=True, slots=True)
class DeployOptions:
    market: MarketParams = DEFAULT_MARKET
    # Depth of each Uniswap V2 pool, per side, in USD at oracle prices.
    pool_depth_usd: int = 50_000_000
    # What the liquidity provider supplies to Aave per reserve, in USD.
    aave_liquidity_usd: int = 2_000_000_000


def usd_to_amount(usd: int, decimals: int, price_8: int) -> int:
    """Token base units worth ``usd`` dollars at an 8-decimal oracle price (rounded down)."""
    return usd * 10**decimals * 10**8 // price_8


class MarketDeployer:
    """Runs the deployment; each step is one transaction awaited to its receipt."""

    def __init__(
        self, chain: AnvilRpc, deployer: str, liquidity_provider: str, treasury: str
    ) -> None:
        self.chain = chain
        self.deployer = deployer
        self.lp = liquidity_provider
        self.treasury = treasury

    async def _tx(
        self, to: str, artifact: art.Artifact, fn: str, *args: object, sender: str | None = None
    ) -> None:
        data = artifact.abi.fn(fn).encode(*args)
        await self.chain.send(Tx(sender or self.deployer, to, data, label=f"{artifact.name}.{fn}"))

    async def _deploy(
        self, artifact: art.Artifact, *args: object, libraries: dict[str, str] | None = None
    ) -> str:
        code = artifact.creation_code(*args, libraries=libraries)
        return await self.chain.deploy(self.deployer, code, artifact.name)

    async def deploy(self, opts: DeployOptions, rpc_url: str) -> Manifest:
        chain = self.chain
        m = opts.market
        await chain.auto_impersonate(True)
        deploy_block = await chain.block_number() + 1

        multicall = await self._deploy_multicall3()

        erc20 = art.aave("MintableERC20")
        feed_art = art.liqbot("SettableAggregator")
        tokens: dict[str, str] = {}
        feeds: dict[str, str] = {}
        for r in m.reserves:
            tokens[r.symbol] = await self._deploy(erc20, r.symbol, r.symbol, r.decimals)
            feeds[r.symbol] = await self._deploy(feed_art, 8, f"{r.symbol} / USD", r.price_usd_8)

        provider_art = art.aave("PoolAddressesProvider")
        provider = await self._deploy(provider_art, m.market_id, self.deployer)
        await self._tx(provider, provider_art, "setACLAdmin", self.deployer)
        acl_art = art.aave("ACLManager")
        acl = await self._deploy(acl_art, provider)
        await self._tx(provider, provider_art, "setACLManager", acl)
        for role in ("addPoolAdmin", "addRiskAdmin", "addEmergencyAdmin", "addAssetListingAdmin"):
            await self._tx(acl, acl_art, role, self.deployer)

        libs = {name: await self._deploy(art.aave(name)) for name in POOL_LIBRARIES}
        # FlashLoanLogic links BorrowLogic, so it comes after it.
        libs["FlashLoanLogic"] = await self._deploy(art.aave("FlashLoanLogic"), libraries=libs)
        pool_impl = await self._deploy(art.aave("Pool"), provider, libraries=libs)
        await self._tx(provider, provider_art, "setPoolImpl", pool_impl)
        pool = await chain.call(provider, provider_art.abi.fn("getPool"))

        cfg_lib = await self._deploy(art.aave("ConfiguratorLogic"))
        cfg_impl = await self._deploy(
            art.aave("PoolConfigurator"), libraries={"ConfiguratorLogic": cfg_lib}
        )
        await self._tx(provider, provider_art, "setPoolConfiguratorImpl", cfg_impl)
        configurator = await chain.call(provider, provider_art.abi.fn("getPoolConfigurator"))

        assets = [tokens[r.symbol] for r in m.reserves]
        oracle = await self._deploy(
            art.aave("AaveOracle"),
            provider,
            assets,
            [feeds[r.symbol] for r in m.reserves],
            ZERO,
            ZERO,
            10**8,
        )
        await self._tx(provider, provider_art, "setPriceOracle", oracle)
        data_provider = await self._deploy(art.aave("AaveProtocolDataProvider"), provider)
        await self._tx(provider, provider_art, "setPoolDataProvider", data_provider)

        a_impl = await self._deploy(art.aave("AToken"), pool)
        s_impl = await self._deploy(art.aave("StableDebtToken"), pool)
        v_impl = await self._deploy(art.aave("VariableDebtToken"), pool)
        rate_art = art.aave("DefaultReserveInterestRateStrategy")
        inputs = []
        for r in m.reserves:
            rs = r.rates
            strategy = await self._deploy(
                rate_art,
                provider,
                rs.optimal_usage_ratio,
                rs.base_variable_borrow_rate,
                rs.variable_rate_slope1,
                rs.variable_rate_slope2,
                0,
                0,
                0,
                0,
                0,
            )
            inputs.append(
                (
                    a_impl,
                    s_impl,
                    v_impl,
                    r.decimals,
                    strategy,
                    tokens[r.symbol],
                    self.treasury,
                    ZERO,
                    f"Aave devnet {r.symbol}",
                    f"a{r.symbol}",
                    f"Aave devnet Variable Debt {r.symbol}",
                    f"variableDebt{r.symbol}",
                    f"Aave devnet Stable Debt {r.symbol}",
                    f"stableDebt{r.symbol}",
                    b"",
                )
            )
        cfg_art = art.aave("PoolConfigurator")
        await self._tx(configurator, cfg_art, "initReserves", inputs)
        for r in m.reserves:
            asset = tokens[r.symbol]
            await self._tx(
                configurator,
                cfg_art,
                "configureReserveAsCollateral",
                asset,
                r.ltv,
                r.liquidation_threshold,
                r.liquidation_bonus,
            )
            await self._tx(configurator, cfg_art, "setReserveBorrowing", asset, True)
            await self._tx(configurator, cfg_art, "setReserveFlashLoaning", asset, True)
            await self._tx(configurator, cfg_art, "setReserveFactor", asset, r.reserve_factor)
            if r.liquidation_protocol_fee:
                await self._tx(
                    configurator,
                    cfg_art,
                    "setLiquidationProtocolFee",
                    asset,
                    r.liquidation_protocol_fee,
                )
        for e in m.emodes:
            await self._tx(
                configurator,
                cfg_art,
                "setEModeCategory",
                e.category_id,
                e.ltv,
                e.liquidation_threshold,
                e.liquidation_bonus,
                ZERO,
                e.label,
            )
        for r in m.reserves:
            if r.emode_category:
                await self._tx(
                    configurator,
                    cfg_art,
                    "setAssetEModeCategory",
                    tokens[r.symbol],
                    r.emode_category,
                )
        await self._tx(
            configurator, cfg_art, "updateFlashloanPremiumTotal", m.flash_loan_premium_total
        )

        pool_art = art.aave("Pool")
        reserves = []
        for r in m.reserves:
            data = await chain.call(pool, pool_art.abi.fn("getReserveData"), tokens[r.symbol])
            reserves.append(
                ReserveInfo(
                    symbol=r.symbol,
                    address=tokens[r.symbol],
                    decimals=r.decimals,
                    a_token=data[8],
                    stable_debt_token=data[9],
                    variable_debt_token=data[10],
                    price_feed=feeds[r.symbol],
                    emode_category=r.emode_category,
                )
            )

        uniswap = await self._deploy_uniswap(opts, tokens)
        await self._supply_liquidity(opts, pool, tokens)

        return Manifest(
            chain_id=await chain.chain_id(),
            rpc_url=rpc_url,
            deploy_block=deploy_block,
            deployer=self.deployer,
            multicall3=multicall,
            aave=AaveInfo(
                pool_addresses_provider=provider,
                pool=pool,
                pool_configurator=configurator,
                oracle=oracle,
                data_provider=data_provider,
                acl_manager=acl,
                treasury=self.treasury,
            ),
            uniswap=uniswap,
            reserves=tuple(reserves),
            emode_categories=tuple(
                EModeInfo(
                    id=e.category_id,
                    label=e.label,
                    ltv=e.ltv,
                    liquidation_threshold=e.liquidation_threshold,
                    liquidation_bonus=e.liquidation_bonus,
                )
                for e in m.emodes
            ),
            liquidity_provider=self.lp,
        )

    async def _deploy_multicall3(self) -> str:
        """Multicall3 at its canonical address, so code written for mainnet works here."""
        if await self.chain.get_code(MULTICALL3_ADDRESS) not in ("0x", "0x0", ""):
            return MULTICALL3_ADDRESS
        tmp = await self.chain.deploy(self.deployer, art.multicall3_creation_code(), "Multicall3")
        await self.chain.set_code(MULTICALL3_ADDRESS, await self.chain.get_code(tmp))
        return MULTICALL3_ADDRESS

    async def _deploy_uniswap(self, opts: DeployOptions, tokens: dict[str, str]) -> UniswapInfo:
        factory_art = art.uniswap("v2-core", "UniswapV2Factory")
        pair_art = art.uniswap("v2-core", "UniswapV2Pair")
        erc20 = art.aave("MintableERC20")
        factory = await self._deploy(factory_art, self.deployer)
        router = await self._deploy(
            art.uniswap("v2-periphery", "UniswapV2Router02"), factory, tokens["WETH"]
        )
        by_symbol = {r.symbol: r for r in opts.market.reserves}
        pairs: dict[str, str] = {}
        for a, b in itertools.combinations([r.symbol for r in opts.market.reserves], 2):
            await self._tx(factory, factory_art, "createPair", tokens[a], tokens[b])
            pair = await self.chain.call(
                factory, factory_art.abi.fn("getPair"), tokens[a], tokens[b]
            )
            for sym in (a, b):
                r = by_symbol[sym]
                amount = usd_to_amount(opts.pool_depth_usd, r.decimals, r.price_usd_8)
                await self._tx(tokens[sym], erc20, "mint(address,uint256)", pair, amount)
            await self._tx(pair, pair_art, "mint", self.deployer)
            pairs[f"{a}/{b}"] = pair
        return UniswapInfo(factory=factory, router=router, pairs=pairs)

    async def _supply_liquidity(
        self, opts: DeployOptions, pool: str, tokens: dict[str, str]
    ) -> None:
        erc20 = art.aave("MintableERC20")
        pool_art = art.aave("Pool")
        for r in opts.market.reserves:
            amount = usd_to_amount(opts.aave_liquidity_usd, r.decimals, r.price_usd_8)
            token = tokens[r.symbol]
            await self._tx(token, erc20, "mint(uint256)", amount, sender=self.lp)
            await self._tx(token, erc20, "approve", pool, MAX_UINT, sender=self.lp)
            await self._tx(pool, pool_art, "supply", token, amount, self.lp, 0, sender=self.lp)


async def deploy_liquidator(chain: AnvilRpc, owner: str, pool: str, factory: str) -> str:
    """Deploy a ``Liquidator`` owned by ``owner`` (impersonated: devnets and forks only)."""
    await chain.auto_impersonate(True)
    code = art.liqbot("Liquidator").creation_code(pool, factory)
    return await chain.deploy(owner, code, "Liquidator")
