"""Start-up checks of the settings against the node, before anything is written.

``liqbot config check`` prints every check; ``liqbot run`` (``open_bot``) raises the first
failure as a ``ConfigError``. Each failure names its key and says how to fix it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from eth_abi.exceptions import DecodingError
from eth_utils import to_checksum_address

from bot.config import Settings
from bot.deployments import record_path, recorded
from bot.errors import ConfigError, RpcError
from bot.execution.keys import Signer
from bot.execution.liquidator import LIQUIDATOR_ABI
from bot.plugins import load_adapter
from bot.redact import mask_url
from bot.rpc import JsonRpcClient, to_int

Status = Literal["ok", "FAIL", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    key: str  # the setting the check is about
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        hint = f" ({self.fix})" if self.fix else ""
        return f"{self.status:<4}  {self.key}: {self.detail}{hint}"

    def error(self) -> ConfigError:
        return ConfigError(self.key, self.detail, fix=self.fix)


@dataclass(slots=True)
class Preflight:
    chain_id: int | None = None
    liquidator: str | None = None  # configured, else recorded by deploy-executor
    owner: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "FAIL"]

    def require(self) -> Preflight:
        """Raise the first failure; the bot must not start (nor write) past one."""
        if self.failures:
            raise self.failures[0].error()
        return self


def _no_code_fix(key: str, chain_id: int) -> str:
    fixes = {
        "market.multicall3": "set it to this chain's Multicall3",
        "swap.uniswap_v2_factory": "set it to a Uniswap-V2-compatible factory of this chain",
        "strategy.native_asset": "set it to the wrapped gas token (WETH) of this chain",
        "executor.liquidator": "deploy one with `liqbot deploy-executor`, or correct it",
    }
    # The market's own contracts (whatever the adapter names): a wrong address or chain.
    return fixes.get(
        key,
        f"correct it (or the preset), or point chain.rpc_url at a synced node of chain {chain_id}",
    )


async def _code(rpc: JsonRpcClient, address: str, block: str = "latest") -> bool:
    return await rpc.call("eth_getCode", [address, block]) not in ("0x", "0x0", None)


async def preflight(
    rpc: JsonRpcClient, settings: Settings, signer: Signer | None, *, history: bool = False
) -> Preflight:
    """Every check, in order; stops after a chain id mismatch (the rest would be noise).

    ``history`` also checks that ``market.start_block`` is not after the market's deploy
    block (one ``eth_getCode`` at an old block: needs an archive node, else skipped).
    """
    out = Preflight()
    checks = out.checks
    actual = to_int(await rpc.call("eth_chainId"))
    expected = settings.chain.chain_id
    url = mask_url(settings.chain.rpc_url)
    if expected is not None and expected != actual:
        checks.append(
            Check(
                "chain.chain_id",
                "FAIL",
                f"expected {expected}, the node at {url} is chain {actual}",
                f"point chain.rpc_url at a chain-{expected} node, or set chain.chain_id = {actual}",
            )
        )
        return out
    out.chain_id = actual
    pinned = "" if expected is not None else " (chain.chain_id unset: set it to pin the chain)"
    checks.append(Check("chain.chain_id", "ok", f"{url} is chain {actual}{pinned}"))

    ex = settings.executor
    out.liquidator = ex.liquidator
    source = "executor.liquidator"
    if out.liquidator is None:
        entry = recorded(settings.indexer.database, actual)
        if entry is not None:
            out.liquidator = entry.liquidator
            source = f"executor.liquidator from {record_path(settings.indexer.database)}"
    plugin = load_adapter(settings.market.protocol)
    market_contracts = dict(plugin.contracts(settings.market))
    addresses: dict[str, str | None] = {
        **market_contracts,
        "market.multicall3": settings.market.multicall3,
        "swap.uniswap_v2_factory": settings.swap.uniswap_v2_factory,
        "strategy.native_asset": settings.strategy.native_asset,
        "executor.liquidator": out.liquidator,
    }
    present = {k: a for k, a in addresses.items() if a is not None}
    found = await asyncio.gather(*(_code(rpc, a) for a in present.values()))
    has_code = dict(zip(present, found, strict=True))
    for key, address in present.items():
        if has_code[key]:
            checks.append(Check(key, "ok", f"contract at {address}"))
        else:
            checks.append(
                Check(
                    key,
                    "FAIL",
                    f"no contract at {address} on chain {actual}",
                    _no_code_fix(key, actual),
                )
            )
    for key in addresses.keys() - present.keys():
        checks.append(Check(key, "skip", "unset"))

    first_key, first = next(iter(market_contracts.items()))
    if history and has_code[first_key]:
        checks.append(await _start_block(rpc, settings, first))

    if ex.liquidator is None and out.liquidator is not None:
        checks.append(Check("executor.liquidator", "ok", f"{out.liquidator} ({source})"))
    if out.liquidator is not None and has_code["executor.liquidator"]:
        checks.append(await _owner(rpc, out, signer, source))
    return out


async def _start_block(rpc: JsonRpcClient, settings: Settings, contract: str) -> Check:
    """``contract``: the market's first contract (Aave's PoolAddressesProvider)."""
    m = settings.market
    before = m.start_block - 1
    try:
        early = await _code(rpc, contract, hex(before))
    except RpcError:
        return Check("market.start_block", "skip", f"the node has no state at block {before}")
    if early:
        return Check(
            "market.start_block",
            "FAIL",
            f"the market already existed at block {before}: earlier positions would be missed",
            f"set it to the creation block of {contract} or earlier",
        )
    return Check("market.start_block", "ok", f"{m.start_block} is not after the market's deploy")


async def _owner(rpc: JsonRpcClient, out: Preflight, signer: Signer | None, source: str) -> Check:
    assert out.liquidator is not None
    fn = LIQUIDATOR_ABI.fn("owner")
    try:
        raw = await rpc.call(
            "eth_call", [{"to": out.liquidator, "data": fn.encode_hex()}, "latest"]
        )
        out.owner = to_checksum_address(fn.decode_one(raw))
    except (RpcError, DecodingError, ValueError, TypeError):
        # Not a liqbot Liquidator (no owner(), or not an address): never send to it.
        return Check(
            "executor.liquidator",
            "FAIL",
            f"{out.liquidator} ({source}) has no owner(): not a liqbot Liquidator",
            "deploy one with `liqbot deploy-executor`, or correct it",
        )
    if signer is None:
        return Check("executor.liquidator", "ok", f"owner {out.owner} (no key: dry run)")
    if out.owner.lower() != signer.address.lower():
        return Check(
            "executor.liquidator",
            "FAIL",
            f"{out.liquidator} ({source}) is owned by {out.owner}, not by the configured key's "
            f"address {signer.address}",
            "configure the owner's key, or deploy your own with `liqbot deploy-executor`",
        )
    return Check("executor.liquidator", "ok", f"owned by the configured key {signer.address}")
