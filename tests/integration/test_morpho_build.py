"""Morpho Blue is compiled from the pinned sources into a keyed cache, and the committed
ABI (abis/Morpho.json, what the bot decodes with) is the compiled contract's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.devnet import morpho_build

pytestmark = pytest.mark.integration


def test_committed_abi_is_the_compiled_one(repo_root: Path) -> None:
    build = morpho_build.build()
    compiled = build.artifact("Morpho").abi.json
    assert json.loads((repo_root / "abis" / "Morpho.json").read_text()) == compiled
    # solc 0.8.19 leaves library events out of the ABI; ours has EventsLib's merged in.
    events = {e["name"] for e in compiled if e["type"] == "event"}
    assert {"Liquidate", "AccrueInterest", "CreateMarket", "SetFee", "Borrow"} <= events
    assert build.solc_version == "0.8.19"
    compiler = json.loads((build.directory / "Morpho.json").read_text())["compiler"]
    assert compiler.startswith("0.8.19+commit")


def test_build_is_cached_under_its_inputs_hash() -> None:
    first = morpho_build.build()
    assert morpho_build.build() == first  # second call: from the cache, same directory
    src = morpho_build.source_dir()
    assert first.directory.name == morpho_build.build_key(src, "0.8.19")
    assert morpho_build.build_key(src, "0.8.20") != first.directory.name
    for name in morpho_build.CONTRACTS:
        artifact = first.artifact(name)
        assert artifact.bytecode and "__" not in artifact.bytecode
