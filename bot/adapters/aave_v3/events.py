"""Aave V3 logs → position effects. Pure: no I/O, no state.

Scaled balances follow ``ScaledBalanceTokenBase`` exactly: a mint of ``amount`` adds
``amount.rayDiv(index)`` scaled units and emits ``value = amount + balanceIncrease``; a burn
subtracts ``amount.rayDiv(index)`` and emits ``Burn(value = amount - balanceIncrease)``, or,
when the accrued interest exceeds the amount, ``Mint(value = balanceIncrease - amount)``.
So ``value >= balanceIncrease`` is a mint of ``value - balanceIncrease`` and anything else is
a burn of ``balanceIncrease - value`` (a transfer's interest-only mint nets to zero).
``BalanceTransfer`` carries the scaled amount itself.

Stable-debt events cannot be inverted the same way (a burn may be emitted as a ``Mint``
carrying the user's old rate), so they produce a ``StableRefresh`` that the adapter
resolves by reading the user's stable terms at that block.

Event data here is static (uint/address/bool words), so fields are sliced out of the hex
directly; this is the backfill's hot loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.abi import load_abi
from bot.adapters.aave_v3.math import ray_div
from bot.api import EventRecord, RawLog

_POOL = load_abi("Pool")
_ATOKEN = load_abi("AToken")
_STABLE = load_abi("StableDebtToken")

T_MINT = _ATOKEN.event("Mint").topic0_hex  # same signature on the variable debt token
T_BURN = _ATOKEN.event("Burn").topic0_hex
T_TRANSFER = _ATOKEN.event("BalanceTransfer").topic0_hex
T_STABLE_MINT = _STABLE.event("Mint").topic0_hex
T_STABLE_BURN = _STABLE.event("Burn").topic0_hex
T_COLL_ON = _POOL.event("ReserveUsedAsCollateralEnabled").topic0_hex
T_COLL_OFF = _POOL.event("ReserveUsedAsCollateralDisabled").topic0_hex
T_EMODE = _POOL.event("UserEModeSet").topic0_hex
T_LIQUIDATION = _POOL.event("LiquidationCall").topic0_hex
# Indexed for completeness and for history; balances come from the token events.
T_POOL_OTHER = tuple(
    _POOL.event(n).topic0_hex
    for n in ("Supply", "Withdraw", "Borrow", "Repay", "ReserveDataUpdated")
)
ALL_TOPICS = (
    T_MINT, T_BURN, T_TRANSFER, T_STABLE_MINT, T_STABLE_BURN,
    T_COLL_ON, T_COLL_OFF, T_EMODE, T_LIQUIDATION, *T_POOL_OTHER,
)  # fmt: skip

ATOKEN, VDEBT, SDEBT = "a", "v", "s"


@dataclass(frozen=True, slots=True)
class ScaledDelta:
    user: str
    reserve: int
    atoken: int = 0
    vdebt: int = 0


@dataclass(frozen=True, slots=True)
class CollateralFlag:
    user: str
    reserve: int
    enabled: bool


@dataclass(frozen=True, slots=True)
class EModeChange:
    user: str
    category: int


@dataclass(frozen=True, slots=True)
class StableRefresh:
    user: str
    reserve: int
    block: int


@dataclass(frozen=True, slots=True)
class StableTerms:
    user: str
    reserve: int
    principal: int
    rate: int
    last_update: int


Effect = ScaledDelta | CollateralFlag | EModeChange | StableRefresh | StableTerms | EventRecord


@dataclass(frozen=True, slots=True)
class TokenMap:
    """Lower-case token address → (reserve id, kind), asset → reserve id, and the pool
    (pool events from any other address are ignored; None accepts any)."""

    tokens: Mapping[str, tuple[int, str]]
    assets: Mapping[str, int]
    pool: str | None = None


def _addr(topic: str) -> str:
    return "0x" + topic[26:]


def _word(data: str, i: int) -> int:
    return int(data[2 + 64 * i : 66 + 64 * i], 16)


def decode_logs(logs: Sequence[RawLog], tm: TokenMap) -> list[Effect]:
    out: list[Effect] = []
    tokens, assets = tm.tokens, tm.assets
    for lg in logs:
        t0 = lg.topics[0]
        tok = tokens.get(lg.address)
        if tok is not None:
            rid, kind = tok
            if kind == SDEBT:
                if t0 in (T_STABLE_MINT, T_STABLE_BURN):
                    user = _addr(lg.topics[2] if t0 == T_STABLE_MINT else lg.topics[1])
                    out.append(StableRefresh(user, rid, lg.block_number))
                continue
            if t0 == T_MINT:
                value, increase, index = _word(lg.data, 0), _word(lg.data, 1), _word(lg.data, 2)
                user = _addr(lg.topics[2])
                scaled = (
                    ray_div(value - increase, index)
                    if value >= increase
                    else -ray_div(increase - value, index)
                )
            elif t0 == T_BURN:
                value, increase, index = _word(lg.data, 0), _word(lg.data, 1), _word(lg.data, 2)
                user = _addr(lg.topics[1])
                scaled = -ray_div(value + increase, index)
            elif t0 == T_TRANSFER and kind == ATOKEN:
                amount = _word(lg.data, 0)
                out.append(ScaledDelta(_addr(lg.topics[1]), rid, atoken=-amount))
                out.append(ScaledDelta(_addr(lg.topics[2]), rid, atoken=amount))
                continue
            else:
                continue
            if scaled:
                out.append(
                    ScaledDelta(user, rid, atoken=scaled)
                    if kind == ATOKEN
                    else ScaledDelta(user, rid, vdebt=scaled)
                )
            continue
        if tm.pool is not None and lg.address != tm.pool:
            continue
        if t0 in (T_COLL_ON, T_COLL_OFF):
            rid_ = assets.get(_addr(lg.topics[1]))
            if rid_ is not None:
                out.append(CollateralFlag(_addr(lg.topics[2]), rid_, t0 == T_COLL_ON))
        elif t0 == T_EMODE:
            out.append(EModeChange(_addr(lg.topics[1]), _word(lg.data, 0)))
        elif t0 == T_LIQUIDATION:
            payload = {
                "collateral": _addr(lg.topics[1]),
                "debt": _addr(lg.topics[2]),
                "user": _addr(lg.topics[3]),
                "debt_to_cover": str(_word(lg.data, 0)),
                "collateral_amount": str(_word(lg.data, 1)),
                "liquidator": "0x" + lg.data[2 + 64 * 2 + 24 : 2 + 64 * 3],
                "receive_atoken": bool(_word(lg.data, 3)),
            }
            out.append(
                EventRecord(
                    lg.block_number,
                    lg.log_index,
                    lg.tx_hash,
                    "aave.liquidation",
                    json.dumps(payload),
                )
            )
    return out
