"""Configuration: TOML + environment + manifest; bad input is one clear error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import ConfigError

PROVIDER = "0x8A791620dd6260079BF849Dc5567aDC3F2FdC318"
GOOD = f"""
[chain]
rpc_url = "http://127.0.0.1:8545"
chain_id = 31337

[market]
pool_addresses_provider = "{PROVIDER}"
start_block = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "liqbot.toml"
    p.write_text(text)
    return p


def test_good_config_and_defaults(tmp_path: Path) -> None:
    s = Settings.load(write(tmp_path, GOOD), env={})
    assert s.chain.chain_id == 31337
    assert s.market.pool_addresses_provider == PROVIDER
    assert s.market.multicall3 == "0xcA11bde05977b3631167028862bE2a173976CA11"
    assert s.indexer.confirmations == 12


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "LIQBOT_INDEXER__CONFIRMATIONS": "3",
        "LIQBOT_CHAIN__RPC_URL": "https://node.example",
        "OTHER": "x",
    }
    s = Settings.load(write(tmp_path, GOOD), env=env)
    assert s.indexer.confirmations == 3
    assert s.chain.rpc_url == "https://node.example"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            GOOD.replace('rpc_url = "http://127.0.0.1:8545"\n', ""),
            "chain.rpc_url",
            "Field required",
        ),
        (
            GOOD.replace("chain_id = 31337", 'chain_id = "mainnet"'),
            "chain.chain_id",
            "valid integer",
        ),
        (GOOD + "\n[indexer]\nconfirmatons = 3\n", "indexer.confirmatons", "Extra inputs"),
        (GOOD.replace(PROVIDER, "0x1234"), "market.pool_addresses_provider", "20-byte hex address"),
        (
            GOOD.replace("start_block = 5", "start_block = 0"),
            "market.start_block",
            "greater than or equal to 1",
        ),
        (
            GOOD.replace("http://127.0.0.1:8545", "127.0.0.1:8545"),
            "chain.rpc_url",
            "should match pattern",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        Settings.load(path, env={})
    assert e.value.key == key
    assert words in str(e.value)
    assert str(path) in str(e.value)


def test_unparseable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(write(tmp_path, "[chain\n"), env={})
    with pytest.raises(ConfigError, match="not found"):
        Settings.load(tmp_path / "nope.toml", env={})


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "liqbot.example.toml"
    s = Settings.load(example, env={})
    assert s.chain.chain_id == 1
    assert s.market.start_block > 0


def test_metrics_section(tmp_path: Path) -> None:
    s = Settings.load(write(tmp_path, GOOD), env={})
    assert s.metrics.port is None
    assert s.metrics.host == "127.0.0.1"
    assert s.metrics.stale_after_s == 60
    s = Settings.load(write(tmp_path, GOOD), env={"LIQBOT_METRICS__PORT": "9100"})
    assert s.metrics.port == 9100
    with pytest.raises(ConfigError) as e:
        Settings.load(write(tmp_path, GOOD), env={"LIQBOT_METRICS__PORT": "70000"})
    assert e.value.key == "metrics.port"


def test_negative_percentages_are_glued_to_their_option() -> None:
    from bot.cli import build_parser, glue_negative_values

    argv = ["shock", "--asset", "WETH", "--from", "-5%", "--to", "-50.5%", "--steps", "3"]
    glued = glue_negative_values(argv)
    assert glued == ["shock", "--asset", "WETH", "--from=-5%", "--to=-50.5%", "--steps", "3"]
    args = build_parser().parse_args(glued)
    assert (args.from_pct, args.to_pct) == (-500, -5050)  # basis points
    # Not a percentage, or an option already given its value: left alone.
    assert glue_negative_values(["--log-level", "-x"]) == ["--log-level", "-x"]
    assert glue_negative_values(["--from=-5%"]) == ["--from=-5%"]
