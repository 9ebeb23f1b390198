"""Aave V3 configuration bitmaps: ``ReserveConfigurationMap`` and ``UserConfigurationMap``.

Bit layout from ``protocol/libraries/configuration/ReserveConfiguration.sol`` and
``UserConfiguration.sol`` of core-v3 1.19.3 (protocol v3.0.x). Bits 252-255 of the
reserve bitmap are unused in this version and are ignored by the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.adapters.aave_v3.math import UINT256_MAX

# (start bit, width) of each field; widths follow the contract's *_MASK constants.
LTV_BITS = (0, 16)
LIQUIDATION_THRESHOLD_BITS = (16, 16)
LIQUIDATION_BONUS_BITS = (32, 16)
DECIMALS_BITS = (48, 8)
ACTIVE_BIT = 56
FROZEN_BIT = 57
BORROWING_ENABLED_BIT = 58
STABLE_BORROWING_ENABLED_BIT = 59
PAUSED_BIT = 60
BORROWABLE_IN_ISOLATION_BIT = 61
SILOED_BORROWING_BIT = 62
FLASHLOAN_ENABLED_BIT = 63
RESERVE_FACTOR_BITS = (64, 16)
BORROW_CAP_BITS = (80, 36)
SUPPLY_CAP_BITS = (116, 36)
LIQUIDATION_PROTOCOL_FEE_BITS = (152, 16)
EMODE_CATEGORY_BITS = (168, 8)
UNBACKED_MINT_CAP_BITS = (176, 36)
DEBT_CEILING_BITS = (212, 40)

# ReserveConfiguration.MAX_RESERVES_COUNT: the user bitmap has two bits per reserve.
MAX_RESERVES_COUNT = 128


@dataclass(frozen=True, slots=True)
class ReserveConfig:
    """Decoded ``DataTypes.ReserveConfigurationMap`` (percentages in bps, caps in whole units).

    Decoding sets every field; the defaults describe a plain active, borrowable reserve so
    that hand-built configurations (tests, benchmarks) state only what differs.
    """

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    decimals: int
    active: bool = True
    frozen: bool = False
    borrowing_enabled: bool = True
    stable_borrowing_enabled: bool = False
    paused: bool = False
    borrowable_in_isolation: bool = False
    siloed_borrowing: bool = False
    flashloan_enabled: bool = True
    reserve_factor: int = 0
    borrow_cap: int = 0
    supply_cap: int = 0
    liquidation_protocol_fee: int = 0
    emode_category: int = 0
    unbacked_mint_cap: int = 0
    debt_ceiling: int = 0


def _get(data: int, bits: tuple[int, int]) -> int:
    start, width = bits
    return (data >> start) & ((1 << width) - 1)


def _flag(data: int, bit: int) -> bool:
    return (data >> bit) & 1 != 0


def _put(name: str, value: int, bits: tuple[int, int]) -> int:
    start, width = bits
    # The setters `require(value <= MAX_VALID_*)`; MAX_VALID_* is always 2**width - 1.
    if not 0 <= value < (1 << width):
        raise ValueError(f"{name}={value} does not fit {width} bits")
    return value << start


def decode_reserve_config(data: int) -> ReserveConfig:
    """Decode ``ReserveConfigurationMap.data`` as the ``get*`` functions of the library do."""
    if not 0 <= data <= UINT256_MAX:
        raise ValueError(f"not a uint256: {data}")
    return ReserveConfig(
        ltv=_get(data, LTV_BITS),
        liquidation_threshold=_get(data, LIQUIDATION_THRESHOLD_BITS),
        liquidation_bonus=_get(data, LIQUIDATION_BONUS_BITS),
        decimals=_get(data, DECIMALS_BITS),
        active=_flag(data, ACTIVE_BIT),
        frozen=_flag(data, FROZEN_BIT),
        borrowing_enabled=_flag(data, BORROWING_ENABLED_BIT),
        stable_borrowing_enabled=_flag(data, STABLE_BORROWING_ENABLED_BIT),
        paused=_flag(data, PAUSED_BIT),
        borrowable_in_isolation=_flag(data, BORROWABLE_IN_ISOLATION_BIT),
        siloed_borrowing=_flag(data, SILOED_BORROWING_BIT),
        flashloan_enabled=_flag(data, FLASHLOAN_ENABLED_BIT),
        reserve_factor=_get(data, RESERVE_FACTOR_BITS),
        borrow_cap=_get(data, BORROW_CAP_BITS),
        supply_cap=_get(data, SUPPLY_CAP_BITS),
        liquidation_protocol_fee=_get(data, LIQUIDATION_PROTOCOL_FEE_BITS),
        emode_category=_get(data, EMODE_CATEGORY_BITS),
        unbacked_mint_cap=_get(data, UNBACKED_MINT_CAP_BITS),
        debt_ceiling=_get(data, DEBT_CEILING_BITS),
    )


def encode_reserve_config(cfg: ReserveConfig) -> int:
    """Inverse of :func:`decode_reserve_config`, with the setters' range checks."""
    flags = (
        (cfg.active, ACTIVE_BIT),
        (cfg.frozen, FROZEN_BIT),
        (cfg.borrowing_enabled, BORROWING_ENABLED_BIT),
        (cfg.stable_borrowing_enabled, STABLE_BORROWING_ENABLED_BIT),
        (cfg.paused, PAUSED_BIT),
        (cfg.borrowable_in_isolation, BORROWABLE_IN_ISOLATION_BIT),
        (cfg.siloed_borrowing, SILOED_BORROWING_BIT),
        (cfg.flashloan_enabled, FLASHLOAN_ENABLED_BIT),
    )
    data = (
        _put("ltv", cfg.ltv, LTV_BITS)
        | _put("liquidation_threshold", cfg.liquidation_threshold, LIQUIDATION_THRESHOLD_BITS)
        | _put("liquidation_bonus", cfg.liquidation_bonus, LIQUIDATION_BONUS_BITS)
        | _put("decimals", cfg.decimals, DECIMALS_BITS)
        | _put("reserve_factor", cfg.reserve_factor, RESERVE_FACTOR_BITS)
        | _put("borrow_cap", cfg.borrow_cap, BORROW_CAP_BITS)
        | _put("supply_cap", cfg.supply_cap, SUPPLY_CAP_BITS)
        | _put(
            "liquidation_protocol_fee",
            cfg.liquidation_protocol_fee,
            LIQUIDATION_PROTOCOL_FEE_BITS,
        )
        | _put("emode_category", cfg.emode_category, EMODE_CATEGORY_BITS)
        | _put("unbacked_mint_cap", cfg.unbacked_mint_cap, UNBACKED_MINT_CAP_BITS)
        | _put("debt_ceiling", cfg.debt_ceiling, DEBT_CEILING_BITS)
    )
    for enabled, bit in flags:
        if enabled:
            data |= 1 << bit
    return data


def decode_user_config(data: int, reserves_count: int) -> tuple[frozenset[int], frozenset[int]]:
    """Split ``UserConfigurationMap.data`` into (collateral ids, borrowing ids).

    Bit ``2*id`` is ``isBorrowing``, bit ``2*id + 1`` is ``isUsingAsCollateral``. Only ids
    below ``reserves_count`` are reported, as ``calculateUserAccountData`` only walks those.
    """
    if not 0 <= data <= UINT256_MAX:
        raise ValueError(f"not a uint256: {data}")
    if not 0 <= reserves_count <= MAX_RESERVES_COUNT:
        raise ValueError(f"reserves_count={reserves_count} outside 0..{MAX_RESERVES_COUNT}")
    collateral = frozenset(i for i in range(reserves_count) if (data >> (2 * i + 1)) & 1)
    borrowing = frozenset(i for i in range(reserves_count) if (data >> (2 * i)) & 1)
    return collateral, borrowing
