"""Operator guards on sending: a kill switch and a rolling daily loss cap.

Both only stop *sending*: the bot keeps indexing, evaluating and recording what it would
have done (as dry-run rows in the ledger), so nothing is lost while it is held back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

DAY_S = 86_400


@dataclass(slots=True)
class LossGuard:
    """Trips when realized net PnL over the last 24 hours falls below ``-max_loss_base``."""

    max_loss_base: int | None  # None: no cap
    _events: deque[tuple[int, int]] = field(default_factory=deque)  # (timestamp, net)

    def record(self, timestamp: int, net_base: int) -> None:
        self._events.append((timestamp, net_base))

    def net(self, now: int) -> int:
        while self._events and self._events[0][0] <= now - DAY_S:
            self._events.popleft()
        return sum(net for _, net in self._events)

    def tripped(self, now: int) -> str | None:
        if self.max_loss_base is None:
            return None
        net = self.net(now)
        if net < -self.max_loss_base:
            return f"daily loss cap: net {net} over 24h is below -{self.max_loss_base}"
        return None


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """Sending stops while ``path`` exists (``touch`` it to stop, remove it to resume)."""

    path: Path | None

    def engaged(self) -> str | None:
        if self.path is not None and self.path.exists():
            return f"kill switch {self.path} is engaged"
        return None
