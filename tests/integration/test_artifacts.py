"""Committed artifacts stay true to their sources, and the wheel carries the ABIs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_abis_match_npm_artifacts(repo_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/extract_abis.py", "--check"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_contracts_recompile_to_committed_artifacts(repo_root: Path, tmp_path: Path) -> None:
    subprocess.run(
        ["node", "scripts/compile_contracts.mjs", "--out", str(tmp_path)],
        cwd=repo_root,
        check=True,
        capture_output=True,
    )
    committed = sorted((repo_root / "contracts" / "out").glob("*.json"))
    assert committed
    for path in committed:
        fresh = json.loads((tmp_path / path.name).read_text())
        mine = json.loads(path.read_text())
        assert fresh["bytecode"] == mine["bytecode"], path.name
        assert fresh["abi"] == mine["abi"], path.name
        assert mine["compiler"].startswith("0.8.19")


@pytest.mark.slow
def test_wheel_ships_abis(repo_root: Path, tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(repo_root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("liqbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    abis = {p.name for p in (repo_root / "abis").glob("*.json")}
    assert abis
    assert {f"bot/abis/{n}" for n in abis} <= names
    assert "bot/py.typed" in names
