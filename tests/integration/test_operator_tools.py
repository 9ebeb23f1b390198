"""The operator's tools end to end: `liqbot fork` of a network described by a preset,
`config check` against it, a dry run, `deploy-executor` with a funded key."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest
from eth_account import Account
from operator_cli import clean_env, deployments, files, liqbot, market_toml

from bot.chain.anvil import AnvilOptions, AnvilProcess
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.devnet import Devnet
from bot.devnet.manifest import Manifest
from bot.execution.liquidator import LIQUIDATOR_ABI
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _command(line: str, extra: list[str]) -> tuple[dict[str, str], list[str]]:
    """A printed `VAR=value liqbot ARGS` line as (environment, argv after `liqbot`)."""
    words = shlex.split(line.split(":", 1)[1])
    env = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    rest = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    assert rest[0] == "liqbot", line
    return env, rest[1:] + extra


async def test_fork_a_preset_network_check_it_and_dry_run(
    devnet: Devnet, manifest: Manifest, tmp_path: Path
) -> None:
    preset = tmp_path / "devnet-preset.toml"  # a preset-like file: no RPC URL in it
    preset.write_text(market_toml(manifest, None, tmp_path / "unused.db"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *["-m", "bot.cli", "fork", "--preset", str(preset), "--rpc", devnet.url],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(60):
            while not any("Ctrl-C" in ln for ln in lines):
                lines.append((await proc.stdout.readline()).decode())
        assert re.search(r"ready: http://127\.0\.0\.1:\d+", lines[0]), lines
        check = next(ln for ln in lines if ln.startswith("check it:"))
        rehearse = next(ln for ln in lines if ln.startswith("rehearse:"))

        env, argv = _command(check, [])
        r = await liqbot(argv, cwd=tmp_path, env=env)
        assert r.code == 0, r
        assert "# all checks passed" in r.out
        assert re.search(r"^ok +market\.pool_addresses_provider: contract at", r.out, re.M)
        assert re.search(r"^ok +market\.start_block: ", r.out, re.M)

        env, argv = _command(rehearse, ["--blocks", "1"])
        assert "--dry-run" in argv
        r = await liqbot(argv, cwd=tmp_path, env=env)
        assert r.code == 0, r
        assert "DRY RUN" in r.out and f"fork-{preset.stem}.db" in files(tmp_path)

        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0


async def test_fork_refuses_an_rpc_of_another_chain(devnet: Devnet, tmp_path: Path) -> None:
    r = await liqbot(["fork", "--preset", "ethereum", "--rpc", devnet.url], cwd=tmp_path)
    assert r.code == 2 and len(r.err_lines) == 1, r
    assert "--rpc:" in r.err and "is chain 31337, preset ethereum is chain 1" in r.err


async def test_a_preset_whose_contracts_are_absent_fails_config_check(tmp_path: Path) -> None:
    """A node of the preset's chain id without the market (a wrong or unsynced node)."""
    with AnvilProcess(AnvilOptions(chain_id=1)) as node:
        r = await liqbot(
            ["config", "check", "--preset", "ethereum"],
            cwd=tmp_path,
            env={"LIQBOT_CHAIN__RPC_URL": node.url},
        )
    assert r.code == 2, r
    assert re.search(r"^ok +chain\.chain_id: ", r.out, re.M)
    for key in ("market.pool_addresses_provider", "market.multicall3", "swap.uniswap_v2_factory"):
        assert re.search(rf"^FAIL +{re.escape(key)}: no contract at 0x\w+ on chain 1 ", r.out, re.M)
    assert len(r.err_lines) == 1
    assert (
        "market.pool_addresses_provider: no contract at 0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
        in r.err
    )
    assert "point chain.rpc_url at a synced node of chain 1" in r.err
    assert files(tmp_path) == []


async def test_deploy_executor_with_a_funded_key_records_it_for_run(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    account = Account.create()
    key = account.key.hex()
    db = tmp_path / "liqbot.db"
    cfg = tmp_path / "liqbot.toml"
    cfg.write_text(market_toml(manifest, fork.url, db))
    env = {"LIQBOT_PRIVATE_KEY": key}
    args = ["--config", str(cfg)]

    broke = await liqbot(["deploy-executor", *args], cwd=tmp_path, env=env)
    assert broke.code == 2 and len(broke.err_lines) == 1, broke
    assert f"fund {account.address}" in broke.err
    assert deployments(db) is None

    await AnvilRpc(fork_rpc).set_balance(account.address, 10**18)
    r = await liqbot(["deploy-executor", *args], cwd=tmp_path, env=env)
    assert r.code == 0, r
    m = re.search(r'^executor\.liquidator = "(0x[0-9a-fA-F]{40})"$', r.out, re.M)
    assert m, r.out
    address = m[1]
    record = deployments(db)
    assert record is not None
    assert record[str(manifest.chain_id)]["liquidator"] == address
    assert record[str(manifest.chain_id)]["owner"] == account.address
    fn = LIQUIDATOR_ABI.fn("owner")
    raw = await fork_rpc.call("eth_call", [{"to": address, "data": fn.encode_hex()}, "latest"])
    assert fn.decode_one(raw).lower() == account.address.lower()
    tx = await fork_rpc.call("eth_getTransactionByHash", [record["31337"]["tx_hash"]])
    assert int(tx["type"], 16) == 2 and tx["from"].lower() == account.address.lower()

    check = await liqbot(["config", "check", *args], cwd=tmp_path, env=env)
    assert check.code == 0, check
    assert f"{address} (executor.liquidator from {db}.deployments.json)" in check.out
    assert f"owned by the configured key {account.address}" in check.out

    again = await liqbot(["deploy-executor", *args], cwd=tmp_path, env=env)
    assert again.code == 2 and "pass --replace" in again.err, again

    run = await liqbot(["run", "--blocks", "1", *args], cwd=tmp_path, env=env)
    assert run.code == 0, run
    assert f"LIVE ({account.address}); liquidator {address}" in run.out
    for result in (broke, r, check, again, run):
        assert key.removeprefix("0x") not in result.out + result.err
    assert os.environ.get("LIQBOT_PRIVATE_KEY") != key  # only the subprocesses had it
