"""ReserveConfigurationMap / UserConfigurationMap decoding against the contract's masks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bot.adapters.aave_v3.config import (
    ReserveConfig,
    decode_reserve_config,
    decode_user_config,
    encode_reserve_config,
)

UINT256_MAX = 2**256 - 1

# Copied verbatim from ReserveConfiguration.sol (core-v3 1.19.3); ~MASK selects the field.
MASKS: dict[str, int] = {
    "ltv": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF0000,
    "liquidation_threshold": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF0000FFFF,
    "liquidation_bonus": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF0000FFFFFFFF,
    "decimals": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00FFFFFFFFFFFF,
    "active": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFFFFFFFF,
    "frozen": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDFFFFFFFFFFFFFF,
    "borrowing_enabled": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFBFFFFFFFFFFFFFF,
    "stable_borrowing_enabled": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF7FFFFFFFFFFFFFF,
    "paused": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFFFFFFFFF,
    "borrowable_in_isolation": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDFFFFFFFFFFFFFFF,
    "siloed_borrowing": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFBFFFFFFFFFFFFFFF,
    "flashloan_enabled": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF7FFFFFFFFFFFFFFF,
    "reserve_factor": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF0000FFFFFFFFFFFFFFFF,
    "borrow_cap": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF000000000FFFFFFFFFFFFFFFFFFFF,
    "supply_cap": 0xFFFFFFFFFFFFFFFFFFFFFFFFFF000000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    "liquidation_protocol_fee": 0xFFFFFFFFFFFFFFFFFFFFFF0000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    "emode_category": 0xFFFFFFFFFFFFFFFFFFFF00FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    "unbacked_mint_cap": 0xFFFFFFFFFFF000000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    "debt_ceiling": 0xF0000000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
}

# MAX_VALID_* constants of the same file (flags: True).
MAX_VALUES: dict[str, Any] = {
    "ltv": 65535,
    "liquidation_threshold": 65535,
    "liquidation_bonus": 65535,
    "decimals": 255,
    "active": True,
    "frozen": True,
    "borrowing_enabled": True,
    "stable_borrowing_enabled": True,
    "paused": True,
    "borrowable_in_isolation": True,
    "siloed_borrowing": True,
    "flashloan_enabled": True,
    "reserve_factor": 65535,
    "borrow_cap": 68719476735,
    "supply_cap": 68719476735,
    "liquidation_protocol_fee": 65535,
    "emode_category": 255,
    "unbacked_mint_cap": 68719476735,
    "debt_ceiling": 1099511627775,
}

ZERO = ReserveConfig(**{name: type(v)(0) for name, v in MAX_VALUES.items()})


def test_fields_match_the_contract() -> None:
    assert [f.name for f in dataclasses.fields(ReserveConfig)] == list(MAX_VALUES)


@pytest.mark.parametrize("name", list(MASKS))
def test_each_mask_decodes_to_exactly_one_field_at_max(name: str) -> None:
    data = ~MASKS[name] & UINT256_MAX
    expected = dataclasses.replace(ZERO, **{name: MAX_VALUES[name]})
    assert decode_reserve_config(data) == expected
    assert encode_reserve_config(expected) == data


def test_every_field_at_max_round_trips() -> None:
    every_max = ReserveConfig(**MAX_VALUES)
    # The fields tile bits 0..251 with no gap: all set is 2**252 - 1.
    assert encode_reserve_config(every_max) == 2**252 - 1
    assert decode_reserve_config(2**252 - 1) == every_max
    # Bits 252..255 are unused in v3.0 and must not leak into any field.
    assert decode_reserve_config(UINT256_MAX) == every_max
    assert decode_reserve_config(0xF << 252) == ZERO


def test_realistic_weth_like_config() -> None:
    cfg = ReserveConfig(
        ltv=8050,
        liquidation_threshold=8300,
        liquidation_bonus=10500,
        decimals=18,
        reserve_factor=1500,
        borrow_cap=1_400_000,
        supply_cap=1_800_000,
        liquidation_protocol_fee=1000,
        emode_category=1,
    )
    # Hand-assembled from the start-bit positions.
    data = (
        8050
        | 8300 << 16
        | 10500 << 32
        | 18 << 48
        | 1 << 56
        | 1 << 58
        | 1 << 63
        | 1500 << 64
        | 1_400_000 << 80
        | 1_800_000 << 116
        | 1000 << 152
        | 1 << 168
    )
    assert encode_reserve_config(cfg) == data
    assert decode_reserve_config(data) == cfg


@pytest.mark.parametrize(
    ("name", "value"),
    [("ltv", 65536), ("decimals", 256), ("debt_ceiling", 2**40), ("borrow_cap", -1)],
)
def test_encode_rejects_out_of_range(name: str, value: int) -> None:
    bad: dict[str, Any] = {name: value}
    with pytest.raises(ValueError):
        encode_reserve_config(dataclasses.replace(ZERO, **bad))


def test_decode_rejects_non_uint256() -> None:
    with pytest.raises(ValueError):
        decode_reserve_config(2**256)
    with pytest.raises(ValueError):
        decode_reserve_config(-1)


def test_user_config_bits() -> None:
    # id0 borrowing (bit 0), id1 collateral (bit 3), id2 both (bits 4 and 5): 1+8+16+32
    data = 0b111001
    assert decode_user_config(data, 3) == (frozenset({1, 2}), frozenset({0, 2}))
    # Only ids below reserves_count are walked.
    assert decode_user_config(data, 2) == (frozenset({1}), frozenset({0}))
    assert decode_user_config(0, 128) == (frozenset(), frozenset())


def test_user_config_last_reserve_and_bounds() -> None:
    assert decode_user_config(1 << 255, 128) == (frozenset({127}), frozenset())
    assert decode_user_config(1 << 254, 128) == (frozenset(), frozenset({127}))
    with pytest.raises(ValueError):
        decode_user_config(0, 129)
    with pytest.raises(ValueError):
        decode_user_config(2**256, 1)
