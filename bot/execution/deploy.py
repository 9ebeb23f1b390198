"""Deploy the ``Liquidator`` contract with the operator's own key (a signed EIP-1559
transaction, never an unlocked node account), then verify its owner.

The creation code is the committed artifact (``contracts/out/Liquidator.json``, shipped in
the wheel as ``bot/contracts``); its constructor takes the Aave pool and the Uniswap V2
factory, and makes the deployer the owner.
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from typing import Any

from eth_utils import to_checksum_address

from bot.abi import ContractAbi
from bot.deployments import Deployment
from bot.errors import ArtifactError, ConfigError, LiqbotError
from bot.execution.keys import Signer
from bot.execution.liquidator import LIQUIDATOR_ABI
from bot.rpc import JsonRpcClient, to_int

# Gas estimates are exact for the pending state; the pad covers a block that differs.
GAS_PAD_NUM, GAS_PAD_DEN = 6, 5


def liquidator_creation_code(pool: str, factory: str) -> bytes:
    packaged = resources.files("bot") / "contracts" / "Liquidator.json"
    if packaged.is_file():
        text = packaged.read_text()
    else:  # a source checkout: the committed artifacts
        from bot.devnet.artifacts import contracts_out

        path = contracts_out() / "Liquidator.json"
        if not path.is_file():
            raise ArtifactError(f"missing {path}: run `node scripts/compile_contracts.mjs`")
        text = path.read_text()
    data: dict[str, Any] = json.loads(text)
    abi = ContractAbi("Liquidator", data["abi"])
    return bytes.fromhex(data["bytecode"].removeprefix("0x")) + abi.encode_constructor(
        pool, factory
    )


async def deploy_liquidator(
    rpc: JsonRpcClient,
    signer: Signer,
    chain_id: int,
    *,
    pool: str,
    factory: str,
    priority_fee_wei: int,
    max_fee_wei: int,
    timeout_s: float = 300.0,
    poll_s: float = 1.0,
) -> Deployment:
    """Send the deployment, wait for its receipt, check ``owner()`` is the signer."""
    data = "0x" + liquidator_creation_code(pool, factory).hex()
    sender = signer.address
    nonce, estimate, block, balance = await asyncio.gather(
        rpc.call("eth_getTransactionCount", [sender, "pending"]),
        rpc.call("eth_estimateGas", [{"from": sender, "data": data}]),
        rpc.call("eth_getBlockByNumber", ["latest", False]),
        rpc.call("eth_getBalance", [sender, "latest"]),
    )
    gas = to_int(estimate) * GAS_PAD_NUM // GAS_PAD_DEN
    base = to_int(block.get("baseFeePerGas") or 0)
    if base + priority_fee_wei > max_fee_wei:
        raise ConfigError(
            "executor.max_fee_gwei",
            f"the base fee ({base / 1e9:.2f} gwei) plus the priority fee exceed it",
            fix="raise it, or deploy when fees are lower",
        )
    # Twice the base fee survives several full blocks of base-fee growth (12.5% each).
    max_fee = min(max_fee_wei, 2 * base + priority_fee_wei)
    need = gas * max_fee
    if to_int(balance) < need:
        raise ConfigError(
            "executor.private_key_env",
            f"{sender} holds {to_int(balance) / 1e18:.6f} of the gas token; the deployment "
            f"may cost up to {need / 1e18:.6f}",
            fix=f"fund {sender}",
        )
    raw = signer.sign(
        {
            "type": 2,
            "chainId": chain_id,
            "nonce": to_int(nonce),
            "to": None,
            "data": data,
            "value": 0,
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority_fee_wei,
        }
    )
    tx_hash = str(await rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()]))
    receipt = await _receipt(rpc, tx_hash, timeout_s, poll_s)
    if to_int(receipt["status"]) != 1 or not receipt.get("contractAddress"):
        raise LiqbotError(f"the deployment {tx_hash} reverted: nothing was deployed")
    address = str(receipt["contractAddress"])
    fn = LIQUIDATOR_ABI.fn("owner")
    answer = await rpc.call("eth_call", [{"to": address, "data": fn.encode_hex()}, "latest"])
    owner = to_checksum_address(fn.decode_one(answer))
    if owner.lower() != sender.lower():
        raise LiqbotError(f"the liquidator at {address} reports owner {owner}, not {sender}")
    return Deployment(
        liquidator=to_checksum_address(address),
        owner=owner,
        tx_hash=tx_hash,
        block=to_int(receipt["blockNumber"]),
    )


async def _receipt(
    rpc: JsonRpcClient, tx_hash: str, timeout_s: float, poll_s: float
) -> dict[str, Any]:
    # Plain HTTP nodes have no receipt subscription: poll, with a deadline.
    deadline = time.monotonic() + timeout_s
    while True:
        receipt = await rpc.call("eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return dict(receipt)
        if time.monotonic() > deadline:
            raise LiqbotError(
                f"{tx_hash} not mined within {timeout_s:.0f}s: it may still be; check it in a "
                "block explorer before deploying again (the nonce is the same)"
            )
        await asyncio.sleep(poll_s)
