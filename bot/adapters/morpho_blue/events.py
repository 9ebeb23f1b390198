"""Morpho Blue logs → state effects. Pure: no I/O, no state.

Every event of ``EventsLib`` that changes a market or a position carries the exact deltas
``Morpho.sol`` applied, so the state follows from the events alone:

- ``CreateMarket(id, params)``: a new market, ``lastUpdate`` = the block's timestamp.
- ``SetFee(id, fee)``: the fee (the accrual at the old fee is its own event before it).
- ``SetFeeRecipient(r)``: who receives fee shares from now on.
- ``AccrueInterest(id, rate, interest, feeShares)``: both asset totals + interest; the
  supply shares and the fee recipient's shares + feeShares.
- ``Supply`` / ``Withdraw``: ± supply shares of onBehalf and of the market, ± supply assets.
- ``Borrow``: + borrow shares of onBehalf and of the market, + borrow assets.
- ``Repay``: − borrow shares; borrow assets ``zeroFloorSub`` the repaid assets.
- ``SupplyCollateral`` / ``WithdrawCollateral``: ± collateral.
- ``Liquidate``: as ``Repay``, − collateral, then any bad debt written off the borrow
  and supply totals (and the event kept as history).

Functions that run ``_accrueInterest`` set ``lastUpdate`` to the block's timestamp even
when no interest accrues (no ``AccrueInterest`` event then), so their effects are marked
``accrues`` and get the timestamp in the adapter's ``resolve`` step; ``SupplyCollateral``
does not accrue. Addresses are lower-case hex; market ids 0x-prefixed lower-case hex.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from bot.abi import load_abi
from bot.adapters.morpho_blue.types import MarketParams
from bot.api import EventRecord, RawLog

_MORPHO = load_abi("Morpho")

T_CREATE = _MORPHO.event("CreateMarket").topic0_hex
T_SET_FEE = _MORPHO.event("SetFee").topic0_hex
T_FEE_RECIPIENT = _MORPHO.event("SetFeeRecipient").topic0_hex
T_ACCRUE = _MORPHO.event("AccrueInterest").topic0_hex
T_SUPPLY = _MORPHO.event("Supply").topic0_hex
T_WITHDRAW = _MORPHO.event("Withdraw").topic0_hex
T_BORROW = _MORPHO.event("Borrow").topic0_hex
T_REPAY = _MORPHO.event("Repay").topic0_hex
T_SUPPLY_COLLATERAL = _MORPHO.event("SupplyCollateral").topic0_hex
T_WITHDRAW_COLLATERAL = _MORPHO.event("WithdrawCollateral").topic0_hex
T_LIQUIDATE = _MORPHO.event("Liquidate").topic0_hex
ALL_TOPICS = (
    T_CREATE,
    T_SET_FEE,
    T_FEE_RECIPIENT,
    T_ACCRUE,
    T_SUPPLY,
    T_WITHDRAW,
    T_BORROW,
    T_REPAY,
    T_SUPPLY_COLLATERAL,
    T_WITHDRAW_COLLATERAL,
    T_LIQUIDATE,
)
LIQUIDATION_KIND = "morpho.liquidation"


@dataclass(frozen=True, slots=True)
class MarketCreated:
    block: int
    params: MarketParams
    timestamp: int | None = None  # filled by resolve

    @property
    def id(self) -> str:
        return self.params.id


@dataclass(frozen=True, slots=True)
class FeeSet:
    block: int
    id: str
    fee: int
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class FeeRecipientSet:
    recipient: str


@dataclass(frozen=True, slots=True)
class InterestAccrued:
    block: int
    id: str
    interest: int
    fee_shares: int
    timestamp: int | None = None
    # Who got the fee shares: the fee recipient in force at this log, filled by resolve
    # (it is state, not in the event) so that applying the effect needs no other state.
    fee_recipient: str | None = None


@dataclass(frozen=True, slots=True)
class PositionChange:
    """Signed deltas to one position and, equally, to its market's totals (shares move in
    step; the market's assets move by ``*_assets``). ``floor_borrow_assets`` subtracts
    ``-borrow_assets`` with ``zeroFloorSub`` (repay and liquidate do: the assets repaid
    may exceed the total by one)."""

    block: int
    id: str
    user: str
    supply_shares: int = 0
    borrow_shares: int = 0
    collateral: int = 0
    supply_assets: int = 0
    borrow_assets: int = 0
    floor_borrow_assets: bool = False
    accrues: bool = True
    timestamp: int | None = None


Effect = MarketCreated | FeeSet | FeeRecipientSet | InterestAccrued | PositionChange | EventRecord


def _addr(topic: str) -> str:
    return "0x" + topic[26:]


def _word(data: str, i: int) -> int:
    return int(data[2 + 64 * i : 66 + 64 * i], 16)


def _word_addr(data: str, i: int) -> str:
    return "0x" + data[2 + 64 * i + 24 : 66 + 64 * i]


def decode_logs(logs: Sequence[RawLog], morpho: str) -> list[Effect]:
    """Effects of ``logs`` (chain order) emitted by the Morpho contract at ``morpho``."""
    out: list[Effect] = []
    for lg in logs:
        if lg.address != morpho:
            continue
        t0, d, b = lg.topics[0], lg.data, lg.block_number
        if t0 in (T_SUPPLY, T_WITHDRAW, T_BORROW, T_REPAY):
            mid = lg.topics[1]
            # Withdraw and Borrow index (onBehalf, receiver) and put the caller first in
            # data; Supply and Repay index (caller, onBehalf).
            moves_out = t0 in (T_WITHDRAW, T_BORROW)
            user = _addr(lg.topics[2] if moves_out else lg.topics[3])
            assets, shares = _word(d, int(moves_out)), _word(d, int(moves_out) + 1)
            if t0 == T_SUPPLY:
                out.append(PositionChange(b, mid, user, supply_shares=shares, supply_assets=assets))
            elif t0 == T_WITHDRAW:
                out.append(
                    PositionChange(b, mid, user, supply_shares=-shares, supply_assets=-assets)
                )
            elif t0 == T_BORROW:
                out.append(PositionChange(b, mid, user, borrow_shares=shares, borrow_assets=assets))
            else:
                out.append(
                    PositionChange(
                        b,
                        mid,
                        user,
                        borrow_shares=-shares,
                        borrow_assets=-assets,
                        floor_borrow_assets=True,
                    )
                )
        elif t0 == T_SUPPLY_COLLATERAL:
            out.append(
                PositionChange(
                    b, lg.topics[1], _addr(lg.topics[3]), collateral=_word(d, 0), accrues=False
                )
            )
        elif t0 == T_WITHDRAW_COLLATERAL:
            out.append(
                PositionChange(b, lg.topics[1], _addr(lg.topics[2]), collateral=-_word(d, 1))
            )
        elif t0 == T_ACCRUE:
            out.append(InterestAccrued(b, lg.topics[1], _word(d, 1), _word(d, 2)))
        elif t0 == T_LIQUIDATE:
            out += _liquidation(lg)
        elif t0 == T_CREATE:
            params = MarketParams(
                _word_addr(d, 0), _word_addr(d, 1), _word_addr(d, 2), _word_addr(d, 3), _word(d, 4)
            )
            out.append(MarketCreated(b, params))
        elif t0 == T_SET_FEE:
            out.append(FeeSet(b, lg.topics[1], _word(d, 0)))
        elif t0 == T_FEE_RECIPIENT:
            out.append(FeeRecipientSet(_addr(lg.topics[1])))
    return out


def _liquidation(lg: RawLog) -> list[Effect]:
    d, b, mid = lg.data, lg.block_number, lg.topics[1]
    borrower = _addr(lg.topics[3])
    repaid_assets, repaid_shares, seized, bad_assets, bad_shares = (_word(d, i) for i in range(5))
    out: list[Effect] = [
        PositionChange(
            b,
            mid,
            borrower,
            borrow_shares=-repaid_shares,
            borrow_assets=-repaid_assets,
            floor_borrow_assets=True,
            collateral=-seized,
        )
    ]
    if bad_shares or bad_assets:
        out.append(
            PositionChange(
                b,
                mid,
                borrower,
                borrow_shares=-bad_shares,
                borrow_assets=-bad_assets,
                supply_assets=-bad_assets,
            )
        )
    payload = {
        "id": mid,
        "caller": _addr(lg.topics[2]),
        "borrower": borrower,
        "repaid_assets": str(repaid_assets),
        "repaid_shares": str(repaid_shares),
        "seized_assets": str(seized),
        "bad_debt_assets": str(bad_assets),
        "bad_debt_shares": str(bad_shares),
    }
    out.append(EventRecord(b, lg.log_index, lg.tx_hash, LIQUIDATION_KIND, json.dumps(payload)))
    return out
