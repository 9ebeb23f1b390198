"""The store interface the indexer and the ledger write through, and how to open one.

Two implementations: SQLite (a file path, the default; one database per bot) and
PostgreSQL (a ``postgresql://`` URL; several bot instances share one server). Both give
the same guarantees: the checkpoint, the rows it describes and their event records are
committed in one transaction, and a database (or, in PostgreSQL, a namespace) is bound to
one identity (chain id, protocol, market).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from bot.api import EventRecord, Key, Row
from bot.errors import ConfigError

SCHEMA_VERSION = "1"
_URL = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    number: int
    hash: str


class DatabaseLocked(ConfigError):
    """Another instance already writes this identity's index."""


class Database(ABC):
    """A bot's persistent state: the indexer's rows, checkpoint and events, and the
    ledger's table. Opened ``read_only`` it never writes (no schema, no lock)."""

    path: str  # what to show the operator: a file path, or a URL without its password
    read_only: bool

    @abstractmethod
    def close(self) -> None: ...

    # -- indexer ----------------------------------------------------------------------
    @abstractmethod
    def check_identity(self, identity: Mapping[str, str]) -> None:
        """Bind the store to one chain and market; refuse to mix them. A writer also
        becomes the identity's only writer."""

    @abstractmethod
    def checkpoint(self) -> Checkpoint | None: ...

    @abstractmethod
    def load_rows(self) -> Iterator[tuple[Key, Row]]: ...

    @abstractmethod
    def rows(self, keys: Iterable[Key]) -> dict[Key, Row]: ...

    @abstractmethod
    def commit(
        self,
        rows: Mapping[Key, Row | None],
        checkpoint: Checkpoint,
        events: Iterable[EventRecord] = (),
    ) -> None:
        """Write changed rows (None deletes), events and the new checkpoint atomically."""

    @abstractmethod
    def events(self, kind: str | None = None, from_block: int = 0) -> list[EventRecord]: ...

    # -- ledger (columns and their text values are the ledger's business) -------------
    @abstractmethod
    def ledger_open(self, columns: Sequence[str], instance: str) -> None:
        """Create the ledger table if needed; ``instance`` tags the rows this process
        writes where the database is shared."""

    @abstractmethod
    def ledger_insert(self, values: Mapping[str, str]) -> int: ...

    @abstractmethod
    def ledger_update(self, row_id: int, values: Mapping[str, str]) -> None: ...

    @abstractmethod
    def ledger_select(self, columns: Sequence[str]) -> Iterator[Sequence[str | int]]:
        """Rows in id order (empty if no ledger was ever written)."""


def is_url(target: str) -> bool:
    return bool(_URL.match(target))


def open_database(target: str, *, read_only: bool = False) -> Database:
    """A PostgreSQL store for a ``postgresql://`` URL, otherwise a SQLite file."""
    if is_url(target):
        from bot.db.postgres import PostgresDatabase

        return PostgresDatabase(target, read_only=read_only)
    from bot.db.sqlite import SqliteDatabase

    return SqliteDatabase(target, read_only=read_only)


def identity_mismatch(where: str, key: str, have: str | None, want: str) -> ConfigError:
    return ConfigError(
        "database",
        f"{where} holds {key}={have!r}, this run needs {want!r}",
        fix="use another database path or delete this one",
    )
