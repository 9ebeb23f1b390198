"""Test tooling that ships with the bot: a fault-injecting JSON-RPC proxy (``fault_proxy``).

Nothing here is imported by the running bot; it lives in the package so that tests, the
benchmarks and operators reproducing an incident can all use the same proxy.
"""
