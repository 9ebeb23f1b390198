"""Sending liquidations: the liquidator contract and its transactions."""
