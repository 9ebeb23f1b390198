"""Read-only views of a devnet market for people: reserves and positions, via Multicall3.

Display only: floats appear here and nowhere in the money path.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.abi import load_abi
from bot.devnet.manifest import Manifest
from bot.multicall import Multicall, Read
from bot.rpc import JsonRpcClient

WAD = 10**18
MAX_UINT = 2**256 - 1


@dataclass(frozen=True, slots=True)
class ReserveRow:
    symbol: str
    price_8: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    protocol_fee: int
    total_supplied: int
    total_borrowed: int
    decimals: int


@dataclass(frozen=True, slots=True)
class AccountRow:
    user: str
    total_collateral_base: int
    total_debt_base: int
    health_factor: int


async def read_reserves(rpc: JsonRpcClient, m: Manifest) -> list[ReserveRow]:
    dp = load_abi("AaveProtocolDataProvider")
    oracle = load_abi("AaveOracle")
    reads = []
    for r in m.reserves:
        reads += [
            Read(m.aave.data_provider, dp.fn("getReserveConfigurationData"), (r.address,)),
            Read(m.aave.data_provider, dp.fn("getLiquidationProtocolFee"), (r.address,)),
            Read(m.aave.data_provider, dp.fn("getReserveData"), (r.address,)),
            Read(m.aave.oracle, oracle.fn("getAssetPrice"), (r.address,)),
        ]
    out = await Multicall(rpc, m.multicall3).read(reads)
    rows = []
    for i, r in enumerate(m.reserves):
        cfg, fee, data, price = out[4 * i : 4 * i + 4]
        rows.append(
            ReserveRow(
                r.symbol, price, cfg[1], cfg[2], cfg[3], fee, data[2], data[3] + data[4], r.decimals
            )
        )
    return rows


async def read_accounts(
    rpc: JsonRpcClient, m: Manifest, users: list[str], block: int | str = "latest"
) -> list[AccountRow]:
    """``getUserAccountData`` for each user, batched through Multicall3."""
    fn = load_abi("Pool").fn("getUserAccountData")
    out = await Multicall(rpc, m.multicall3).read(
        [Read(m.aave.pool, fn, (u,)) for u in users], block
    )
    return [AccountRow(u, o[0], o[1], o[5]) for u, o in zip(users, out, strict=True)]


def hf_display(hf: int) -> str:
    return "∞" if hf == MAX_UINT else f"{hf / WAD:.4f}"
