"""anvil processes start on free ports, answer, and never outlive their owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.chain.anvil import AnvilOptions, AnvilProcess, free_port
from bot.errors import DevnetError

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_dead(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_start_answers_and_stop_kills_own_pid() -> None:
    proc = AnvilProcess(AnvilOptions(chain_id=4242)).start()
    pid = proc.pid
    assert pid is not None and _alive(pid)
    assert proc.url.startswith("http://127.0.0.1:")
    proc.stop()
    assert _wait_dead(pid)
    proc.stop()  # idempotent


def test_anvil_keeps_its_disk_state_in_a_home_that_goes_with_it() -> None:
    # anvil spills old block states to ~/.foundry/anvil/tmp and never removes them.
    proc = AnvilProcess(AnvilOptions(chain_id=4242)).start()
    home = proc.home
    try:
        assert home is not None and home.is_dir()
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert f"HOME={home}".encode() in environ
        # The fork cache is shared, not private: a real chain's state is read once.
        assert (home / ".foundry" / "cache").resolve() == (
            Path.home() / ".foundry" / "cache"
        ).resolve()
    finally:
        proc.stop()
    assert not home.exists()
    assert (Path.home() / ".foundry" / "cache").is_dir()  # the link went, not its target


def test_two_processes_get_distinct_ports() -> None:
    with AnvilProcess() as a, AnvilProcess() as b:
        assert a.port != b.port


def test_bad_arguments_fail_with_the_log() -> None:
    with pytest.raises(DevnetError, match="exited with code"):
        AnvilProcess(AnvilOptions(extra_args=("--no-such-flag",))).start()


def test_busy_port_is_reported() -> None:
    port = free_port()
    with AnvilProcess(port=port), pytest.raises(DevnetError):
        AnvilProcess(port=port, startup_timeout_s=5).start()


def test_anvil_dies_when_its_owner_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the owning process (no cleanup code runs) still takes anvil down."""
    script = (
        "from bot.chain.anvil import AnvilProcess\n"
        "import sys, time\n"
        "p = AnvilProcess().start()\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        anvil_pid = int(owner.stdout.readline())
        assert _alive(anvil_pid)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)
        assert _wait_dead(anvil_pid), "anvil survived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()
