"""Liquidation strategies: pure functions from a market snapshot to ranked, exact plans.

``strategies.api`` defines the interface (``Strategy``, ``StrategyInput``, ``PairQuote``,
``CloseFactorRules``); ``strategies.default.DefaultStrategy`` is the Aave V3 strategy,
``strategies.morpho.MorphoStrategy`` the Morpho Blue one (on ``MorphoStrategyInput``).
"""

from strategies.api import CloseFactorRules, PairQuote, Strategy, StrategyInput, pair_key
from strategies.default import DefaultStrategy
from strategies.morpho import (
    MorphoMarketView,
    MorphoStrategy,
    MorphoStrategyInput,
    MorphoTarget,
    position_key,
)

__all__ = [
    "CloseFactorRules",
    "DefaultStrategy",
    "MorphoMarketView",
    "MorphoStrategy",
    "MorphoStrategyInput",
    "MorphoTarget",
    "PairQuote",
    "Strategy",
    "StrategyInput",
    "pair_key",
    "position_key",
]
