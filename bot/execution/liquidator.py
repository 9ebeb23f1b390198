"""The flash-loan liquidator contract (``contracts/src/Liquidator.sol``): calldata and errors.

``liquidate`` flash-borrows the plan's debt asset from the Aave pool, runs its
``liquidationCall`` steps, sells each seized collateral on its Uniswap V2 pair and sends
the profit to the owner; ``liquidateFunded`` does the same with the owner's own funds;
``liquidateKeeping`` repays with the owner's funds and hands over the collateral unsold.
``liquidateMorpho`` liquidates a Morpho Blue position: Morpho's ``onMorphoLiquidate``
callback hands over the collateral before the debt is pulled, so no loan is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address

from bot.abi import AbiJson, canonical_type, load_abi
from bot.adapters.morpho_blue.types import MarketParams
from bot.api import LiquidationPlan

LIQUIDATOR_ABI = load_abi("Liquidator")

_ErrorSpec = tuple[str, tuple[str, ...], tuple[str, ...]]  # name, argument names, types

# Solidity's built-in revert payloads, besides the contract's own custom errors.
_BUILTIN_ERRORS: dict[bytes, _ErrorSpec] = {
    keccak(text="Error(string)")[:4]: ("Error", ("reason",), ("string",)),
    keccak(text="Panic(uint256)")[:4]: ("Panic", ("code",), ("uint256",)),
}
# Shorter labels in messages, where the ABI name is longer than it needs to be.
_LABELS = {"minProfit": "min"}


def _custom_errors(abi: AbiJson) -> dict[bytes, _ErrorSpec]:
    out = {}
    for item in abi:
        if item.get("type") != "error":
            continue
        inputs = item.get("inputs", [])
        types = tuple(canonical_type(p) for p in inputs)
        names = tuple(str(p.get("name") or f"arg{i}") for i, p in enumerate(inputs))
        out[keccak(text=f"{item['name']}({','.join(types)})")[:4]] = (item["name"], names, types)
    return out


_ERRORS: Mapping[bytes, _ErrorSpec] = {
    **_BUILTIN_ERRORS,
    **_custom_errors(LIQUIDATOR_ABI.json),
}


def encode_liquidate(plan: LiquidationPlan, min_profit: int, *, funded: bool = False) -> bytes:
    """Calldata of ``liquidate`` (flash loan of ``plan.flash_amount``) or, when ``funded``,
    of ``liquidateFunded`` (the owner supplies ``plan.flash_amount``); for a ``keep`` plan,
    of ``liquidateKeeping`` (the owner supplies it and gets the collateral, at least
    ``min_profit`` of it)."""
    if not plan.steps:
        raise ValueError("a liquidation plan needs at least one step")
    for step in plan.steps:
        if step.debt_asset.lower() != plan.debt_asset.lower():
            raise ValueError(
                f"step debt asset {step.debt_asset} differs from the plan's {plan.debt_asset}"
            )
    if min_profit < 0:
        raise ValueError(f"min_profit must not be negative, got {min_profit}")
    steps = [(s.collateral_asset, s.user, s.debt_to_cover) for s in plan.steps]
    if plan.keep:
        fn = LIQUIDATOR_ABI.fn("liquidateKeeping")
    else:
        fn = LIQUIDATOR_ABI.fn("liquidateFunded" if funded else "liquidate")
    return fn.encode(plan.debt_asset, plan.flash_amount, steps, min_profit)


def encode_morpho_liquidate(
    morpho: str, params: MarketParams, plan: LiquidationPlan, min_profit: int
) -> bytes:
    """Calldata of ``liquidateMorpho`` on the market ``params`` for a one-step plan: Morpho
    seizes ``collateral_seized`` from the step's user (``repaidShares = 0``: the contract
    derives the debt from the seizure, as the plan did)."""
    if len(plan.steps) != 1:
        raise ValueError(f"a Morpho plan has exactly one step, got {len(plan.steps)}")
    (step,) = plan.steps
    if step.collateral_asset.lower() != params.collateral_token.lower():
        raise ValueError(
            f"step collateral {step.collateral_asset} is not the market's {params.collateral_token}"
        )
    if step.debt_asset.lower() != params.loan_token.lower():
        raise ValueError(
            f"step debt asset {step.debt_asset} is not the market's {params.loan_token}"
        )
    if step.collateral_seized <= 0:
        raise ValueError(f"collateral_seized must be positive, got {step.collateral_seized}")
    if min_profit < 0:
        raise ValueError(f"min_profit must not be negative, got {min_profit}")
    fn = LIQUIDATOR_ABI.fn("liquidateMorpho")
    return fn.encode(morpho, params.as_tuple(), step.user, step.collateral_seized, 0, min_profit)


def _format(typ: str, value: Any) -> str:
    if typ == "address":
        return str(to_checksum_address(value))
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str):
        return repr(value)
    return str(value)


def decode_revert(data: str) -> str:
    """Readable text for revert data of the liquidator (its custom errors) or of anything
    it calls (``Error(string)``, ``Panic(uint256)``); unknown data is shown as hex."""
    try:
        raw = bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return f"unreadable revert data {data!r}"
    if not raw:
        return "reverted without data"
    known = _ERRORS.get(raw[:4])
    if known is None:
        return f"unknown revert 0x{raw.hex()}"
    name, names, types = known
    try:
        values = abi_decode(list(types), raw[4:]) if types else ()
    except DecodingError:  # malformed arguments: still say which error it was
        return f"{name}(<undecodable 0x{raw[4:].hex()}>)"
    if name == "Panic":
        return f"Panic(0x{values[0]:02x})"
    args = ", ".join(
        f"{_LABELS.get(n, n)}={_format(t, v)}" for n, t, v in zip(names, types, values, strict=True)
    )
    return f"{name}({args})"
