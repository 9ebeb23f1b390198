"""SQLite persistence of indexed state: rows, the checkpoint and event history, committed
in one transaction, so a crash leaves either the old checkpoint with the old rows or the
new with the new. One database file per bot: the identity binds the whole file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

from bot.api import EventRecord, Key, Row
from bot.db.api import SCHEMA_VERSION, Checkpoint, Database, identity_mismatch
from bot.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1), number INTEGER NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (block, log_index)
);
"""


class SqliteDatabase(Database):
    def __init__(self, path: Path | str, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        if read_only:
            # mode=ro: the operator's views (`liqbot status`) can never write, not even
            # the schema, and a missing file is an error instead of a new empty database.
            if not Path(self.path).is_file():
                raise ConfigError("database", f"{self.path} does not exist")
            uri = f"file:{quote(str(Path(self.path).resolve()))}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _has(self, table: str) -> bool:
        """Whether ``table`` exists (a read-only view of a ledger-only or older file)."""
        q = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self._db.execute(q, (table,)).fetchone() is not None

    def check_identity(self, identity: Mapping[str, str]) -> None:
        want = {"schema": SCHEMA_VERSION, **identity}
        have = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not have:
            if self.read_only:
                raise ConfigError("database", f"{self.path} holds no index yet")
            with self._tx():
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", want.items())
            return
        for k, v in want.items():
            if have.get(k) != v:
                raise identity_mismatch(self.path, k, have.get(k), v)

    def checkpoint(self) -> Checkpoint | None:
        row = self._db.execute("SELECT number, hash FROM checkpoint WHERE id = 1").fetchone()
        return Checkpoint(row[0], row[1]) if row else None

    def load_rows(self) -> Iterator[tuple[Key, Row]]:
        for ns, key, value in self._db.execute("SELECT ns, key, value FROM state"):
            yield (ns, key), value

    def rows(self, keys: Iterable[Key]) -> dict[Key, Row]:
        out: dict[Key, Row] = {}
        for ns, key in keys:
            r = self._db.execute(
                "SELECT value FROM state WHERE ns = ? AND key = ?", (ns, key)
            ).fetchone()
            if r:
                out[(ns, key)] = r[0]
        return out

    def commit(
        self,
        rows: Mapping[Key, Row | None],
        checkpoint: Checkpoint,
        events: Iterable[EventRecord] = (),
    ) -> None:
        upserts = [(ns, k, v) for (ns, k), v in rows.items() if v is not None]
        deletes = [(ns, k) for (ns, k), v in rows.items() if v is None]
        with self._tx():
            if upserts:
                self._db.executemany(
                    "INSERT INTO state VALUES (?, ?, ?) "
                    "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                    upserts,
                )
            if deletes:
                self._db.executemany("DELETE FROM state WHERE ns = ? AND key = ?", deletes)
            self._db.executemany(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?)",
                [(e.block, e.log_index, e.tx, e.kind, e.payload) for e in events],
            )
            self._db.execute(
                "INSERT INTO checkpoint VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET number = excluded.number, hash = excluded.hash",
                (checkpoint.number, checkpoint.hash),
            )

    def events(self, kind: str | None = None, from_block: int = 0) -> list[EventRecord]:
        sql = "SELECT block, log_index, tx, kind, payload FROM events WHERE block >= ?"
        args: list[object] = [from_block]
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        return [EventRecord(*r) for r in self._db.execute(sql + " ORDER BY block, log_index", args)]

    # -- ledger: one bot per file, so rows carry no instance column (the schema is the
    # one databases written before PostgreSQL support already have).
    def ledger_open(self, columns: Sequence[str], instance: str) -> None:
        if self.read_only:
            return
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            + ", ".join(f"{c} TEXT NOT NULL DEFAULT ''" for c in columns)
            + ")"
        )
        # A ledger written by an older liqbot gets the columns added since, empty.
        have = self._ledger_columns()
        for c in columns:
            if c not in have:
                self._db.execute(f"ALTER TABLE ledger ADD COLUMN {c} TEXT NOT NULL DEFAULT ''")

    def _ledger_columns(self) -> set[str]:
        return {row[1] for row in self._db.execute("PRAGMA table_info(ledger)")}

    def ledger_insert(self, values: Mapping[str, str]) -> int:
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = self._db.execute(
            f"INSERT INTO ledger ({names}) VALUES ({marks})", list(values.values())
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def ledger_update(self, row_id: int, values: Mapping[str, str]) -> None:
        assignments = ", ".join(f"{k} = ?" for k in values)
        self._db.execute(
            f"UPDATE ledger SET {assignments} WHERE id = ?", [*values.values(), row_id]
        )

    def ledger_select(self, columns: Sequence[str]) -> Iterator[Sequence[str | int]]:
        if self.read_only and not self._has("ledger"):
            return iter(())
        if self.read_only:
            # An older ledger is not given the newer columns here: they read as empty.
            have = self._ledger_columns()
            columns = [c if c in have else "''" for c in columns]
        return iter(self._db.execute(f"SELECT {', '.join(columns)} FROM ledger ORDER BY id"))

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
