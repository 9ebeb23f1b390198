"""`liqbot devnet up` and `liqbot devnet fork` as an operator runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.devnet.manifest import Manifest

pytestmark = pytest.mark.integration


def _liqbot(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", *args]


def test_devnet_up_writes_manifest(tmp_path: Path) -> None:
    path = tmp_path / "devnet.json"
    out = subprocess.run(
        _liqbot("devnet", "up", "--borrowers", "8", "--manifest", str(path), "--exit-when-ready"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "devnet ready" in out.stdout
    m = Manifest.load(path)
    assert len(m.borrowers) == 8
    assert m.chain_id == 31337
    raw = json.loads(path.read_text())
    assert {"aave", "uniswap", "reserves", "deploy_block", "multicall3"} <= raw.keys()


def test_devnet_fork_serves_until_sigint(devnet_url: str) -> None:
    proc = subprocess.Popen(
        _liqbot("devnet", "fork", "--from", devnet_url), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fork ready: http://127.0.0.1:"), line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"chain_id": "not a number"}))
    with pytest.raises(Exception, match=r"bad.json: chain_id"):
        Manifest.load(path)
