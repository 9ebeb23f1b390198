from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak

from bot.abi import AbiEvent, AbiFunction, ContractAbi, load_abi


def test_function_selector_and_round_trip() -> None:
    fn = load_abi("Pool").fn("getUserAccountData")
    assert fn.selector == keccak(text="getUserAccountData(address)")[:4]
    user = "0x" + "11" * 20
    assert fn.encode(user) == fn.selector + encode(["address"], [user])
    ret = encode(["uint256"] * 6, [1, 2, 3, 4, 5, 2**256 - 1])
    assert fn.decode(ret) == (1, 2, 3, 4, 5, 2**256 - 1)
    assert fn.decode("0x" + ret.hex())[5] == 2**256 - 1


def test_tuple_types_are_canonical() -> None:
    fn = load_abi("Multicall3").fn("aggregate3")
    assert fn.signature == "aggregate3((address,bool,bytes)[])"
    assert fn.selector.hex() == "82ad56cb"  # the canonical Multicall3 selector


def test_overloads_by_signature() -> None:
    erc20 = load_abi("ERC20")
    assert erc20.fn("mint(uint256)").input_types == ("uint256",)
    assert erc20.fn("mint(address,uint256)").input_types == ("address", "uint256")


def test_event_decode_indexed_and_data() -> None:
    ev = load_abi("Pool").event("LiquidationCall")
    assert ev.topic0 == keccak(
        text="LiquidationCall(address,address,address,uint256,uint256,address,bool)"
    )
    coll, debt, user, liq = ("0x" + c * 40 for c in "abcd")
    topics = [ev.topic0] + [bytes(12) + bytes.fromhex(a[2:]) for a in (coll, debt, user)]
    data = encode(["uint256", "uint256", "address", "bool"], [7, 9, liq, True])
    out = ev.decode(topics, data)
    assert out["user"] == user and out["debtToCover"] == 7
    assert out["liquidatedCollateralAmount"] == 9 and out["liquidator"] == liq
    assert out["receiveAToken"] is True


def test_constructor_encoding() -> None:
    abi = ContractAbi("X", [{"type": "constructor", "inputs": [{"name": "a", "type": "uint8"}]}])
    assert abi.encode_constructor(5) == encode(["uint8"], [5])
    assert isinstance(AbiFunction.from_json({"name": "f", "inputs": []}).selector, bytes)
    assert AbiEvent.from_json({"name": "E", "inputs": []}).decode([keccak(text="E()")], b"") == {}
