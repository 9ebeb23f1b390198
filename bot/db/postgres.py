"""PostgreSQL persistence: several bot instances share one server.

Every row carries its store identity (``ident``: chain id, protocol, market), so bots
sharded by market coexist in one database, in the ``liqbot`` schema. Each identity's
index has one writer at a time: it holds a session advisory lock keyed by the identity
for as long as its connection lives (a crashed writer's lock goes with its connection),
and a second writer is refused with ``DatabaseLocked``. Readers (``read_only=True``) take
no lock, create nothing, and their session refuses writes (``default_transaction_read_only``):
they see the writer's last committed checkpoint with the rows it describes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

import psycopg

from bot.api import EventRecord, Key, Row
from bot.db.api import (
    SCHEMA_VERSION,
    Checkpoint,
    Database,
    DatabaseLocked,
    identity_mismatch,
)
from bot.errors import ConfigError
from bot.redact import mask_url

SCHEMA = "liqbot"
_TABLES = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS meta (
    ident TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (ident, key)
);
CREATE TABLE IF NOT EXISTS checkpoint (
    ident TEXT PRIMARY KEY, number BIGINT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    ident TEXT NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (ident, ns, key)
);
CREATE TABLE IF NOT EXISTS events (
    ident TEXT NOT NULL, block BIGINT NOT NULL, log_index INTEGER NOT NULL, tx TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (ident, block, log_index)
);
"""
# Serialises schema creation between instances starting at once (CREATE ... IF NOT
# EXISTS is not safe against a concurrent CREATE of the same table).
_SCHEMA_LOCK = 0x6C69_7162_6F74  # "liqbot"


def ident_of(identity: Mapping[str, str]) -> str:
    """The namespace of an identity: its items, sorted (stable, readable)."""
    return ",".join(f"{k}={v}" for k, v in sorted(identity.items()))


def _lock_key(ident: str) -> int:
    """A signed 64-bit advisory lock key for ``ident``."""
    return int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "big", signed=True)


class PostgresDatabase(Database):
    def __init__(self, url: str, *, read_only: bool = False) -> None:
        self.path = mask_url(url)
        self.read_only = read_only
        self._ident: str | None = None
        self._identity: dict[str, str] = {}
        self._instance = ""
        options = f"-c search_path={SCHEMA}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        try:
            self._db = psycopg.connect(url, autocommit=True, options=options)
        except psycopg.Error as e:
            # libpq's messages name host, port and user, never the password; the URL is
            # shown masked.
            raise ConfigError("indexer.database", f"cannot connect to {self.path}: {e}") from None
        if not read_only:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                self._db.execute(_TABLES)

    def close(self) -> None:
        self._db.close()

    @property
    def ident(self) -> str:
        if self._ident is None:
            raise RuntimeError("check_identity() binds a PostgreSQL store before use")
        return self._ident

    def _has(self, table: str) -> bool:
        q = "SELECT to_regclass(%s) IS NOT NULL"
        row = self._db.execute(q, (f"{SCHEMA}.{table}",)).fetchone()
        return bool(row and row[0])

    def check_identity(self, identity: Mapping[str, str]) -> None:
        want = {"schema": SCHEMA_VERSION, **identity}
        if self._ident is not None:
            for k, v in want.items():
                bound = self._identity.get(k)
                if k != "schema" and bound != v:
                    raise identity_mismatch(self.path, k, bound, v)
        ident = ident_of(identity)
        have: dict[str, str] = {}
        if self._has("meta"):
            q = "SELECT key, value FROM meta WHERE ident = %s"
            have = {k: v for k, v in self._db.execute(q, (ident,)).fetchall()}
        if not have and self.read_only:
            raise ConfigError("database", f"{self.path} holds no index for {ident} yet")
        if self._ident is None and not self.read_only:
            got = self._db.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(ident),))
            if not got.fetchone()[0]:  # type: ignore[index]
                raise DatabaseLocked(
                    "indexer.database",
                    f"another liqbot instance is writing the index of {ident} in {self.path}",
                    fix="one writer per market; other instances open the index read-only",
                )
        if not have:
            with self._db.transaction():
                self._db.cursor().executemany(
                    "INSERT INTO meta VALUES (%s, %s, %s)",
                    [(ident, k, v) for k, v in want.items()],
                )
        else:
            for k, v in want.items():
                if have.get(k) != v:
                    raise identity_mismatch(f"{self.path} ({ident})", k, have.get(k), v)
        self._ident, self._identity = ident, dict(identity)

    def checkpoint(self) -> Checkpoint | None:
        q = "SELECT number, hash FROM checkpoint WHERE ident = %s"
        row = self._db.execute(q, (self.ident,)).fetchone()
        return Checkpoint(row[0], row[1]) if row else None

    def load_rows(self) -> Iterator[tuple[Key, Row]]:
        q = "SELECT ns, key, value FROM state WHERE ident = %s"
        for ns, key, value in self._db.execute(q, (self.ident,)).fetchall():
            yield (ns, key), value

    def rows(self, keys: Iterable[Key]) -> dict[Key, Row]:
        wanted = list(keys)
        if not wanted:
            return {}
        # One round trip: the keys as two parallel arrays, joined on the server.
        q = (
            "SELECT s.ns, s.key, s.value FROM state s "
            "JOIN unnest(%s::text[], %s::text[]) AS k(ns, key) ON s.ns = k.ns AND s.key = k.key "
            "WHERE s.ident = %s"
        )
        args = ([ns for ns, _ in wanted], [k for _, k in wanted], self.ident)
        return {(ns, k): v for ns, k, v in self._db.execute(q, args).fetchall()}

    def commit(
        self,
        rows: Mapping[Key, Row | None],
        checkpoint: Checkpoint,
        events: Iterable[EventRecord] = (),
    ) -> None:
        ident = self.ident
        upserts = [(ident, ns, k, v) for (ns, k), v in rows.items() if v is not None]
        deletes = [(ident, ns, k) for (ns, k), v in rows.items() if v is None]
        with self._db.transaction():
            cur = self._db.cursor()
            if upserts:
                cur.executemany(
                    "INSERT INTO state VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (ident, ns, key) DO UPDATE SET value = excluded.value",
                    upserts,
                )
            if deletes:
                cur.executemany(
                    "DELETE FROM state WHERE ident = %s AND ns = %s AND key = %s", deletes
                )
            records = [(ident, e.block, e.log_index, e.tx, e.kind, e.payload) for e in events]
            if records:
                cur.executemany(
                    "INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (ident, block, log_index) DO UPDATE SET tx = excluded.tx, "
                    "kind = excluded.kind, payload = excluded.payload",
                    records,
                )
            cur.execute(
                "INSERT INTO checkpoint VALUES (%s, %s, %s) ON CONFLICT (ident) "
                "DO UPDATE SET number = excluded.number, hash = excluded.hash",
                (ident, checkpoint.number, checkpoint.hash),
            )

    def events(self, kind: str | None = None, from_block: int = 0) -> list[EventRecord]:
        sql = "SELECT block, log_index, tx, kind, payload FROM events WHERE ident = %s"
        sql += " AND block >= %s"
        args: list[object] = [self.ident, from_block]
        if kind:
            sql += " AND kind = %s"
            args.append(kind)
        cur = self._db.execute(sql + " ORDER BY block, log_index", args)
        return [EventRecord(*r) for r in cur.fetchall()]

    # -- ledger: rows of every instance of every identity share one table; each row
    # names its identity and the instance (signer address) that wrote it.
    def ledger_open(self, columns: Sequence[str], instance: str) -> None:
        self._instance = instance
        if self.read_only:
            return
        cols = ", ".join(f"\"{c}\" TEXT NOT NULL DEFAULT ''" for c in columns)
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ledger (id BIGSERIAL PRIMARY KEY, "
                f"ident TEXT NOT NULL, instance TEXT NOT NULL, {cols})"
            )
            # A ledger written by an older liqbot gets the columns added since, empty.
            for c in columns:
                self._db.execute(
                    f"ALTER TABLE ledger ADD COLUMN IF NOT EXISTS \"{c}\" TEXT NOT NULL DEFAULT ''"
                )

    def ledger_insert(self, values: Mapping[str, str]) -> int:
        names = ", ".join(f'"{c}"' for c in values)
        marks = ", ".join("%s" for _ in values)
        row = self._db.execute(
            f"INSERT INTO ledger (ident, instance, {names}) VALUES (%s, %s, {marks}) RETURNING id",
            [self.ident, self._instance, *values.values()],
        ).fetchone()
        assert row is not None
        return int(row[0])

    def ledger_update(self, row_id: int, values: Mapping[str, str]) -> None:
        assignments = ", ".join(f'"{k}" = %s' for k in values)
        self._db.execute(
            f"UPDATE ledger SET {assignments} WHERE id = %s AND ident = %s",
            [*values.values(), row_id, self.ident],
        )

    def ledger_select(self, columns: Sequence[str]) -> Iterator[Sequence[str | int]]:
        if not self._has("ledger"):
            return iter(())
        names = ", ".join(f'"{c}"' for c in columns)
        if self._ident is None:  # not bound to a market (`liqbot ledger`): every row
            return iter(self._db.execute(f"SELECT {names} FROM ledger ORDER BY id").fetchall())
        q = f"SELECT {names} FROM ledger WHERE ident = %s ORDER BY id"
        return iter(self._db.execute(q, (self._ident,)).fetchall())
