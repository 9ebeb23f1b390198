"""Typed configuration: one TOML file, ``LIQBOT_*`` environment overrides, or a devnet
manifest. Validation errors name the source, the key and what was expected.

Environment overrides use ``__`` between levels: ``LIQBOT_CHAIN__RPC_URL=http://...``
sets ``chain.rpc_url``; ``LIQBOT_INDEXER__CONFIRMATIONS=20`` sets ``indexer.confirmations``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
)

from bot.errors import ConfigError
from bot.redact import mask_tree

if TYPE_CHECKING:
    from bot.devnet.manifest import Manifest

ENV_PREFIX = "LIQBOT_"
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"


def _checksum(value: str) -> str:
    if not is_address(value):
        raise ValueError("expected a 0x-prefixed 20-byte hex address")
    return to_checksum_address(value)


Address = Annotated[str, AfterValidator(_checksum)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainSettings(_Section):
    rpc_url: str = Field(pattern=r"^https?://")
    ws_url: str | None = Field(
        default=None, pattern=r"^wss?://", description="newHeads subscription"
    )
    chain_id: int | None = Field(default=None, description="checked against the node at start")
    fallback_urls: list[Annotated[str, Field(pattern=r"^https?://")]] = Field(
        default=[],
        description="used in order when rpc_url fails or its head lags (same chain, same data)",
    )


class RpcLimits(_Section):
    rate_limit_per_s: int = Field(default=0, ge=0)
    max_in_flight: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=4, ge=0)
    max_batch: int = Field(default=250, ge=1)
    set_aside_s: float = Field(
        default=30.0, gt=0, description="a failing or lagging endpoint is skipped this long"
    )
    max_head_lag: int = Field(
        default=3, ge=0, description="blocks an endpoint's head may trail the best one seen"
    )


class MarketSettings(_Section):
    """An Aave V3 market, or a fork that only differs in addresses (Spark, ...)."""

    protocol: Literal["aave-v3"] = "aave-v3"
    pool_addresses_provider: Address
    multicall3: Address = MULTICALL3
    start_block: int = Field(ge=1, description="first block to index (the market's deploy block)")


MarketId = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]


class MorphoMarketSettings(_Section):
    """Morpho Blue: one contract, many isolated markets."""

    protocol: Literal["morpho-blue"]
    morpho: Address
    markets: list[MarketId] = Field(
        default=[], description="market ids to liquidate in (empty: every market)"
    )
    valuation_oracle: Address = Field(
        description="oracle with Aave's getAssetsPrices that values tokens in a base "
        "currency, to rank plans and price gas (Aave's own oracle on mainnet)"
    )
    multicall3: Address = MULTICALL3
    start_block: int = Field(ge=1, description="first block to index (Morpho's deploy block)")


class PluginMarketSettings(BaseModel):
    """A third-party adapter's market: every key is kept for its plugin to validate."""

    model_config = ConfigDict(extra="allow", frozen=True)
    protocol: str
    multicall3: Address = MULTICALL3
    start_block: int = Field(ge=1, description="first block to index")


def _market_kind(value: Any) -> str:
    protocol = (
        value.get("protocol", "aave-v3")
        if isinstance(value, Mapping)
        else getattr(value, "protocol", "aave-v3")
    )
    return protocol if protocol in _MARKET_MODELS else "plugin"


_MARKET_MODELS: dict[Any, type[BaseModel]] = {
    "aave-v3": MarketSettings,
    "morpho-blue": MorphoMarketSettings,
    "plugin": PluginMarketSettings,
}
AnyMarket = Annotated[
    Annotated[MarketSettings, Tag("aave-v3")]
    | Annotated[MorphoMarketSettings, Tag("morpho-blue")]
    | Annotated[PluginMarketSettings, Tag("plugin")],
    Discriminator(_market_kind),
]


class IndexerConfig(_Section):
    database: str = Field(
        default="liqbot.db",
        description="a SQLite file, or a postgresql:// URL shared by several instances",
    )
    confirmations: int = Field(default=12, ge=0)
    reread_depth: int = Field(
        default=64,
        ge=1,
        description="blocks less deep than this when first read are stored only after a "
        "second eth_getLogs answer agreed (a lagging replica's [] is caught)",
    )
    log_window: int = Field(default=2_000, ge=1)
    max_log_window: int = Field(default=50_000, ge=1)
    poll_interval_s: float = Field(default=2.0, gt=0)


class SwapSettings(_Section):
    uniswap_v2_factory: Address | None = Field(
        default=None, description="where seized collateral is sold (pairs found per asset pair)"
    )


class StrategyConfig(_Section):
    name: str | None = Field(
        default=None, description="a liqbot.strategies entry point (default: the adapter's)"
    )
    min_profit: Decimal = Field(
        default=Decimal("1"), ge=0, description="net profit floor, in the oracle's base currency"
    )
    close_factor_rules: Literal["v3.0", "v3.3"] = "v3.0"
    max_plans_per_block: int = Field(default=8, ge=1)
    inventory: Literal["off", "fallback", "best"] = Field(
        default="off",
        description="repay with the owner's own debt tokens (approved to the liquidator) and "
        "keep the collateral: fallback: only for users no flash-loan sale pays for; best: "
        "whenever that nets more at the oracle's prices",
    )
    native_asset: Address | None = Field(
        default=None, description="the wrapped gas token's reserve (prices gas in base units)"
    )
    block_time_s: int = Field(
        default=12, ge=0, description="plans are priced at head timestamp + this"
    )
    max_price_age_s: int | None = Field(
        default=90_000,
        ge=1,
        description="positions holding an asset whose feed is older are not liquidated",
    )


class ExecutorConfig(_Section):
    mode: Literal["auto", "dry-run"] = Field(
        default="auto", description="auto: send when a key is configured, else dry-run"
    )
    liquidator: Address | None = None
    private_key_env: str = "LIQBOT_PRIVATE_KEY"
    keystore: Path | None = None
    password_file: Path | None = None
    funded: bool = False
    priority_fee_gwei: Decimal = Field(default=Decimal("1.5"), ge=0)
    max_fee_gwei: Decimal = Field(default=Decimal("500"), gt=0)
    bid_share: Decimal = Field(
        default=Decimal(0),
        ge=0,
        lt=1,
        description="priority fee bid as this share of a plan's profit above base-fee gas "
        "(0: priority_fee_gwei only)",
    )
    replace_after_blocks: int = Field(default=3, ge=1)
    max_gas_in_flight: Decimal = Field(
        default=Decimal(4),
        ge=0,
        description="our unmined transactions may take this many blocks' gas limit (their "
        "expected gas, best plans first; the rest wait for the next head); 0: no limit",
    )
    cooldown_blocks: int = Field(default=5, ge=0)
    simulate_block: Literal["pending", "latest"] = "pending"
    max_daily_loss: Decimal | None = Field(
        default=None, ge=0, description="stop sending past this realized loss in 24h (base)"
    )
    kill_switch_file: Path | None = Field(
        default=None, description="sending stops while this file exists"
    )
    relay_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="send through this private relay (Flashbots, a builder), not the mempool",
    )
    relay_method: Literal["eth_sendPrivateTransaction", "eth_sendBundle"] = Field(
        default="eth_sendPrivateTransaction",
        description="one private transaction per plan, or one bundle per head",
    )
    relay_auth_key_env: str | None = Field(
        default=None,
        description="variable holding the key that signs X-Flashbots-Signature; unset: the "
        "trading key",
    )


class RunConfig(_Section):
    max_consecutive_failures: int = Field(
        default=20, ge=1, description="exit non-zero after this many failed heads in a row"
    )


class MetricsConfig(_Section):
    port: int | None = Field(
        default=None, ge=0, le=65_535, description="serve /metrics and /health; None: disabled"
    )
    host: str = Field(default="127.0.0.1", description="loopback unless exposed on purpose")
    stale_after_s: float = Field(
        default=60.0, gt=0, description="/health fails once the last head is older than this"
    )


class AlertsConfig(_Section):
    webhook_url: SecretStr | None = Field(
        default=None, description="POST a JSON alert here (the URL often holds a token)"
    )
    events: list[Literal["sent", "won", "raced", "reverted", "halted", "stopped"]] | None = Field(
        default=None, description="only these events; None: all"
    )
    timeout_s: float = Field(default=5.0, gt=0, description="per delivery attempt")
    retries: int = Field(default=2, ge=0, le=5)


class Settings(_Section):
    preset: str | None = Field(
        default=None,
        description="a built-in network (bot/presets) or a preset .toml path, merged under",
    )
    chain: ChainSettings
    market: AnyMarket
    rpc: RpcLimits = RpcLimits()
    indexer: IndexerConfig = IndexerConfig()
    swap: SwapSettings = SwapSettings()
    strategy: StrategyConfig = StrategyConfig()
    executor: ExecutorConfig = ExecutorConfig()
    run: RunConfig = RunConfig()
    metrics: MetricsConfig = MetricsConfig()
    alerts: AlertsConfig = AlertsConfig()

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        *,
        manifest: Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """From a TOML file and/or a devnet manifest, then environment, then overrides."""
        data: dict[str, Any] = {}
        source = "configuration"
        if path is not None:
            try:
                data = deep_merge(data, tomllib.loads(path.read_text()))
            except FileNotFoundError:
                raise ConfigError("config", f"file {path} not found") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError("config", f"{path} is not valid TOML: {e}") from None
            source = str(path)
        data = deep_merge(data, _from_env(os.environ if env is None else env))
        data = deep_merge(data, dict(overrides or {}))
        if manifest is not None:
            # Under the rest; which of its markets depends on the protocol asked for.
            protocol = data.get("market", {}).get("protocol", "aave-v3")
            data = deep_merge(_from_manifest(manifest, protocol), data)
            source = source if path is not None else str(manifest)
        if isinstance(data.get("preset"), str):
            from bot.presets import load_preset

            # Under everything else: the file, the environment and overrides win.
            data = deep_merge(load_preset(data["preset"]), data)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            # The market section's union tags its errors with the protocol: not a key.
            loc = tuple(p for p in err["loc"] if p not in _MARKET_MODELS)
            market = next((_MARKET_MODELS[p] for p in err["loc"] if p in _MARKET_MODELS), None)
            key = ".".join(str(p) for p in loc)
            got = mask_tree(err.get("input"), str(loc[-1]))
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            raise ConfigError(
                key, f"{err['msg']}{shown}", source=source, fix=_fix_hint(loc, err["type"], market)
            ) from None


def _fix_hint(loc: tuple[int | str, ...], kind: str, market: type[BaseModel] | None = None) -> str:
    """How to correct the key at ``loc``: where to set it, or the name it was meant to be."""
    key = ".".join(str(p) for p in loc)
    env = ENV_PREFIX + "__".join(str(p).upper() for p in loc) if len(loc) > 1 else ""
    where = f"in the config file or {env}" if env else "in the config file"
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        sub = field.annotation if field is not None else None
        if part == "market":
            sub = market or MarketSettings
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            break
        model = sub
    if kind == "missing":
        field = model.model_fields.get(str(loc[-1]))
        what = f"; it is the {field.description}" if field is not None and field.description else ""
        return f"set {key} {where}, or use a preset that has it{what}"
    if kind == "extra_forbidden":
        near = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
        return f"did you mean {near[0]}?" if near else "remove it; see docs/operations.md"
    return f"correct {key} {where}"


def _from_manifest(path: Path, protocol: str) -> dict[str, Any]:
    from bot.devnet.manifest import Manifest

    return manifest_settings(Manifest.load(path), protocol)


def manifest_settings(m: Manifest, protocol: str = "aave-v3") -> dict[str, Any]:
    """The settings a devnet manifest implies (to merge under a config file's), for its
    Aave V3 market or, with ``protocol="morpho-blue"``, its Morpho Blue deployment (valued
    by the devnet's Aave oracle)."""
    weth = [r.address for r in m.reserves if r.symbol == "WETH"]
    market: dict[str, Any] = {
        "pool_addresses_provider": m.aave.pool_addresses_provider,
        "multicall3": m.multicall3,
        "start_block": m.deploy_block,
    }
    if protocol == "morpho-blue":
        if m.morpho is None:
            raise ConfigError(
                "market.protocol",
                "the devnet manifest has no Morpho Blue deployment",
                fix="start the devnet with `liqbot devnet up --morpho`",
            )
        market = {
            "protocol": "morpho-blue",
            "morpho": m.morpho.morpho,
            "valuation_oracle": m.aave.oracle,
            "multicall3": m.multicall3,
            "start_block": m.morpho.deploy_block,
        }
    return {
        "chain": {"rpc_url": m.rpc_url, "chain_id": m.chain_id},
        "market": market,
        "swap": {"uniswap_v2_factory": m.uniswap.factory},
        "strategy": {"native_asset": weth[0]} if weth else {},
    }


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def deep_merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
        )
    return out
