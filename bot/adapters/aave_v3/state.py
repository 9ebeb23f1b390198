"""In-memory Aave V3 positions, as the indexer maintains them from events.

A ``Book`` maps users to their raw token state per reserve (the same ``UserReserve`` the
exact health math consumes) and keeps, per reserve, the set of users holding anything in
it, so that a price change re-evaluates only those users.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from bot.adapters.aave_v3.health import UserReserve


@dataclass(slots=True)
class UserPosition:
    emode: int = 0
    reserves: dict[int, UserReserve] = field(default_factory=dict)


def _is_empty(u: UserReserve) -> bool:
    return not (
        u.scaled_atoken or u.scaled_variable_debt or u.stable_debt_principal or u.collateral_enabled
    )


class Book:
    """Every user's position; mutations keep the reserve → holders index in step."""

    def __init__(self) -> None:
        self.users: dict[str, UserPosition] = {}
        self.holders: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self.users)

    def __iter__(self) -> Iterator[str]:
        return iter(self.users)

    def get(self, user: str) -> UserPosition | None:
        return self.users.get(user)

    def reserve(self, user: str, reserve_id: int) -> UserReserve:
        pos = self.users.get(user)
        if pos is None:
            return UserReserve()
        return pos.reserves.get(reserve_id, UserReserve())

    def put_reserve(self, user: str, reserve_id: int, value: UserReserve) -> None:
        pos = self.users.setdefault(user, UserPosition())
        if _is_empty(value):
            pos.reserves.pop(reserve_id, None)
            holders = self.holders.get(reserve_id)
            if holders is not None:
                holders.discard(user)
        else:
            pos.reserves[reserve_id] = value
            self.holders.setdefault(reserve_id, set()).add(user)
        if not pos.reserves and pos.emode == 0:
            del self.users[user]

    def add_scaled(self, user: str, reserve_id: int, *, atoken: int = 0, vdebt: int = 0) -> None:
        cur = self.reserve(user, reserve_id)
        # Built field by field, not with ``dataclasses.replace``: this is the backfill's
        # hottest call, and ``replace`` costs as much as the rest of it.
        new = UserReserve(
            cur.scaled_atoken + atoken,
            cur.scaled_variable_debt + vdebt,
            cur.stable_debt_principal,
            cur.stable_rate,
            cur.stable_last_update,
            cur.collateral_enabled,
        )
        if new.scaled_atoken < 0 or new.scaled_variable_debt < 0:
            raise ValueError(f"negative scaled balance for {user} in reserve {reserve_id}")
        self.put_reserve(user, reserve_id, new)

    def set_collateral(self, user: str, reserve_id: int, enabled: bool) -> None:
        self.put_reserve(
            user, reserve_id, replace(self.reserve(user, reserve_id), collateral_enabled=enabled)
        )

    def set_stable(
        self, user: str, reserve_id: int, principal: int, rate: int, last_update: int
    ) -> None:
        cur = self.reserve(user, reserve_id)
        new = replace(
            cur, stable_debt_principal=principal, stable_rate=rate, stable_last_update=last_update
        )
        self.put_reserve(user, reserve_id, new)

    def set_emode(self, user: str, category: int) -> None:
        pos = self.users.setdefault(user, UserPosition())
        pos.emode = category
        if not pos.reserves and pos.emode == 0:
            del self.users[user]

    def borrowers(self) -> list[str]:
        return [u for u, p in self.users.items() if any(r.borrowing for r in p.reserves.values())]
