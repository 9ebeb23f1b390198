"""Small asyncio helpers shared by the pipeline's modules."""

from __future__ import annotations

import asyncio
from typing import Any


def give_up(future: asyncio.Future[Any]) -> None:
    """Stop caring about ``future``, a read started ahead that is no longer needed: it is
    cancelled if still running; if it already failed, its error is taken, which is not
    news (asyncio would log it as "never retrieved")."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()
