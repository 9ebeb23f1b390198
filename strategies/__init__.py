"""Liquidation strategies: pure functions from a market snapshot to ranked, exact plans.

``strategies.api`` defines the interface (``Strategy``, ``StrategyInput``, ``PairQuote``,
``CloseFactorRules``); ``strategies.default.DefaultStrategy`` is the Aave V3 strategy.
"""

from strategies.api import CloseFactorRules, PairQuote, Strategy, StrategyInput, pair_key
from strategies.default import DefaultStrategy

__all__ = [
    "CloseFactorRules",
    "DefaultStrategy",
    "PairQuote",
    "Strategy",
    "StrategyInput",
    "pair_key",
]
