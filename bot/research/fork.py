"""One anvil fork of an RPC that research re-points at any block, with our liquidator on it.

Starting a process per block costs seconds; ``anvil_reset`` re-forks the same process at
another block in milliseconds. The liquidator is deployed once, and after each reset its
runtime code (every parameter is immutable) is written back at the same address, so no
block is mined: the fork's pending block is exactly the block after the one forked.
"""

from __future__ import annotations

from types import TracebackType

from eth_utils import keccak, to_checksum_address

from bot.chain.anvil import AnvilOptions, AnvilProcess
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.deploy import deploy_liquidator
from bot.execution.executor import Executor, ExecutorSettings
from bot.ledger import Ledger
from bot.rpc import JsonRpcClient, to_int

OWNER_ETH = 100 * 10**18


def research_owner() -> str:
    """The (impersonated, keyless) account that owns the research liquidator."""
    return to_checksum_address(keccak(b"liqbot/research/owner")[12:])


class ResearchFork:
    """``async with ResearchFork(url, block, pool, factory) as fork``: a fork process, its
    client, and a dry-run ``Executor`` simulating as the liquidator's owner on it."""

    def __init__(
        self,
        url: str,
        block: int,
        pool: str,
        uniswap_factory: str,
        *,
        min_profit_base: int = 0,
        priority_fee_wei: int = 1_500_000_000,
    ) -> None:
        self.url = url
        self.block = block
        self.pool = pool
        self.factory = uniswap_factory
        self.owner = research_owner()
        self._settings = (min_profit_base, priority_fee_wei)
        self.process: AnvilProcess | None = None
        self.rpc: JsonRpcClient | None = None
        self.liquidator = ""
        self._code = ""
        self._ledger: Ledger | None = None
        self._executor: Executor | None = None

    async def __aenter__(self) -> ResearchFork:
        opts = AnvilOptions(chain_id=None, fork_url=self.url, fork_block_number=self.block)
        self.process = AnvilProcess(opts).start()
        try:
            self.rpc = await JsonRpcClient(self.process.url).__aenter__()
            chain = AnvilRpc(self.rpc)
            await chain.set_balance(self.owner, OWNER_ETH)
            self.liquidator = await deploy_liquidator(chain, self.owner, self.pool, self.factory)
            self._code = await chain.get_code(self.liquidator)
            self._ledger = Ledger(":memory:")
            min_profit_base, priority = self._settings
            self._executor = Executor(
                self.rpc,
                self._ledger,
                ExecutorSettings(
                    liquidator=self.liquidator,
                    owner=self.owner,
                    priority_fee_wei=priority,
                    min_profit_base=min_profit_base,
                    cooldown_blocks=0,
                ),
                None,
                to_int(await self.rpc.call("eth_chainId")),
            )
            await self.reset(self.block)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ledger is not None:
            self._ledger.close()
        if self.rpc is not None:
            await self.rpc.close()
        if self.process is not None:
            self.process.stop()

    @property
    def chain(self) -> AnvilRpc:
        assert self.rpc is not None, "use ResearchFork as an async context manager"
        return AnvilRpc(self.rpc)

    @property
    def executor(self) -> Executor:
        assert self._executor is not None, "use ResearchFork as an async context manager"
        return self._executor

    async def reset(self, block: int) -> None:
        """Fork ``block`` afresh (nothing mined since), with the liquidator in place."""
        chain = self.chain
        await chain.rpc.call(
            "anvil_reset", [{"forking": {"jsonRpcUrl": self.url, "blockNumber": block}}]
        )
        await chain.set_code(self.liquidator, self._code)
        await chain.set_balance(self.owner, OWNER_ETH)
        await chain.auto_impersonate(True)
        self.block = block
