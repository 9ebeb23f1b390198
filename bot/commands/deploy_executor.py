"""``liqbot deploy-executor``: deploy the flash-loan ``Liquidator`` with the operator's key
and record it next to the database, for ``liqbot run`` and ``liqbot config check``.

Precedence: ``executor.liquidator`` (config file or ``LIQBOT_EXECUTOR__LIQUIDATOR``) wins;
when it is unset, the record ``<database>.deployments.json`` entry of the node's chain id
is used. Nothing is sent while any start-up check fails, and nothing is recorded unless
the contract is mined and reports the key's address as its owner.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.rpc import JsonRpcClient


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    add_settings_arguments(parser)
    parser.add_argument(
        "--replace",
        action="store_true",
        help="deploy even though a liquidator is configured or recorded for this chain",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the receipt"
    )


async def run(args: argparse.Namespace) -> int:
    from decimal import Decimal

    from bot.commands._common import load_settings
    from bot.deployments import record, record_path
    from bot.errors import ConfigError
    from bot.execution.deploy import deploy_liquidator
    from bot.execution.keys import load_signer
    from bot.preflight import preflight
    from bot.wiring import rpc_client

    settings = load_settings(args)
    ex = settings.executor
    signer = load_signer(
        key_env=ex.private_key_env, keystore=ex.keystore, password_file=ex.password_file
    )
    if signer is None:
        raise ConfigError(
            "executor.private_key_env",
            f"no key: ${ex.private_key_env} is unset and executor.keystore is not set",
            fix=f"export the deployer's key in ${ex.private_key_env}, or set executor.keystore "
            "and executor.password_file",
        )
    factory = settings.swap.uniswap_v2_factory
    if factory is None:
        raise ConfigError(
            "swap.uniswap_v2_factory",
            "unset: the Liquidator sells seized collateral on this factory's pairs",
            fix="set it to a Uniswap-V2-compatible factory (the presets have one)",
        )
    database = settings.indexer.database
    async with rpc_client(settings) as rpc:
        checked = await preflight(rpc, settings, signer)
        # The current liquidator's own checks do not stop a deployment meant to replace it.
        blocking = [c for c in checked.failures if c.key != "executor.liquidator"]
        if blocking:
            raise blocking[0].error()
        assert checked.chain_id is not None
        if checked.liquidator is not None and not args.replace:
            where = "executor.liquidator" if ex.liquidator else str(record_path(database))
            raise ConfigError(
                "executor.liquidator",
                f"chain {checked.chain_id} already has {checked.liquidator} (from {where})",
                fix="use it, or pass --replace to deploy another",
            )
        pool = await _flash_pool(rpc, settings)
        gwei = Decimal(10**9)
        print(f"deploying Liquidator(pool {pool}, factory {factory}) from {signer.address}")
        deployment = await deploy_liquidator(
            rpc,
            signer,
            checked.chain_id,
            pool=pool,
            factory=factory,
            priority_fee_wei=int(ex.priority_fee_gwei * gwei),
            max_fee_wei=int(ex.max_fee_gwei * gwei),
            timeout_s=args.timeout,
        )
    path = record(database, checked.chain_id, deployment)
    print(
        f"deployed in {deployment.tx_hash} (block {deployment.block}), owner {deployment.owner}\n"
        f'executor.liquidator = "{deployment.liquidator}"\n'
        f"recorded for chain {checked.chain_id} in {path}: `liqbot run` uses it while "
        "executor.liquidator is unset",
        flush=True,
    )
    return 0


async def _flash_pool(rpc: JsonRpcClient, settings: Settings) -> str:
    """The Aave pool the liquidator flash-borrows from; none for protocols that hand the
    collateral over before payment (Morpho Blue's callback)."""
    from bot.abi import load_abi
    from bot.config import MarketSettings

    m = settings.market
    if not isinstance(m, MarketSettings):
        return "0x" + "00" * 20
    provider = load_abi("PoolAddressesProvider").fn("getPool")
    return str(
        provider.decode_one(
            await rpc.call(
                "eth_call",
                [{"to": m.pool_addresses_provider, "data": provider.encode_hex()}, "latest"],
            )
        )
    )
