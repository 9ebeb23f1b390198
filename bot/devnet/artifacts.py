"""Contract bytecode from the pinned npm packages and from this repo's compiled contracts.

Only the devnet needs bytecode; the bot itself needs only the committed ABIs (``abis/``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bot.abi import ContractAbi
from bot.errors import ArtifactError

_AAVE = "@aave/core-v3/artifacts/contracts"


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: ContractAbi
    bytecode: str  # hex without 0x, possibly with unresolved link placeholders
    link_references: Mapping[str, Mapping[str, list[dict[str, int]]]]

    def linked(self, libraries: Mapping[str, str]) -> bytes:
        """Creation code with each library placeholder replaced by its deployed address."""
        code = self.bytecode
        for _file, libs in self.link_references.items():
            for lib, refs in libs.items():
                if lib not in libraries:
                    raise ArtifactError(f"{self.name} needs library {lib} linked")
                addr = libraries[lib].lower().removeprefix("0x")
                for ref in refs:
                    start, length = 2 * ref["start"], 2 * ref["length"]
                    code = code[:start] + addr + code[start + length :]
        if "__" in code:
            raise ArtifactError(f"{self.name} still has unlinked placeholders")
        return bytes.fromhex(code)

    def creation_code(self, *ctor_args: Any, libraries: Mapping[str, str] | None = None) -> bytes:
        return self.linked(libraries or {}) + self.abi.encode_constructor(*ctor_args)


def node_modules() -> Path:
    """The project's node_modules (found from the working directory or this package)."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            cand = p / "node_modules"
            if (cand / "@aave" / "core-v3").is_dir():
                return cand
    raise ArtifactError(
        "node_modules with @aave/core-v3 not found: run the set-up (npm ci) in the repo"
    )


def contracts_out() -> Path:
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            cand = p / "contracts" / "out"
            if cand.is_dir():
                return cand
    raise ArtifactError("contracts/out not found: compiled liqbot contracts are missing")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"missing artifact {path}; run the set-up (npm ci)") from None
    return data


@cache
def aave(name: str) -> Artifact:
    """A Hardhat artifact from @aave/core-v3 by contract name."""
    matches = sorted((node_modules() / _AAVE).rglob(f"{name}.sol/{name}.json"))
    if len(matches) != 1:
        raise ArtifactError(f"expected one Aave artifact named {name}, found {len(matches)}")
    data = _load_json(matches[0])
    return Artifact(
        name,
        ContractAbi(name, data["abi"]),
        data["bytecode"].removeprefix("0x"),
        data.get("linkReferences", {}),
    )


@cache
def uniswap(package: str, name: str) -> Artifact:
    """A Waffle artifact from @uniswap/v2-core or @uniswap/v2-periphery."""
    data = _load_json(node_modules() / "@uniswap" / package / "build" / f"{name}.json")
    return Artifact(name, ContractAbi(name, data["abi"]), data["bytecode"].removeprefix("0x"), {})


@cache
def liqbot(name: str) -> Artifact:
    """A contract of this repository, compiled by scripts/compile_contracts.mjs."""
    data = _load_json(contracts_out() / f"{name}.json")
    return Artifact(name, ContractAbi(name, data["abi"]), data["bytecode"].removeprefix("0x"), {})


@cache
def multicall3_creation_code() -> bytes:
    """Canonical Multicall3 creation code, as shipped by the viem package."""
    src = (node_modules() / "viem" / "_esm" / "constants" / "contracts.js").read_text()
    m = re.search(r"multicall3Bytecode\s*=\s*'0x([0-9a-fA-F]+)'", src)
    if not m:
        raise ArtifactError("multicall3Bytecode not found in viem/constants/contracts.js")
    return bytes.fromhex(m.group(1))
