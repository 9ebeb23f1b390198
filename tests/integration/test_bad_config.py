"""Bad operator input, table-driven: every case runs the real CLI (`liqbot run` and `liqbot
config check`) and must exit 2 with exactly one stderr line that names the key and says
how to fix it, print no secret, and write nothing (no database, no deployments record)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from operator_cli import deployments, files, liqbot, market_toml

from bot.chain.anvil import AnvilProcess
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.deploy import deploy_liquidator
from bot.devnet.manifest import Manifest
from bot.rpc import JsonRpcClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

EOA = "0x000000000000000000000000000000000000dEaD"
KEY = "0x" + secrets.token_hex(32)
PASSWORD = "pw-" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a case may use: the good config text, a scratch directory, a foreign liquidator."""

    toml: str
    dir: Path
    foreign_liquidator: str


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    edit: Callable[[Inputs], str]  # the config file's text (may write key files first)
    key: str  # the setting the error line must name
    fix: str  # words of the fix the line must give
    with_key: bool = False  # LIQBOT_PRIVATE_KEY set


def _keystore(dir: Path, password_file: str = "password.txt", right: bool = True) -> str:
    ks = dir / "key.json"
    ks.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=2)))
    if password_file == "password.txt":
        (dir / password_file).write_text((PASSWORD if right else "not-" + PASSWORD) + "\n")
    return f'\n[executor]\nkeystore = "{ks}"\npassword_file = "{dir / password_file}"\n'


def _garbage_keystore(i: Inputs) -> str:
    (i.dir / "key.json").write_text("this is not json")
    (i.dir / "password.txt").write_text(PASSWORD)
    return i.toml + (
        f'\n[executor]\nkeystore = "{i.dir / "key.json"}"\n'
        f'password_file = "{i.dir / "password.txt"}"\n'
    )


def _unreadable_keystore(i: Inputs) -> str:
    (i.dir / "password.txt").write_text(PASSWORD)
    # A directory where the file should be: unreadable even for root (tests may run as root).
    (i.dir / "keys").mkdir()
    return i.toml + (
        f'\n[executor]\nkeystore = "{i.dir / "keys"}"\npassword_file = "{i.dir / "password.txt"}"\n'
    )


CASES = [
    Case(
        "missing field",
        lambda i: i.toml.replace(next(ln for ln in i.toml.splitlines() if "start_block" in ln), ""),
        "market.start_block",
        "LIQBOT_MARKET__START_BLOCK",
    ),
    Case(
        "wrong type",
        lambda i: i.toml.replace("poll_interval_s = 0.2", 'poll_interval_s = "soon"'),
        "indexer.poll_interval_s",
        "correct indexer.poll_interval_s",
    ),
    Case(
        "unknown key",
        lambda i: i.toml + "confirmatons = 3\n",  # appended to [indexer], misspelt
        "indexer.confirmatons",
        "did you mean confirmations?",
    ),
    Case(
        "bad address",
        lambda i: i.toml.replace('uniswap_v2_factory = "0x', 'uniswap_v2_factory = "0x12'),
        "swap.uniswap_v2_factory",
        "correct swap.uniswap_v2_factory",
    ),
    Case(
        "address without code",
        lambda i: (
            "\n".join(
                f'pool_addresses_provider = "{EOA}"'
                if ln.startswith("pool_addresses_provider")
                else ln
                for ln in i.toml.splitlines()
            )
            + "\n"
        ),
        "market.pool_addresses_provider",
        "point chain.rpc_url at a synced node of chain 31337",
    ),
    Case(
        "chain id mismatch",
        lambda i: i.toml.replace("chain_id = 31337", "chain_id = 1"),
        "chain.chain_id",
        "or set chain.chain_id = 31337",
    ),
    Case(
        "unreadable keystore",
        _unreadable_keystore,
        "executor.keystore",
        "point it at a readable JSON keystore",
    ),
    Case(
        "keystore not JSON", _garbage_keystore, "executor.keystore", "point it at a JSON keystore"
    ),
    Case(
        "wrong keystore password",
        lambda i: i.toml + _keystore(i.dir, right=False),
        "executor.password_file",
        "put the keystore's password in this file",
    ),
    Case(
        "missing password file",
        lambda i: i.toml + _keystore(i.dir, password_file="nowhere.txt"),
        "executor.password_file",
        "point it at a readable file",
    ),
    Case(
        "liquidator owned by another address",
        lambda i: i.toml + f'\n[executor]\nliquidator = "{i.foreign_liquidator}"\n',
        "executor.liquidator",
        "configure the owner's key, or deploy your own with `liqbot deploy-executor`",
        with_key=True,
    ),
    Case(
        "unknown preset",
        lambda i: 'preset = "atlantis"\n' + i.toml,
        "preset",
        "use one of arbitrum, base, ethereum",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_one_line_naming_the_key_and_writes_nothing(
    case: Case,
    fork: AnvilProcess,
    fork_rpc: JsonRpcClient,
    manifest: Manifest,
    tmp_path: Path,
) -> None:
    chain = AnvilRpc(fork_rpc)
    owner = (await chain.accounts())[1]
    foreign = await deploy_liquidator(chain, owner, manifest.aave.pool, manifest.uniswap.factory)
    db = tmp_path / "liqbot.db"
    good = market_toml(manifest, fork.url, db)
    cfg = tmp_path / "liqbot.toml"
    cfg.write_text(case.edit(Inputs(good, tmp_path, foreign)))
    env = {"LIQBOT_PRIVATE_KEY": KEY} if case.with_key else {}
    before = files(tmp_path)
    for command in (["run", "--blocks", "1"], ["config", "check"]):
        r = await liqbot([*command, "--config", str(cfg)], cwd=tmp_path, env=env)
        assert r.code == 2, (command, r)
        assert len(r.err_lines) == 1, (command, r.err)
        line = r.err_lines[0]
        assert line.startswith("liqbot: configuration error: "), line
        assert f"{case.key}:" in line and case.fix in line, (command, line)
        for secret in (KEY.removeprefix("0x"), PASSWORD):
            assert secret not in r.out + r.err
        assert files(tmp_path) == before, command  # no database, no record, nothing
    assert deployments(db) is None


async def test_the_good_config_passes_every_check(
    fork: AnvilProcess, fork_rpc: JsonRpcClient, manifest: Manifest, tmp_path: Path
) -> None:
    """The table's baseline: without its one defect, the same config is accepted."""
    cfg = tmp_path / "liqbot.toml"
    cfg.write_text(market_toml(manifest, fork.url, tmp_path / "liqbot.db") + _keystore(tmp_path))
    r = await liqbot(["config", "check", "--config", str(cfg)], cwd=tmp_path)
    assert r.code == 0, r
    assert "# all checks passed" in r.out and "FAIL" not in r.out
    assert f"key of {Account.from_key(KEY).address} from keystore" in r.out
    assert KEY.removeprefix("0x") not in r.out + r.err and PASSWORD not in r.out + r.err
    assert "liqbot.db" not in files(tmp_path)  # a check writes nothing either
