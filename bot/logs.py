"""The one place that configures logging: context fields rendered as key=value."""

from __future__ import annotations

import logging
import sys

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
NOISY = ("web3", "urllib3", "asyncio", "aiohttp")


class ContextFormatter(logging.Formatter):
    """Appends a record's ``extra`` fields (block, user, tx, ...) as key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = {
            k: v for k, v in record.__dict__.items() if k not in _STD and not k.startswith("_")
        }
        if not extra:
            return base
        return base + " " + " ".join(f"{k}={v}" for k, v in extra.items())


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
