"""Adapters and strategies found through entry points, so a third-party package adds a
protocol or a strategy by installing itself, without editing liqbot.

``liqbot.adapters``: ``name = "module:object"`` naming an ``AdapterPlugin`` instance;
``liqbot.strategies``: ``name = "module:Class"`` naming a strategy class (constructed
without arguments). liqbot's own are registered the same way, in its pyproject.toml.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from bot.api import AdapterPlugin
from bot.errors import ConfigError

ADAPTERS = "liqbot.adapters"
STRATEGIES = "liqbot.strategies"


def _group(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def adapter_names() -> list[str]:
    return sorted(_group(ADAPTERS))


def strategy_names() -> list[str]:
    return sorted(_group(STRATEGIES))


def load_adapter(name: str) -> AdapterPlugin:
    """The plugin registered as ``name`` (the config's ``market.protocol``)."""
    ep = _group(ADAPTERS).get(name)
    if ep is None:
        raise ConfigError(
            "market.protocol",
            f"no adapter {name!r} is installed (installed: {', '.join(adapter_names())})",
        )
    plugin = ep.load()
    if not isinstance(plugin, AdapterPlugin):
        raise ConfigError(
            "market.protocol",
            f"entry point {ep.value} is not an AdapterPlugin instance (got {type(plugin)})",
        )
    return plugin


def load_strategy(name: str, protocol: str) -> Any:
    """A new instance of the strategy registered as ``name``; it must plan ``protocol``."""
    ep = _group(STRATEGIES).get(name)
    if ep is None:
        raise ConfigError(
            "strategy.name",
            f"no strategy {name!r} is installed (installed: {', '.join(strategy_names())})",
        )
    strategy = ep.load()()
    serves = getattr(strategy, "protocol", None)
    if serves != protocol:
        raise ConfigError(
            "strategy.name",
            f"strategy {name!r} plans {serves!r} positions, but market.protocol is {protocol!r}",
        )
    return strategy
