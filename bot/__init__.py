"""liqbot: a typed asyncio framework for DeFi lending liquidations."""

__version__ = "0.1.0"
