"""Network presets: generated from the pinned address book, merged under the settings;
secrets masked wherever settings are shown."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from bot.commands.config import to_toml
from bot.config import Settings
from bot.errors import ConfigError
from bot.presets import load_preset, names
from bot.redact import mask_tree, mask_url

ROOT = Path(__file__).resolve().parents[2]
RPC = {"LIQBOT_CHAIN__RPC_URL": "http://127.0.0.1:8545"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_presets", ROOT / "scripts/gen_presets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve their annotations through sys.modules while the module executes.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_committed_presets_are_what_the_generator_makes() -> None:
    rendered = _generator().render_all()
    committed = {p.name: p.read_text() for p in (ROOT / "bot/presets").glob("*.toml")}
    assert rendered == committed
    assert set(names()) == {"ethereum", "arbitrum", "base", "optimism", "polygon", "sepolia"}


@pytest.mark.parametrize(
    ("name", "chain_id", "provider"),
    [
        ("ethereum", 1, "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"),
        ("arbitrum", 42161, "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb"),
        ("base", 8453, "0xe20fCBdBfFC4Dd138cE8b2E6FBb6CB49777ad64D"),
        ("optimism", 10, "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb"),
        ("polygon", 137, "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb"),
    ],
)
def test_preset_alone_with_an_rpc_url_is_a_complete_config(
    name: str, chain_id: int, provider: str
) -> None:
    s = Settings.load(env=RPC, overrides={"preset": name})
    assert (s.preset, s.chain.chain_id, s.market.pool_addresses_provider) == (
        name,
        chain_id,
        provider,
    )
    assert s.market.start_block > 1_000_000
    assert s.strategy.native_asset is not None and s.swap.uniswap_v2_factory is not None
    assert "rpc_url" not in load_preset(name).get("chain", {})


def test_sepolia_requires_an_explicit_start_block() -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load(env=RPC, overrides={"preset": "sepolia"})
    assert e.value.key == "market.start_block"
    assert "LIQBOT_MARKET__START_BLOCK" in e.value.fix
    env = {**RPC, "LIQBOT_MARKET__START_BLOCK": "7000000"}
    assert Settings.load(env=env, overrides={"preset": "sepolia"}).market.start_block == 7000000


def test_file_and_environment_override_the_preset(tmp_path: Path) -> None:
    cfg = tmp_path / "liqbot.toml"
    cfg.write_text('preset = "ethereum"\n[market]\nstart_block = 17000000\n')
    env = {**RPC, "LIQBOT_STRATEGY__BLOCK_TIME_S": "3"}
    s = Settings.load(cfg, env=env)
    assert s.market.start_block == 17000000  # the file
    assert s.strategy.block_time_s == 3  # the environment
    assert s.chain.chain_id == 1  # the preset, where nothing overrides it


def test_unknown_preset_names_the_key_and_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load(env=RPC, overrides={"preset": "atlantis"})
    assert e.value.key == "preset" and "ethereum" in e.value.fix


def test_a_preset_file_may_not_carry_an_rpc_url(tmp_path: Path) -> None:
    p = tmp_path / "mine.toml"
    p.write_text('[chain]\nchain_id = 5\nrpc_url = "https://x.example/v3/0123456789abcdef0123"\n')
    with pytest.raises(ConfigError) as e:
        load_preset(str(p))
    assert e.value.key == "preset" and "0123456789abcdef" not in str(e.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef", "/v3/***"),
        ("https://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOpQrSt-_12", "/v2/***"),
        ("https://user:hunter2@node.example:8545/rpc?apikey=s3cr3t&x=1", "***@node.example:8545"),
        ("wss://x.quiknode.pro/abcdef0123456789abcdef/", "x.quiknode.pro/***/"),
        ("postgresql://bot:pa55word@db.internal/liqbot", "postgresql://***@db.internal/liqbot"),
    ],
)
def test_urls_are_masked(url: str, shown: str) -> None:
    masked = mask_url(url)
    assert shown in masked
    for secret in ("0123456789abcdef", "AbCdEfGh", "hunter2", "s3cr3t", "pa55word"):
        assert secret not in masked


def test_settings_render_as_toml_with_secrets_masked(tmp_path: Path) -> None:
    env = {
        "LIQBOT_CHAIN__RPC_URL": "https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef",
        "LIQBOT_CHAIN__WS_URL": "wss://u:hunter2@node.example/ws",
    }
    s = Settings.load(env=env, overrides={"preset": "ethereum"})
    tree = mask_tree(s.model_dump(mode="json"))
    text = to_toml(tree)
    assert "0123456789abcdef" not in text and "hunter2" not in text
    back = tomllib.loads(text)  # valid TOML, every section present
    assert back["chain"]["rpc_url"] == "https://mainnet.infura.io/v3/***"
    assert back["market"]["start_block"] == s.market.start_block
    assert "# liquidator =  (unset)" in text
    assert mask_tree({"api_key": "abc", "password_file": "p.txt"}) == {
        "api_key": "***",
        "password_file": "p.txt",
    }
