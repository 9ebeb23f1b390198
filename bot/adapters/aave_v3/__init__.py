"""Aave V3 (core-v3 1.19.3, protocol v3.0.x) off-chain math, exact to the wei."""
