"""The PostgreSQL store shared by several bot instances: namespaces per identity, one
writer per identity, read-only readers, atomic commits under a killed connection, and
ledger rows tagged by instance. Against a real server (tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.api import EventRecord
from bot.db.api import Checkpoint, DatabaseLocked, open_database
from bot.db.postgres import PostgresDatabase
from bot.db.sqlite import SqliteDatabase
from bot.errors import ConfigError
from bot.ledger import Ledger, Outcome
from bot.redact import mask_url

A = {"chain_id": "1", "protocol": "aave-v3", "market": "0x" + "aa" * 20}
B = {**A, "market": "0x" + "bb" * 20}


def ev(block: int, i: int = 0) -> EventRecord:
    return EventRecord(block, i, f"0x{block:x}", "aave.liquidation", "{}")


def writer(url: str, identity: dict[str, str]) -> PostgresDatabase:
    db = PostgresDatabase(url)
    db.check_identity(identity)
    return db


def test_open_database_picks_the_backend_by_url(pg_url: str, tmp_path: Path) -> None:
    pg = open_database(pg_url)
    lite = open_database(str(tmp_path / "x.db"))
    try:
        assert isinstance(pg, PostgresDatabase) and isinstance(lite, SqliteDatabase)
    finally:
        pg.close()
        lite.close()


def test_two_markets_share_one_database(pg_url: str) -> None:
    a, b = writer(pg_url, A), writer(pg_url, B)
    try:
        a.commit({("pos", "alice"): "A1", ("pos", "x"): "ax"}, Checkpoint(10, "0xa"), [ev(9)])
        b.commit({("pos", "bob"): "B1", ("pos", "x"): "bx"}, Checkpoint(20, "0xb"), [ev(19)])
        b.commit({("pos", "x"): None}, Checkpoint(21, "0xb2"))  # B's delete leaves A's row
        assert dict(a.load_rows()) == {("pos", "alice"): "A1", ("pos", "x"): "ax"}
        assert dict(b.load_rows()) == {("pos", "bob"): "B1"}
        assert a.checkpoint() == Checkpoint(10, "0xa")
        assert b.checkpoint() == Checkpoint(21, "0xb2")
        assert a.events() == [ev(9)] and b.events() == [ev(19)]
        assert a.rows([("pos", "x"), ("pos", "bob")]) == {("pos", "x"): "ax"}
    finally:
        a.close()
        b.close()


def test_second_writer_of_one_identity_is_refused_until_the_first_is_gone(pg_url: str) -> None:
    url = pg_url.replace("liqbot@", "liqbot:hunter2@")  # trust auth ignores the password
    first = writer(url, A)
    second = PostgresDatabase(url)
    try:
        with pytest.raises(DatabaseLocked) as e:
            second.check_identity(A)
        message = str(e.value)
        assert "another liqbot instance is writing" in message and A["market"] in message
        assert "hunter2" not in message and "***@127.0.0.1" in message
        second.check_identity(B)  # another market: fine, its own lock
        first.close()  # the lock goes with the writer's connection (or its crash)
        third = writer(url, A)
        third.close()
    finally:
        first.close()
        second.close()


def test_reader_sees_the_writers_committed_state_and_cannot_write(pg_url: str) -> None:
    w = writer(pg_url, A)
    try:
        empty = PostgresDatabase(pg_url, read_only=True)
        with pytest.raises(ConfigError, match="holds no index"):
            empty.check_identity(B)  # nothing was ever written for market B
        empty.close()
        w.commit({("pos", "alice"): "A1"}, Checkpoint(10, "0xa"), [ev(10)])
        r = PostgresDatabase(pg_url, read_only=True)
        try:
            r.check_identity(A)  # no lock taken: the writer holds it
            assert dict(r.load_rows()) == {("pos", "alice"): "A1"}
            assert r.checkpoint() == Checkpoint(10, "0xa") and r.events() == [ev(10)]
            w.commit({("pos", "alice"): "A2"}, Checkpoint(11, "0xb"))
            assert r.checkpoint() == Checkpoint(11, "0xb")  # each read sees the last commit
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                r.commit({("pos", "alice"): "R"}, Checkpoint(99, "0xr"))
        finally:
            r.close()
        assert w.rows([("pos", "alice")]) == {("pos", "alice"): "A2"}
    finally:
        w.close()


def test_killed_connection_mid_commit_leaves_the_previous_checkpoint(pg_url: str) -> None:
    w = writer(pg_url, A)
    w.commit({("pos", "alice"): "A1", ("pos", "bob"): "B1"}, Checkpoint(10, "0xa"), [ev(10)])
    pid = w._db.info.backend_pid

    def events_then_crash() -> Iterator[EventRecord]:
        # Runs inside the commit's transaction, after the row upserts and deletes were
        # sent: the server ends the writer's session as a crash or a failover would.
        yield ev(11)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        yield ev(12)

    with pytest.raises(psycopg.OperationalError):
        w.commit(
            {("pos", "alice"): "A2", ("pos", "bob"): None, ("pos", "carol"): "C1"},
            Checkpoint(11, "0xb"),
            events_then_crash(),
        )
    w.close()
    again = writer(pg_url, A)  # the dead session's writer lock is gone with it
    try:
        assert again.checkpoint() == Checkpoint(10, "0xa")
        assert dict(again.load_rows()) == {("pos", "alice"): "A1", ("pos", "bob"): "B1"}
        assert again.events() == [ev(10)]
    finally:
        again.close()


def test_ledgers_of_several_instances_coexist(pg_url: str) -> None:
    from test_ledger_keys import plan  # a realistic plan, shared with the ledger tests

    a, b = writer(pg_url, A), writer(pg_url, B)
    try:
        la, lb = Ledger(a, instance="0xSignerA"), Ledger(b, instance="0xSignerB")
        ra = la.record(plan(), 100, Outcome.SENT)
        rb = lb.record(plan(), 200, Outcome.DRY_RUN, reason="no liquidator")
        la.update(ra, Outcome.WON, tx_hash="0xt", realized_profit=2**200)
        lb.update(ra, Outcome.RACED)  # another market's row id: not B's to touch
        assert [(r.id, r.block, r.outcome, r.realized_profit) for r in la.rows()] == [
            (ra, 100, "won", 2**200)
        ]
        assert [(r.id, r.outcome, r.reason) for r in lb.rows()] == [
            (rb, "dry-run", "no liquidator")
        ]
        got = a._db.execute("SELECT instance, ident FROM ledger ORDER BY id").fetchall()
        assert [i for i, _ in got] == ["0xSignerA", "0xSignerB"]
        assert A["market"] in got[0][1] and B["market"] in got[1][1]
    finally:
        a.close()
        b.close()


def test_a_ledger_from_before_keep_plans_gains_the_column(pg_url: str) -> None:
    from test_ledger_keys import DAI, plan

    a = writer(pg_url, A)
    try:
        row = Ledger(a, instance="0xSignerA").record(plan(), 100, Outcome.SENT)
        a._db.execute("ALTER TABLE ledger DROP COLUMN profit_asset")  # an older liqbot's
        (old,) = Ledger(a, instance="0xSignerA").rows()
        assert (old.id, old.profit_asset) == (row, DAI)
    finally:
        a.close()


def test_connection_errors_mask_the_password() -> None:
    url = "postgresql://bot:s3cret@127.0.0.1:1/liqbot"
    assert mask_url(url) == "postgresql://***@127.0.0.1:1/liqbot"
    with pytest.raises(ConfigError) as e:
        PostgresDatabase(url)
    assert "s3cret" not in str(e.value) and "postgresql://***@127.0.0.1:1/liqbot" in str(e.value)


def test_sqlite_read_only_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with pytest.raises(ConfigError, match="does not exist"):
        SqliteDatabase(path, read_only=True)
    assert not path.exists()
    w = SqliteDatabase(path)
    w.check_identity(A)
    w.commit({("pos", "alice"): "A1"}, Checkpoint(10, "0xa"))
    w.close()
    r = SqliteDatabase(path, read_only=True)
    try:
        r.check_identity(A)
        assert r.checkpoint() == Checkpoint(10, "0xa")
        assert Ledger(r).rows() == []  # no ledger table yet, and none created
        with pytest.raises(Exception, match="readonly"):
            r.commit({}, Checkpoint(11, "0xb"))
    finally:
        r.close()
