"""Start and stop anvil processes (origin devnets and forks).

Each process runs on a free loopback port, is awaited until it answers JSON-RPC, and is
stopped by its own PID. On Linux it also gets a parent-death signal, so a test run or CLI
that is killed with SIGKILL cannot leave an anvil behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import DevnetError

log = logging.getLogger(__name__)

ANVIL_ENV = "LIQBOT_ANVIL"
_NPM_BIN = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


def _search_roots() -> Iterator[Path]:
    seen: set[Path] = set()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for p in (start, *start.parents):
            if p not in seen:
                seen.add(p)
                yield p


def find_anvil() -> Path:
    """The anvil binary: $LIQBOT_ANVIL, else the npm package's, else anvil on PATH."""
    env = os.environ.get(ANVIL_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise DevnetError(f"{ANVIL_ENV}={env} is not a file")
        return path
    for root in _search_roots():
        cand = root / _NPM_BIN
        if cand.is_file():
            return cand
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise DevnetError(
        "anvil not found: run the set-up (npm ci installs @foundry-rs/anvil) or set LIQBOT_ANVIL"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class AnvilOptions:
    chain_id: int | None = 31337  # None: a fork keeps the forked chain's id
    block_time: float | None = None  # None: auto-mine on each transaction
    fork_url: str | None = None
    fork_block_number: int | None = None
    load_state: Path | None = None
    accounts: int = 10
    balance_eth: int = 10_000
    gas_limit: int | None = None
    timestamp: int | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def args(self) -> list[str]:
        out = ["--accounts", str(self.accounts), "--balance", str(self.balance_eth)]
        if self.chain_id is not None:
            out += ["--chain-id", str(self.chain_id)]
        if self.block_time is not None:
            out += ["--block-time", str(self.block_time)]
        if self.fork_url:
            out += ["--fork-url", self.fork_url]
            if self.fork_block_number is not None:
                out += ["--fork-block-number", str(self.fork_block_number)]
        if self.load_state is not None:
            out += ["--load-state", str(self.load_state)]
        if self.gas_limit is not None:
            out += ["--gas-limit", str(self.gas_limit)]
        if self.timestamp is not None:
            out += ["--timestamp", str(self.timestamp)]
        return out + list(self.extra_args)


class AnvilProcess:
    """One anvil process. ``start()`` blocks until it answers; ``stop()`` is idempotent."""

    def __init__(
        self,
        options: AnvilOptions | None = None,
        *,
        binary: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        self.options = options or AnvilOptions()
        self.binary = binary or find_anvil()
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.home: Path | None = None  # anvil's HOME while it runs

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> AnvilProcess:
        if self._proc is not None:
            return self
        cmd = [
            str(self.binary),
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.options.args(),
        ]
        # Open for the life of the process (closed in stop()), so no context manager.
        self._log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="anvil-", suffix=".log", delete=False
        )
        log.debug("starting anvil", extra={"cmd": " ".join(cmd)})
        self.home = _private_home()
        self._proc = subprocess.Popen(
            cmd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            env={**os.environ, "HOME": str(self.home)},
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("anvil ready", extra={"url": self.url, "pid": self._proc.pid})
        return self

    def _wait_ready(self) -> None:
        """Ready = anvil logged that it listens on our port *and* answers there.

        Checking only the port would accept another process already bound to it.
        """
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        banner = f"Listening on {self.host}:{self.port}"
        delay = 0.02
        while True:
            if self._proc.poll() is not None:
                raise DevnetError(
                    f"anvil exited with code {self._proc.returncode} at start:\n{self.log_tail()}"
                )
            if banner in self.log_tail(200) and self._answers(body):
                return
            if time.monotonic() > deadline:
                raise DevnetError(
                    f"anvil did not answer on {self.url} within {self.startup_timeout_s}s:\n"
                    f"{self.log_tail()}"
                )
            # Process start-up has no readiness signal to await; poll with backoff.
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _answers(self, body: str) -> bool:
        req = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        if self._log_file is None:
            return ""
        with contextlib.suppress(OSError):
            text = Path(self._log_file.name).read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            with contextlib.suppress(OSError):
                os.unlink(self._log_file.name)
            self._log_file = None
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)  # leaves the linked cache alone
            self.home = None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> AnvilProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _private_home() -> Path:
    """A HOME for one anvil process. anvil writes old block states of a long-running chain
    to ``~/.foundry/anvil/tmp`` and does not remove them when it is stopped: 69 GB piled
    up over a few days of benchmarks and filled the disk. This one goes with the process.
    The fork cache (``~/.foundry/cache``: state read from a remote RPC) is linked in, so
    forks of a real chain still share it."""
    home = Path(tempfile.mkdtemp(prefix="liqbot-anvil-home-"))
    cache = Path.home() / ".foundry" / "cache"
    with contextlib.suppress(OSError):
        cache.mkdir(parents=True, exist_ok=True)
        (home / ".foundry").mkdir()
        (home / ".foundry" / "cache").symlink_to(cache, target_is_directory=True)
    return home
