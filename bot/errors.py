"""One exception tree for the whole bot.

Messages are built from fields so that logs and tests can rely on the fields, not on
string parsing. ``FatalError`` subclasses are the "stop the bot" branch: a supervisor
should restart the process after them.
"""

from __future__ import annotations


class LiqbotError(Exception):
    """Root of every error liqbot raises on purpose."""


class ConfigError(LiqbotError):
    """Bad configuration: names the source, the key and what was expected."""

    def __init__(self, key: str, problem: str, *, source: str | None = None, fix: str = "") -> None:
        self.key = key
        self.problem = problem
        self.source = source
        self.fix = fix
        where = f"{source}: " if source else ""
        hint = f" ({fix})" if fix else ""
        super().__init__(f"{where}{key}: {problem}{hint}")


class RpcError(LiqbotError):
    """A JSON-RPC call failed after the client's own retries."""

    def __init__(
        self, method: str, message: str, *, code: int | None = None, data: object = None
    ) -> None:
        self.method = method
        self.code = code
        self.data = data
        self.message = message
        suffix = f" (code {code})" if code is not None else ""
        super().__init__(f"{method}: {message}{suffix}")


class RpcTransportError(RpcError):
    """The endpoint did not answer usefully (timeout, HTTP error, garbage): retryable."""


class RequestTooLarge(RpcError):
    """HTTP 413: the node refuses the request body's size; a batch is split, not retried."""


class ExecutionReverted(RpcError):
    """The node executed the call and it reverted; never retried."""

    @property
    def revert_data(self) -> str | None:
        return self.data if isinstance(self.data, str) else None


class AdapterError(LiqbotError):
    """A protocol adapter could not read or interpret protocol state."""


class StaleDataError(LiqbotError):
    """Data too old to act on (head, oracle answer)."""


class SimulationFailed(LiqbotError):
    """The exact transaction failed in simulation; nothing was sent."""


class ArtifactError(LiqbotError):
    """A compiled contract artifact is missing or malformed (run the set-up)."""


class DevnetError(LiqbotError):
    """The local devnet could not be started, deployed or seeded."""


class FatalError(LiqbotError):
    """Stop the bot: a supervisor should restart it."""


class BotHalted(FatalError):
    """Too many consecutive failures: exit non-zero for a supervisor to restart."""


class ChainMismatchError(FatalError):
    def __init__(self, expected: int, actual: int, url: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"chain id mismatch at {url}: expected {expected}, node reports {actual}")
