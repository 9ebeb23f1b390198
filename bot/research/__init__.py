"""The research toolkit: chain histories, backtests, price shocks and optimistic runs."""
