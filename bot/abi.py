"""ABI loading and a thin, fast encoder/decoder over eth-abi.

web3.py's contract objects validate and normalise every argument on every call; the hot
paths (multicall batches, log decoding) call these precomputed encoders directly instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak

from bot.errors import ArtifactError

AbiJson = list[dict[str, Any]]


def canonical_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type string of a parameter, expanding tuples recursively."""
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


@dataclass(frozen=True, slots=True)
class AbiFunction:
    name: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    selector: bytes

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> AbiFunction:
        inputs = tuple(canonical_type(p) for p in item.get("inputs", []))
        outputs = tuple(canonical_type(p) for p in item.get("outputs", []))
        signature = f"{item['name']}({','.join(inputs)})"
        return cls(item["name"], inputs, outputs, keccak(text=signature)[:4])

    @classmethod
    def parse(cls, signature: str, outputs: Sequence[str] = ()) -> AbiFunction:
        """From a canonical signature, e.g. ``parse("price()", ["uint256"])`` (for the
        one-function interfaces no ABI file ships: oracles, rate models)."""
        name, _, rest = signature.partition("(")
        inner = rest[:-1]
        types: list[str] = []
        depth = 0
        start = 0
        for i, ch in enumerate(inner):
            depth += ch == "("
            depth -= ch == ")"
            if ch == "," and depth == 0:
                types.append(inner[start:i])
                start = i + 1
        if inner:
            types.append(inner[start:])
        return cls(name, tuple(types), tuple(outputs), keccak(text=signature)[:4])

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.input_types)})"

    def encode(self, *args: Any) -> bytes:
        return self.selector + abi_encode(self.input_types, args)

    def encode_hex(self, *args: Any) -> str:
        return "0x" + self.encode(*args).hex()

    def decode(self, data: bytes | str) -> tuple[Any, ...]:
        raw = (
            bytes.fromhex(data[2:] if data.startswith("0x") else data)
            if isinstance(data, str)
            else data
        )
        return tuple(abi_decode(self.output_types, raw))

    def decode_one(self, data: bytes | str) -> Any:
        return self.decode(data)[0]


@dataclass(frozen=True, slots=True)
class AbiEvent:
    name: str
    topic0: bytes
    indexed_names: tuple[str, ...]
    indexed_types: tuple[str, ...]
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> AbiEvent:
        inputs = item.get("inputs", [])
        types = ",".join(canonical_type(p) for p in inputs)
        idx = [p for p in inputs if p.get("indexed")]
        data = [p for p in inputs if not p.get("indexed")]
        return cls(
            name=item["name"],
            topic0=keccak(text=f"{item['name']}({types})"),
            indexed_names=tuple(p["name"] for p in idx),
            indexed_types=tuple(canonical_type(p) for p in idx),
            data_names=tuple(p["name"] for p in data),
            data_types=tuple(canonical_type(p) for p in data),
        )

    @property
    def topic0_hex(self) -> str:
        return "0x" + self.topic0.hex()

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        """Decode one log's topics (including topic0) and data into a name → value dict."""
        out: dict[str, Any] = {}
        for name, typ, topic in zip(
            self.indexed_names, self.indexed_types, topics[1:], strict=True
        ):
            out[name] = abi_decode([typ], topic)[0]
        if self.data_types:
            out.update(zip(self.data_names, abi_decode(self.data_types, data), strict=True))
        return out


class ContractAbi:
    """Functions and events of one contract ABI, looked up by name or full signature."""

    def __init__(self, name: str, abi: AbiJson) -> None:
        self.name = name
        self.json = abi
        self._functions: dict[str, AbiFunction] = {}
        self._events: dict[str, AbiEvent] = {}
        for item in abi:
            if item.get("type") == "function":
                fn = AbiFunction.from_json(item)
                self._functions.setdefault(fn.name, fn)
                self._functions[fn.signature] = fn
            elif item.get("type") == "event":
                ev = AbiEvent.from_json(item)
                self._events[ev.name] = ev
        self.constructor_types: tuple[str, ...] = tuple(
            canonical_type(p)
            for item in abi
            if item.get("type") == "constructor"
            for p in item.get("inputs", [])
        )

    def fn(self, name: str) -> AbiFunction:
        """A function by name (the first overload) or by its full signature."""
        try:
            return self._functions[name]
        except KeyError:
            raise ArtifactError(f"ABI {self.name} has no function {name!r}") from None

    def event(self, name: str) -> AbiEvent:
        try:
            return self._events[name]
        except KeyError:
            raise ArtifactError(f"ABI {self.name} has no event {name!r}") from None

    @property
    def events(self) -> tuple[AbiEvent, ...]:
        return tuple(self._events.values())

    def encode_constructor(self, *args: Any) -> bytes:
        return abi_encode(self.constructor_types, args) if self.constructor_types else b""


def abi_dir() -> Path:
    """Where the committed ABIs are: inside the wheel (bot/abis) or at the repo top (abis/)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "abis", here.parent / "abis"):
        if candidate.is_dir():
            return candidate
    raise ArtifactError(f"no abis directory next to {here}; the package is incomplete")


@cache
def load_abi(name: str) -> ContractAbi:
    """Load ``abis/<name>.json`` (a plain ABI list)."""
    path = abi_dir() / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"missing ABI {path}; run scripts/extract_abis.py") from None
    return ContractAbi(name, data)
