"""Build the running pieces from ``Settings``: the one RPC client, the adapter, the store
and the indexer. Commands call this; nothing here runs at import time."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.adapters.aave_v3.adapter import AaveV3Adapter
from bot.adapters.aave_v3.liquidation import AaveV3Liquidation
from bot.api import HeadSource, LiquidationAdapter
from bot.chain.heads import head_source
from bot.config import Settings
from bot.db.api import Database, open_database
from bot.errors import ChainMismatchError, ConfigError
from bot.execution.executor import Executor, ExecutorSettings
from bot.execution.inventory import Inventory
from bot.execution.keys import Signer, load_signer
from bot.execution.quotes import PairBook
from bot.execution.relay import Relay, RelaySettings, load_auth_key
from bot.indexer.indexer import Indexer, IndexerSettings
from bot.indexer.logs import WindowSettings
from bot.ledger import Ledger
from bot.multicall import Multicall
from bot.plugins import load_adapter, load_strategy
from bot.preflight import preflight
from bot.redact import mask_url
from bot.rpc import JsonRpcClient, RpcSettings, to_int
from bot.runner import Runner, RunSettings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IndexService:
    settings: Settings
    rpc: JsonRpcClient
    liquidation: LiquidationAdapter  # the protocol's adapter (market.protocol)
    store: Database
    indexer: Indexer

    @property
    def aave(self) -> AaveV3Liquidation:
        """The Aave V3 adapter, for the commands that only serve Aave V3 (research,
        ``positions``, ``status``)."""
        if not isinstance(self.liquidation, AaveV3Liquidation):
            raise ConfigError(
                "market.protocol",
                f"this command supports aave-v3 markets only, not {self.liquidation.name!r}",
            )
        return self.liquidation

    @property
    def adapter(self) -> AaveV3Adapter:
        """The Aave V3 market (reader, indexing, multicall) of ``aave``."""
        return self.aave.market

    def heads(self) -> HeadSource:
        url = self.settings.chain.ws_url or self.settings.chain.rpc_url
        return head_source(url, self.rpc, self.settings.indexer.poll_interval_s)


def rpc_client(settings: Settings) -> JsonRpcClient:
    r = settings.rpc
    return JsonRpcClient(
        settings.chain.rpc_url,
        RpcSettings(
            rate_limit_per_s=r.rate_limit_per_s,
            max_in_flight=r.max_in_flight,
            timeout_s=r.timeout_s,
            retries=r.retries,
            max_batch=r.max_batch,
            set_aside_s=r.set_aside_s,
            max_head_lag=r.max_head_lag,
        ),
        fallbacks=settings.chain.fallback_urls,
    )


async def check_chain(rpc: JsonRpcClient, settings: Settings) -> int:
    actual = to_int(await rpc.call("eth_chainId"))
    expected = settings.chain.chain_id
    if expected is not None and expected != actual:
        raise ChainMismatchError(expected, actual, mask_url(settings.chain.rpc_url))
    return actual


@asynccontextmanager
async def open_index(settings: Settings, *, read_only: bool = False) -> AsyncIterator[IndexService]:
    """``read_only``: a reader of an index another instance writes (or an operator's view);
    it never writes the database, and blocks past the writer's checkpoint stay in memory."""
    async with rpc_client(settings) as rpc:
        chain_id = await check_chain(rpc, settings)
        m = settings.market
        plugin = load_adapter(m.protocol)
        adapter = await plugin.connect(rpc, m, adapter_context(settings))
        store = open_database(settings.indexer.database, read_only=read_only)
        try:
            store.check_identity(
                {
                    "chain_id": str(chain_id),
                    "protocol": m.protocol,
                    "market": plugin.identity(m),
                }
            )
            ix = settings.indexer
            indexer = Indexer(
                rpc,
                adapter.indexing,
                store,
                IndexerSettings(
                    start_block=m.start_block,
                    # A reader confirms nothing (it cannot write): every block past the
                    # writer's checkpoint stays in its in-memory tip.
                    confirmations=sys.maxsize if read_only else ix.confirmations,
                    reread_depth=ix.reread_depth,
                    window=WindowSettings(initial=ix.log_window, maximum=ix.max_log_window),
                ),
            )
            indexer.load()
            yield IndexService(settings, rpc, adapter, store, indexer)
        finally:
            store.close()


def adapter_context(settings: Settings) -> dict[str, Any]:
    """The shared settings an adapter may read when it connects (``AdapterPlugin``)."""
    st = settings.strategy
    return {
        "native_asset": st.native_asset,
        "max_price_age_s": st.max_price_age_s,
        "close_factor_rules": st.close_factor_rules,
        "block_time_s": st.block_time_s,
        "funded": settings.executor.funded,
    }


async def pair_book(
    rpc: JsonRpcClient, adapter: LiquidationAdapter, settings: Settings
) -> PairBook:
    """The Uniswap V2 pairs between the adapter's assets (none without a factory), read
    through the adapter's multicall where it has one (see ``Multicall``)."""
    mc = adapter.multicall or Multicall(rpc, settings.market.multicall3)
    factory = settings.swap.uniswap_v2_factory
    return await PairBook.discover(mc, factory, adapter.assets()) if factory else PairBook(mc, [])


def inventory(
    rpc: JsonRpcClient,
    adapter: LiquidationAdapter,
    settings: Settings,
    owner: str | None,
    liquidator: str | None,
) -> Inventory | None:
    """The owner's tokens keep plans may spend (``strategy.inventory``), read through the
    adapter's multicall where it has one; None when off, or with no liquidator to spend
    them (keep plans are then not made)."""
    if settings.strategy.inventory == "off":
        return None
    if owner is None or liquidator is None:
        log.warning("strategy.inventory needs executor.liquidator and its owner: not used")
        return None
    mc = adapter.multicall or Multicall(rpc, settings.market.multicall3)
    return Inventory(mc, owner, liquidator, settings.strategy.inventory)


@dataclass(slots=True)
class BotService:
    index: IndexService
    runner: Runner
    executor: Executor
    ledger: Ledger


@asynccontextmanager
async def open_bot(
    settings: Settings, *, env: Mapping[str, str] | None = None
) -> AsyncIterator[BotService]:
    """Everything ``liqbot run`` needs, checked before the first head: the index, the
    signer (None: dry run), the liquidator contract and its owner, the swap pairs."""
    ex = settings.executor
    signer = None
    if ex.mode != "dry-run":
        signer = load_signer(
            key_env=ex.private_key_env,
            keystore=ex.keystore,
            password_file=ex.password_file,
            env=env,
        )
    relay = relay_client(settings, signer, env)
    # Every check runs before open_index creates the database: a bad setting writes nothing.
    async with rpc_client(settings) as rpc:
        checked = (await preflight(rpc, settings, signer)).require()
    async with open_index(settings) as svc:
        adapter = svc.liquidation
        strategy = load_strategy(
            settings.strategy.name or load_adapter(adapter.name).default_strategy, adapter.name
        )
        chain_id = to_int(await svc.rpc.call("eth_chainId"))
        owner = checked.owner
        unit = adapter.base_unit
        pairs = await pair_book(svc.rpc, adapter, settings)
        st = settings.strategy
        min_profit_base = int(st.min_profit * unit)
        gwei = Decimal(10**9)
        ledger = Ledger(svc.store, instance=signer.address if signer else "dry-run")
        try:
            executor = Executor(
                svc.rpc,
                ledger,
                ExecutorSettings(
                    liquidator=checked.liquidator,
                    owner=owner,
                    funded=ex.funded,
                    priority_fee_wei=int(ex.priority_fee_gwei * gwei),
                    max_fee_wei=int(ex.max_fee_gwei * gwei),
                    bid_share_bps=int(ex.bid_share * 10_000),
                    replace_after_blocks=ex.replace_after_blocks,
                    gas_in_flight_bps=int(ex.max_gas_in_flight * 10_000),
                    cooldown_blocks=ex.cooldown_blocks,
                    min_profit_base=min_profit_base,
                    simulate_tag=ex.simulate_block,
                    max_daily_loss_base=(
                        None if ex.max_daily_loss is None else int(ex.max_daily_loss * unit)
                    ),
                    kill_switch=ex.kill_switch_file,
                ),
                signer,
                chain_id,
                relay=relay,
                calldata=adapter.calldata,
            )
            await executor.recover()
            runner = Runner(
                rpc=svc.rpc,
                indexer=svc.indexer,
                adapter=adapter,
                pairs=pairs,
                strategy=strategy,
                executor=executor,
                settings=RunSettings(
                    min_profit_base=min_profit_base,
                    max_plans_per_block=st.max_plans_per_block,
                    block_time_s=st.block_time_s,
                    priority_fee_wei=int(ex.priority_fee_gwei * gwei),
                    max_consecutive_failures=settings.run.max_consecutive_failures,
                ),
                inventory=inventory(svc.rpc, adapter, settings, owner, checked.liquidator),
            )
            yield BotService(svc, runner, executor, ledger)
        finally:
            ledger.close()
            if relay is not None:
                await relay.close()


def relay_client(
    settings: Settings, signer: Signer | None, env: Mapping[str, str] | None = None
) -> Relay | None:
    """The private relay sends go to, when one is configured and there is a key to send
    with. Its requests are signed by the key in ``executor.relay_auth_key_env`` or, unset,
    by the trading key: that works with no set-up (the relay sees the trading address in
    the transactions anyway). A separate key is better: the trading key then signs nothing
    but transactions, and the relay reputation tied to the auth address survives a new
    trading key."""
    ex = settings.executor
    if ex.relay_url is None or signer is None:
        return None
    auth = (
        load_auth_key(ex.relay_auth_key_env, env)
        if ex.relay_auth_key_env
        else signer._account  # the trading key, which stays inside its Signer otherwise
    )
    relay = Relay(
        RelaySettings(
            url=ex.relay_url,
            method=ex.relay_method,
            blocks=ex.replace_after_blocks,
            timeout_s=settings.rpc.timeout_s,
        ),
        auth,
    )
    log.info(
        "sending through a private relay",
        extra={"relay": mask_url(ex.relay_url), "method": ex.relay_method, "auth": auth.address},
    )
    return relay
