"""Morpho Blue (1.0.0) off-chain state and math, exact to the wei."""
