#!/usr/bin/env python3
"""Extract the ABIs the bot uses from the pinned npm artifacts into abis/.

Usage: python scripts/extract_abis.py [--out DIR] [--check]
--check exits 1 when abis/ differs from what the artifacts give (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NM = ROOT / "node_modules"
AAVE = NM / "@aave/core-v3/artifacts/contracts"

# abis/<name>.json  <-  artifact
AAVE_ABIS = {
    "Pool": "Pool",
    "PoolAddressesProvider": "PoolAddressesProvider",
    "PoolConfigurator": "PoolConfigurator",
    "AaveOracle": "AaveOracle",
    "AaveProtocolDataProvider": "AaveProtocolDataProvider",
    "AToken": "AToken",
    "VariableDebtToken": "VariableDebtToken",
    "StableDebtToken": "StableDebtToken",
    "ERC20": "MintableERC20",
    "ACLManager": "ACLManager",
}
UNISWAP_ABIS = {
    "UniswapV2Factory": ("v2-core", "UniswapV2Factory"),
    "UniswapV2Pair": ("v2-core", "UniswapV2Pair"),
    "UniswapV2Router02": ("v2-periphery", "UniswapV2Router02"),
}
LIQBOT_ABIS = {"SettableAggregator": "SettableAggregator", "Liquidator": "Liquidator"}


def _fn(name: str, inputs: list[tuple[str, str]], outputs: list[tuple[str, str]], mut: str) -> dict:
    def params(ps: list[tuple[str, str]]) -> list[dict]:
        out = []
        for n, t in ps:
            if t.startswith("("):  # tuple[] given as "(type name,...)[]"
                inner, suffix = t[1:].split(")")
                comps = [
                    dict(zip(("type", "name"), c.split(), strict=True)) for c in inner.split(",")
                ]
                out.append({"name": n, "type": "tuple" + suffix, "components": comps})
            else:
                out.append({"name": n, "type": t})
        return out

    return {
        "type": "function",
        "name": name,
        "inputs": params(inputs),
        "outputs": params(outputs),
        "stateMutability": mut,
    }


# The subset of Multicall3 (canonical deployment 0xcA11bde05977b3631167028862bE2a173976CA11) we use.
MULTICALL3 = [
    _fn(
        "aggregate3",
        [("calls", "(address target,bool allowFailure,bytes callData)[]")],
        [("returnData", "(bool success,bytes returnData)[]")],
        "payable",
    ),
    _fn("getBlockNumber", [], [("blockNumber", "uint256")], "view"),
    _fn("getCurrentBlockTimestamp", [], [("timestamp", "uint256")], "view"),
    _fn("getBasefee", [], [("basefee", "uint256")], "view"),
    _fn("getEthBalance", [("addr", "address")], [("balance", "uint256")], "view"),
]


def collect() -> dict[str, list]:
    out: dict[str, list] = {}
    for name, art in AAVE_ABIS.items():
        (path,) = AAVE.rglob(f"{art}.sol/{art}.json")
        out[name] = json.loads(path.read_text())["abi"]
    for name, (pkg, art) in UNISWAP_ABIS.items():
        out[name] = json.loads((NM / "@uniswap" / pkg / "build" / f"{art}.json").read_text())["abi"]
    for name, art in LIQBOT_ABIS.items():
        out[name] = json.loads((ROOT / "contracts/out" / f"{art}.json").read_text())["abi"]
    out["Multicall3"] = MULTICALL3
    return out


def render(abi: list) -> str:
    return json.dumps(abi, indent=1, sort_keys=True) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "abis")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    abis = collect()
    if args.check:
        stale = [n for n, a in abis.items() if (args.out / f"{n}.json").read_text() != render(a)]
        if stale:
            print(
                f"abis out of date: {', '.join(stale)}; run scripts/extract_abis.py",
                file=sys.stderr,
            )
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, abi in abis.items():
        (args.out / f"{name}.json").write_text(render(abi))
    print(f"wrote {len(abis)} ABIs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
