"""Shared fixtures: an origin devnet (real Aave V3 on anvil), a fork of it, isolation.

The origin is deployed once per session (or reloaded from .cache/devnet); the fork runs
``anvil --fork-url <origin> --fork-block-number <head>``. Tests that change chain state
use ``fork_rpc`` / ``origin_rpc``, which wrap each test in evm_snapshot / evm_revert.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pg import pg_server, pg_url  # noqa: F401  (PostgreSQL fixtures: tests/pg.py)

from bot.chain.anvil import AnvilProcess
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.devnet import Devnet, DevnetSpec, start_devnet, start_fork
from bot.devnet.manifest import Manifest
from bot.devnet.scenario import Scenario
from bot.rpc import JsonRpcClient

ROOT = Path(__file__).resolve().parent.parent
TEST_BORROWERS = int(os.environ.get("LIQBOT_TEST_BORROWERS", "200"))


def anvil_children(parent_pid: int) -> list[int]:
    """PIDs of live anvil processes whose parent is ``parent_pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if comm == "anvil" and fields[0] != "Z" and int(fields[1]) == parent_pid:
            found.append(int(entry.name))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftovers = anvil_children(os.getpid())
    if leftovers:
        session.config.get_terminal_writer().line(
            f"ERROR: anvil processes left running after the tests: {leftovers}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest_asyncio.fixture(scope="session")
async def devnet() -> AsyncIterator[Devnet]:
    """Deployed fresh (no state cache), so the origin keeps every historical state and can
    be forked at any of its blocks, as a real chain can."""
    net = await start_devnet(DevnetSpec(borrowers=TEST_BORROWERS))
    try:
        yield net
    finally:
        net.stop()


@pytest_asyncio.fixture(scope="session")
async def morpho_net() -> AsyncIterator[Devnet]:
    """A devnet with Morpho Blue (its markets on the Aave market's tokens), shared by the
    Morpho modules; tests isolate themselves with evm_snapshot / evm_revert. No Aave
    borrowers: the Aave market is there for its tokens, oracle prices and pools."""
    net = await start_devnet(DevnetSpec(borrowers=0, morpho=True))
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="session")
def manifest(devnet: Devnet) -> Manifest:
    return devnet.manifest


@pytest_asyncio.fixture(scope="session")
async def fork(devnet: Devnet) -> AsyncIterator[AnvilProcess]:
    proc = await start_fork(devnet.url)
    try:
        yield proc
    finally:
        proc.stop()


async def isolated_client(url: str) -> AsyncIterator[JsonRpcClient]:
    async with JsonRpcClient(url) as rpc, AnvilRpc(rpc).isolated():
        yield rpc


@pytest_asyncio.fixture
async def fork_rpc(fork: AnvilProcess) -> AsyncIterator[JsonRpcClient]:
    """A client of the fork; whatever the test does there is reverted afterwards."""
    async for rpc in isolated_client(fork.url):
        yield rpc


@pytest_asyncio.fixture
async def origin_rpc(devnet: Devnet) -> AsyncIterator[JsonRpcClient]:
    """A client of the origin; whatever the test does there is reverted afterwards."""
    async for rpc in isolated_client(devnet.url):
        yield rpc


@pytest.fixture
def fork_scenario(fork_rpc: JsonRpcClient, manifest: Manifest, fork: AnvilProcess) -> Scenario:
    return Scenario(fork_rpc, manifest.with_rpc_url(fork.url))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def devnet_url(devnet: Devnet) -> str:
    return devnet.url
