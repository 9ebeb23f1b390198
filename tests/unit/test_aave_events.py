"""Aave V3 log decoding: hand-built raw logs → position effects, with exact integers."""

from __future__ import annotations

import json
from itertools import count

import pytest
from eth_utils import keccak

from bot.adapters.aave_v3 import events as ev
from bot.adapters.aave_v3.events import (
    CollateralFlag,
    EModeChange,
    ScaledDelta,
    StableRefresh,
    TokenMap,
    decode_logs,
)
from bot.api import EventRecord, RawLog

RAY = 10**27


def ray_div_ref(a: int, b: int) -> int:
    """WadRayMath.rayDiv, half up (b/2 truncated first), re-implemented independently."""
    return (a * RAY + b // 2) // b


def topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


MINT = topic0("Mint(address,address,uint256,uint256,uint256)")
BURN = topic0("Burn(address,address,uint256,uint256,uint256)")
TRANSFER = topic0("BalanceTransfer(address,address,uint256,uint256)")
S_MINT = topic0("Mint(address,address,uint256,uint256,uint256,uint256,uint256,uint256)")
S_BURN = topic0("Burn(address,uint256,uint256,uint256,uint256,uint256)")
COLL_ON = topic0("ReserveUsedAsCollateralEnabled(address,address)")
COLL_OFF = topic0("ReserveUsedAsCollateralDisabled(address,address)")
EMODE = topic0("UserEModeSet(address,uint8)")
LIQ = topic0("LiquidationCall(address,address,address,uint256,uint256,address,bool)")
SUPPLY = topic0("Supply(address,address,address,uint256,uint16)")
ERC20_TRANSFER = topic0("Transfer(address,address,uint256)")


def addr(n: int) -> str:
    return "0x" + f"{n:040x}"


POOL = addr(0x9001)
USDC, WETH, UNKNOWN_ASSET = addr(0xA1), addr(0xA2), addr(0xA3)
A_USDC, V_USDC, S_USDC = addr(0xB1), addr(0xB2), addr(0xB3)
A_WETH, V_WETH = addr(0xC1), addr(0xC2)
ALICE, BOB, CAROL = addr(0xA11CE), addr(0xB0B), addr(0xCA501)

TM = TokenMap(
    tokens={
        A_USDC: (0, "a"),
        V_USDC: (0, "v"),
        S_USDC: (0, "s"),
        A_WETH: (1, "a"),
        V_WETH: (1, "v"),
    },
    assets={USDC: 0, WETH: 1},
)

# An index with many significant digits so that half-up rounding matters.
INDEX = 1_023_456_789_012_345_678_901_234_567
INDEX_V = 1_051_234_567_890_123_456_789_012_345

_log_index = count()


def t_addr(a: str) -> str:
    return "0x" + "0" * 24 + a[2:]


def data(*words: int) -> str:
    return "0x" + "".join(f"{w:064x}" for w in words)


def raw(address: str, topics: list[str], words: tuple[int, ...] = (), block: int = 100) -> RawLog:
    return RawLog(
        block_number=block,
        block_hash="0x" + f"{block:064x}",
        tx_hash="0x" + "ab" * 32,
        log_index=next(_log_index),
        address=address,
        topics=tuple(topics),
        data=data(*words),
    )


def mint(token: str, on_behalf: str, value: int, increase: int, index: int) -> RawLog:
    return raw(token, [MINT, t_addr(ALICE), t_addr(on_behalf)], (value, increase, index))


def burn(token: str, frm: str, value: int, increase: int, index: int) -> RawLog:
    return raw(token, [BURN, t_addr(frm), t_addr(CAROL)], (value, increase, index))


def test_topics_match_the_solidity_signatures() -> None:
    assert ev.T_MINT == MINT
    assert ev.T_BURN == BURN
    assert ev.T_TRANSFER == TRANSFER
    assert ev.T_STABLE_MINT == S_MINT
    assert ev.T_STABLE_BURN == S_BURN
    assert ev.T_COLL_ON == COLL_ON
    assert ev.T_COLL_OFF == COLL_OFF
    assert ev.T_EMODE == EMODE
    assert ev.T_LIQUIDATION == LIQ
    assert SUPPLY in ev.ALL_TOPICS
    assert all(t in ev.ALL_TOPICS for t in (MINT, BURN, TRANSFER, S_MINT, S_BURN, LIQ))


def test_reference_ray_div_rounds_half_up() -> None:
    # The amounts below are chosen so that floor division and half-up differ.
    assert ray_div_ref(1_000_000_017, INDEX) == (1_000_000_017 * RAY) // INDEX + 1
    assert ray_div_ref(3, 2 * RAY) == 2  # 1.5 → 2
    assert ray_div_ref(1, 3 * RAY) == 0  # 0.333 → 0


def test_supply_mint_adds_scaled_amount() -> None:
    amount, increase = 1_000_000_017, 12_345
    out = decode_logs([mint(A_USDC, BOB, amount + increase, increase, INDEX)], TM)
    expected = ray_div_ref(amount, INDEX)
    assert expected == (amount * RAY) // INDEX + 1  # rounding up is exercised
    assert out == [ScaledDelta(BOB, 0, atoken=expected)]


def test_interest_only_mint_has_no_effect() -> None:
    # ScaledBalanceTokenBase._transfer: Mint(caller, sender, increase, increase, index).
    out = decode_logs([mint(A_USDC, BOB, 777, 777, INDEX)], TM)
    assert out == []


def test_burn_emitted_as_mint_subtracts() -> None:
    # Withdraw of 100 while 250 of interest accrued: Mint(value = 250 - 100).
    amount, increase = 100_000_003, 250_000_000
    out = decode_logs([mint(A_USDC, BOB, increase - amount, increase, INDEX)], TM)
    assert out == [ScaledDelta(BOB, 0, atoken=-ray_div_ref(amount, INDEX))]
    assert isinstance(out[0], ScaledDelta) and out[0].atoken < 0


def test_burn_subtracts_value_plus_increase() -> None:
    amount, increase = 5_000_000_011, 4_321
    out = decode_logs([burn(A_USDC, BOB, amount - increase, increase, INDEX)], TM)
    assert out == [ScaledDelta(BOB, 0, atoken=-ray_div_ref(amount, INDEX))]


def test_balance_transfer_moves_scaled_amount_between_users() -> None:
    scaled = 987_654_321
    lg = raw(A_WETH, [TRANSFER, t_addr(ALICE), t_addr(BOB)], (scaled, INDEX))
    assert decode_logs([lg], TM) == [
        ScaledDelta(ALICE, 1, atoken=-scaled),
        ScaledDelta(BOB, 1, atoken=scaled),
    ]


def test_balance_transfer_on_debt_token_is_ignored() -> None:
    lg = raw(V_WETH, [TRANSFER, t_addr(ALICE), t_addr(BOB)], (123, INDEX))
    assert decode_logs([lg], TM) == []


def test_variable_debt_mint_and_burn() -> None:
    borrow, inc = 2_000_000_000_000_000_001, 17
    repay, inc2 = 300_000_000_000_000_009, 5
    out = decode_logs(
        [
            mint(V_WETH, ALICE, borrow + inc, inc, INDEX_V),
            burn(V_WETH, ALICE, repay - inc2, inc2, INDEX_V),
            mint(V_WETH, ALICE, 50, 80, INDEX_V),  # repay of 30 below accrued interest
            mint(V_WETH, ALICE, 9, 9, INDEX_V),  # interest only
        ],
        TM,
    )
    assert out == [
        ScaledDelta(ALICE, 1, vdebt=ray_div_ref(borrow, INDEX_V)),
        ScaledDelta(ALICE, 1, vdebt=-ray_div_ref(repay, INDEX_V)),
        ScaledDelta(ALICE, 1, vdebt=-ray_div_ref(30, INDEX_V)),
    ]
    assert all(d.atoken == 0 for d in out if isinstance(d, ScaledDelta))


def test_stable_debt_events_become_refreshes() -> None:
    s_mint = raw(
        S_USDC,
        [S_MINT, t_addr(ALICE), t_addr(BOB)],  # user = caller, onBehalfOf = BOB
        (10, 20, 1, 5 * RAY // 100, 4 * RAY // 100, 1000),
        block=1234,
    )
    s_burn = raw(S_USDC, [S_BURN, t_addr(CAROL)], (1, 2, 3, 4, 5), block=1240)
    # The aToken Mint signature on the stable debt token means nothing there.
    stray = raw(S_USDC, [MINT, t_addr(ALICE), t_addr(ALICE)], (5, 1, INDEX), block=1241)
    assert decode_logs([s_mint, s_burn, stray], TM) == [
        StableRefresh(BOB, 0, 1234),
        StableRefresh(CAROL, 0, 1240),
    ]


def test_collateral_flags() -> None:
    logs = [
        raw(POOL, [COLL_ON, t_addr(WETH), t_addr(ALICE)]),
        raw(POOL, [COLL_OFF, t_addr(USDC), t_addr(BOB)]),
        raw(POOL, [COLL_ON, t_addr(UNKNOWN_ASSET), t_addr(ALICE)]),  # not a listed reserve
    ]
    assert decode_logs(logs, TM) == [
        CollateralFlag(ALICE, 1, True),
        CollateralFlag(BOB, 0, False),
    ]


def test_emode_change() -> None:
    logs = [
        raw(POOL, [EMODE, t_addr(BOB)], (1,)),
        raw(POOL, [EMODE, t_addr(BOB)], (0,)),
    ]
    assert decode_logs(logs, TM) == [EModeChange(BOB, 1), EModeChange(BOB, 0)]


@pytest.mark.parametrize("receive_atoken", [True, False])
def test_liquidation_call_becomes_event_record(receive_atoken: bool) -> None:
    debt_to_cover = 12_345_678_901_234_567_890_123
    seized = 2**200 + 17  # larger than any float can hold exactly
    liquidator = "0x" + "de" * 20
    lg = raw(
        POOL,
        [LIQ, t_addr(WETH), t_addr(USDC), t_addr(ALICE)],
        (debt_to_cover, seized, int(liquidator, 16), int(receive_atoken)),
        block=777,
    )
    (rec,) = decode_logs([lg], TM)
    assert isinstance(rec, EventRecord)
    assert (rec.block, rec.log_index, rec.tx, rec.kind) == (
        777,
        lg.log_index,
        lg.tx_hash,
        "aave.liquidation",
    )
    assert json.loads(rec.payload) == {
        "collateral": WETH,
        "debt": USDC,
        "user": ALICE,
        "debt_to_cover": str(debt_to_cover),
        "collateral_amount": str(seized),
        "liquidator": liquidator,
        "receive_atoken": receive_atoken,
    }


def test_unknown_addresses_and_topics_are_ignored() -> None:
    logs = [
        mint(addr(0xDEAD), BOB, 100, 1, INDEX),  # a Mint from a token we do not track
        burn(addr(0xDEAD), BOB, 100, 1, INDEX),
        raw(A_USDC, [ERC20_TRANSFER, t_addr(ALICE), t_addr(BOB)], (5,)),  # unknown topic
        raw(POOL, [SUPPLY, t_addr(USDC), t_addr(BOB), "0x" + "0" * 64], (1, 2)),
        raw(POOL, ["0x" + "11" * 32, t_addr(ALICE)], (3,)),
    ]
    assert decode_logs(logs, TM) == []
    assert decode_logs([], TM) == []


def test_effects_follow_log_order() -> None:
    liquidator = "0x" + "0f" * 20
    logs = [
        raw(POOL, [EMODE, t_addr(ALICE)], (2,), block=10),
        mint(A_USDC, ALICE, 1_000 + 3, 3, INDEX),
        raw(POOL, [COLL_ON, t_addr(USDC), t_addr(ALICE)], block=10),
        mint(V_WETH, ALICE, 500, 0, INDEX_V),
        raw(S_USDC, [S_BURN, t_addr(BOB)], (1, 1, 1, 1, 1), block=11),
        raw(A_USDC, [TRANSFER, t_addr(ALICE), t_addr(BOB)], (40, INDEX), block=11),
        raw(POOL, [LIQ, t_addr(USDC), t_addr(WETH), t_addr(ALICE)], (1, 2, int(liquidator, 16), 0)),
        burn(A_USDC, ALICE, 10, 2, INDEX),
        raw(POOL, [COLL_OFF, t_addr(USDC), t_addr(ALICE)]),
    ]
    out = decode_logs(logs, TM)
    assert [type(e).__name__ for e in out] == [
        "EModeChange",
        "ScaledDelta",
        "CollateralFlag",
        "ScaledDelta",
        "StableRefresh",
        "ScaledDelta",
        "ScaledDelta",
        "EventRecord",
        "ScaledDelta",
        "CollateralFlag",
    ]
    assert out[:7] == [
        EModeChange(ALICE, 2),
        ScaledDelta(ALICE, 0, atoken=ray_div_ref(1_000, INDEX)),
        CollateralFlag(ALICE, 0, True),
        ScaledDelta(ALICE, 1, vdebt=ray_div_ref(500, INDEX_V)),
        StableRefresh(BOB, 0, 11),
        ScaledDelta(ALICE, 0, atoken=-40),
        ScaledDelta(BOB, 0, atoken=40),
    ]
    rec = out[7]
    assert isinstance(rec, EventRecord)
    assert rec.log_index == logs[6].log_index
    assert out[8:] == [
        ScaledDelta(ALICE, 0, atoken=-ray_div_ref(12, INDEX)),
        CollateralFlag(ALICE, 0, False),
    ]


def test_pool_events_from_another_address_are_ignored() -> None:
    pool = "0x" + "99" * 20
    tm = TokenMap({}, {}, pool)
    topics = (ev.T_EMODE, "0x" + "00" * 12 + "11" * 20)
    data = "0x" + f"{1:064x}"
    genuine = RawLog(1, "0x" + "00" * 32, "0x" + "00" * 32, 0, pool, topics, data)
    impostor = RawLog(1, "0x" + "00" * 32, "0x" + "00" * 32, 1, "0x" + "98" * 20, topics, data)
    assert decode_logs([genuine, impostor], tm) == [EModeChange("0x" + "11" * 20, 1)]
