"""Tx.lock_owner, the one mechanism that makes read-modify-writes of what a row owns race-free: nothing to do on
SQLite, SELECT … FOR UPDATE on PostgreSQL, where a second writer waits for the first and reads what it left."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update

from roleport.store import schema
from roleport.store.db import Store
from tests.conftest import postgres_database

roles = schema.roles


def _role(role_id: str) -> dict[str, Any]:
    return {
        "id": role_id,
        "account_id": "123456789012",
        "name": role_id,
        "name_key": role_id.lower(),
        "path": "/",
        "create_date": datetime(2026, 1, 1, tzinfo=UTC),
        "trust_policy": "{}",
        "description": "first",
        "max_session_duration": 3600,
        "permissions_boundary": None,
    }


def test_on_sqlite_the_row_read_in_the_write_transaction_is_already_current(store: Store) -> None:
    with store.transaction(write=True) as tx:
        tx.execute(roles.insert(), _role("AROASQLITE"))
        row = tx.execute(select(roles).where(roles.c.id == "AROASQLITE")).one()
        changes = tx.driver.total_changes
        assert tx.lock_owner(roles, row) is row
        assert tx.driver.total_changes == changes


@pytest.fixture
def postgres() -> Iterator[Store]:
    databases = postgres_database()
    try:
        running = Store(next(databases))
        running.create()
        yield running
        running.dispose()
    finally:
        databases.close()


def _waiting_for_a_lock(store: Store) -> bool:
    with store.engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return bool(conn.execute(text(query)).scalar())


def _second_writer(store: Store, row: Any, found: list[Any]) -> threading.Thread:
    def run() -> None:
        with store.transaction(write=True) as tx:
            found.append(tx.lock_owner(roles, row))

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 10  # a bound on polling, not a timing the test depends on
    while not _waiting_for_a_lock(store):
        assert time.monotonic() < deadline and thread.is_alive(), "the second writer never waited for the lock"
        time.sleep(0.01)
    return thread


@pytest.mark.postgresql
def test_on_postgresql_a_second_writer_waits_and_reads_what_the_first_left(postgres: Store) -> None:
    with postgres.transaction(write=True) as tx:
        tx.execute(roles.insert(), [_role("AROAKEPT"), _role("AROAGONE")])
    for role_id, change in (
        ("AROAKEPT", update(roles).where(roles.c.id == "AROAKEPT").values(description="second")),
        ("AROAGONE", delete(roles).where(roles.c.id == "AROAGONE")),
    ):
        found: list[Any] = []
        with postgres.transaction(write=True) as first:
            row = first.execute(select(roles).where(roles.c.id == role_id)).one()
            assert first.lock_owner(roles, row) == row
            second = _second_writer(postgres, row, found)
            assert not found  # still waiting while the first holds the row
            first.execute(change)
        second.join(timeout=10)
        [after] = found
        if role_id == "AROAKEPT":
            assert after is not None and after.description == "second"
        else:
            assert after is None
