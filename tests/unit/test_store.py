"""The store, on SQLite and PostgreSQL: atomic commits of rows, events and the checkpoint;
identity binding."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.api import EventRecord
from bot.db.api import Database
from bot.db.postgres import PostgresDatabase
from bot.errors import ConfigError
from bot.indexer.store import Checkpoint, Store

IDENTITY = {"chain_id": "1", "market": "aave-v3-ethereum"}


@pytest.fixture(params=["memory", "file"])
def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store(":memory:" if request.param == "memory" else tmp_path / "sub" / "state.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(params=["memory", "file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Each backend; a PostgreSQL store is bound to ``IDENTITY`` (its rows' namespace)."""
    s: Database
    if request.param == "postgres":
        s = PostgresDatabase(request.getfixturevalue("pg_url"))
        s.check_identity(IDENTITY)
    else:
        s = Store(":memory:" if request.param == "memory" else tmp_path / "sub" / "state.db")
    try:
        yield s
    finally:
        s.close()


def integrity_error(s: Database) -> type[Exception]:
    return psycopg.IntegrityError if isinstance(s, PostgresDatabase) else sqlite3.IntegrityError


def ev(
    block: int, log_index: int, kind: str = "aave.liquidation", payload: str = "{}"
) -> EventRecord:
    return EventRecord(block, log_index, f"0x{block:04x}{log_index:04x}", kind, payload)


def all_rows(s: Database) -> dict[tuple[str, str], str]:
    return dict(s.load_rows())


def seed(s: Database) -> None:
    s.commit(
        {("pos", "alice"): "A1", ("pos", "bob"): "B1", ("cfg", "r0"): "R0"},
        Checkpoint(100, "0xaa"),
        [ev(99, 0)],
    )


class FailingConnection:
    """Wraps a connection; raises on the first statement containing ``fail_on``."""

    def __init__(self, db: sqlite3.Connection, fail_on: str) -> None:
        self._db = db
        self.fail_on = fail_on
        self.statements: list[str] = []

    def _check(self, sql: str) -> None:
        self.statements.append(sql.split()[0])
        if self.fail_on in sql:
            raise sqlite3.OperationalError(f"injected failure on {self.fail_on}")

    def execute(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        self._check(sql)
        return self._db.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_fresh_store_is_empty(store: Database) -> None:
    assert store.checkpoint() is None
    assert all_rows(store) == {}
    assert store.events() == []
    assert store.rows([("pos", "alice")]) == {}


def test_commit_writes_rows_events_and_checkpoint(store: Database) -> None:
    seed(store)
    assert store.checkpoint() == Checkpoint(100, "0xaa")
    assert all_rows(store) == {("pos", "alice"): "A1", ("pos", "bob"): "B1", ("cfg", "r0"): "R0"}
    assert store.events() == [ev(99, 0)]

    # Update one row, delete one (None), leave one alone, add a new one.
    store.commit(
        {("pos", "alice"): "A2", ("pos", "bob"): None, ("pos", "carol"): "C1"},
        Checkpoint(101, "0xbb"),
        [ev(101, 3), ev(101, 1)],
    )
    assert store.checkpoint() == Checkpoint(101, "0xbb")
    assert all_rows(store) == {("pos", "alice"): "A2", ("pos", "carol"): "C1", ("cfg", "r0"): "R0"}
    assert store.rows([("pos", "alice"), ("pos", "bob"), ("cfg", "r0"), ("x", "y")]) == {
        ("pos", "alice"): "A2",
        ("cfg", "r0"): "R0",
    }
    assert store.events() == [ev(99, 0), ev(101, 1), ev(101, 3)]


def test_deleting_a_missing_row_and_empty_commit(store: Database) -> None:
    store.commit({("pos", "ghost"): None}, Checkpoint(5, "0x05"))
    assert all_rows(store) == {}
    assert store.checkpoint() == Checkpoint(5, "0x05")
    store.commit({}, Checkpoint(4, "0x04"))  # a reorg may move the checkpoint back
    assert store.checkpoint() == Checkpoint(4, "0x04")


def test_namespaces_keep_keys_apart(store: Database) -> None:
    store.commit({("a", "k"): "1", ("b", "k"): "2"}, Checkpoint(1, "0x1"))
    store.commit({("a", "k"): None}, Checkpoint(2, "0x2"))
    assert all_rows(store) == {("b", "k"): "2"}


@pytest.mark.parametrize(
    "fail_on", ["INSERT INTO state", "DELETE FROM state", "INTO events", "INTO checkpoint"]
)
def test_failure_inside_commit_rolls_everything_back(sqlite_store: Store, fail_on: str) -> None:
    # PostgreSQL's counterpart kills the server connection mid-commit (test_pg_store.py).
    store = sqlite_store
    seed(store)
    real = store._db
    store._db = FailingConnection(real, fail_on)  # type: ignore[assignment]
    try:
        with pytest.raises(sqlite3.OperationalError, match="injected"):
            store.commit(
                {("pos", "alice"): "A2", ("pos", "bob"): None, ("pos", "carol"): "C1"},
                Checkpoint(101, "0xbb"),
                [ev(101, 0)],
            )
        statements = store._db.statements  # type: ignore[attr-defined]
    finally:
        store._db = real
    assert statements[0] == "BEGIN" and statements[-1] == "ROLLBACK"
    assert store.checkpoint() == Checkpoint(100, "0xaa")
    assert all_rows(store) == {("pos", "alice"): "A1", ("pos", "bob"): "B1", ("cfg", "r0"): "R0"}
    assert store.events() == [ev(99, 0)]
    # The connection is usable afterwards (no transaction left open).
    store.commit({("pos", "alice"): "A3"}, Checkpoint(102, "0xcc"))
    assert store.rows([("pos", "alice")]) == {("pos", "alice"): "A3"}


def test_constraint_violation_rolls_back(store: Database) -> None:
    seed(store)
    # payload NOT NULL: the events insert fails after the row upserts/deletes ran.
    bad = EventRecord(101, 0, "0xtx", "aave.liquidation", None)  # type: ignore[arg-type]
    with pytest.raises(integrity_error(store)):
        store.commit({("pos", "alice"): "A2", ("pos", "bob"): None}, Checkpoint(101, "0xbb"), [bad])
    # hash NOT NULL: the checkpoint write fails last.
    with pytest.raises(integrity_error(store)):
        store.commit({("pos", "alice"): "A2"}, Checkpoint(101, None), [ev(101, 0)])  # type: ignore[arg-type]
    assert store.checkpoint() == Checkpoint(100, "0xaa")
    assert all_rows(store) == {("pos", "alice"): "A1", ("pos", "bob"): "B1", ("cfg", "r0"): "R0"}
    assert store.events() == [ev(99, 0)]


def test_exception_from_events_iterable_rolls_back(store: Database) -> None:
    seed(store)

    def events() -> Iterator[EventRecord]:
        yield ev(101, 0)
        raise RuntimeError("adapter blew up")

    with pytest.raises(RuntimeError, match="adapter blew up"):
        store.commit({("pos", "alice"): "A2"}, Checkpoint(101, "0xbb"), events())
    assert store.checkpoint() == Checkpoint(100, "0xaa")
    assert store.rows([("pos", "alice")]) == {("pos", "alice"): "A1"}
    assert store.events() == [ev(99, 0)]


def test_check_identity_binds_then_refuses_another_chain(store: Database) -> None:
    store.check_identity(IDENTITY)
    store.check_identity(dict(IDENTITY))  # same identity: fine, idempotent
    with pytest.raises(ConfigError) as e:
        store.check_identity({**IDENTITY, "chain_id": "8453"})
    assert e.value.key == "database"
    assert "chain_id" in e.value.problem
    assert "'1'" in e.value.problem and "'8453'" in e.value.problem
    assert store.path in str(e.value)
    with pytest.raises(ConfigError, match="market"):
        store.check_identity({**IDENTITY, "market": "aave-v3-base"})
    with pytest.raises(ConfigError, match="extra"):
        store.check_identity({**IDENTITY, "extra": "x"})
    # A refused identity does not rebind the database.
    store.check_identity(IDENTITY)


def test_check_identity_refuses_another_schema(store: Database) -> None:
    store.check_identity(IDENTITY)
    store._db.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    with pytest.raises(ConfigError, match="schema"):
        store.check_identity(IDENTITY)


def test_data_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = Store(path)
    s.check_identity(IDENTITY)
    seed(s)
    s.commit({("pos", "bob"): None}, Checkpoint(101, "0xbb"), [ev(101, 2, "aave.other")])
    with pytest.raises(sqlite3.IntegrityError):  # a failed commit must not persist either
        s.commit({("pos", "alice"): "A9"}, Checkpoint(102, None))  # type: ignore[arg-type]
    s.close()

    s2 = Store(str(path))
    try:
        assert s2.checkpoint() == Checkpoint(101, "0xbb")
        assert all_rows(s2) == {("pos", "alice"): "A1", ("cfg", "r0"): "R0"}
        assert s2.events() == [ev(99, 0), ev(101, 2, "aave.other")]
        s2.check_identity(IDENTITY)
        with pytest.raises(ConfigError, match="chain_id"):
            s2.check_identity({**IDENTITY, "chain_id": "10"})
    finally:
        s2.close()


def test_events_filter_by_kind_and_block_in_chain_order(store: Database) -> None:
    store.commit({}, Checkpoint(1, "0x1"), [ev(20, 5), ev(10, 7, "b"), ev(20, 1, "b")])
    store.commit({}, Checkpoint(2, "0x2"), [ev(5, 0), ev(30, 0, "b"), ev(20, 3)])
    assert store.events() == [
        ev(5, 0),
        ev(10, 7, "b"),
        ev(20, 1, "b"),
        ev(20, 3),
        ev(20, 5),
        ev(30, 0, "b"),
    ]
    assert store.events("aave.liquidation") == [ev(5, 0), ev(20, 3), ev(20, 5)]
    assert store.events("b", from_block=20) == [ev(20, 1, "b"), ev(30, 0, "b")]
    assert store.events(from_block=21) == [ev(30, 0, "b")]
    assert store.events("b", from_block=31) == []
    assert store.events("nope") == []
    # The same (block, log_index) again (a re-indexed block) replaces the record.
    store.commit({}, Checkpoint(3, "0x3"), [ev(20, 3, "aave.liquidation", '{"v": 2}')])
    assert store.events(from_block=20, kind="aave.liquidation") == [
        ev(20, 3, "aave.liquidation", '{"v": 2}'),
        ev(20, 5),
    ]
