"""store/journal.py: writes to journaled tables keep before-images, and a View shows the state other services see,
on real SQLite and PostgreSQL stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from roleport.clock import ControlledClock
from roleport.store import journal, schema
from roleport.store.db import Store
from tests.conftest import postgres_database

START = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
ACCOUNT = "123456789012"


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Any
) -> Iterator[tuple[Store, ControlledClock, journal.Propagation]]:
    clock = ControlledClock(START)
    propagation = journal.Propagation(clock, delay=10)

    def made(url: str) -> Store:
        running = Store(url, journal=propagation.journal)
        running.create()
        return running

    if request.param == "sqlite":
        running = made(f"sqlite:///{tmp_path / 'unit.db'}")
        yield running, clock, propagation
        running.dispose()
        return
    for url in postgres_database():
        running = made(url)
        yield running, clock, propagation
        running.dispose()


def _role(role_id: str, name: str, trust: str = "{}") -> dict[str, Any]:
    return {
        "id": role_id,
        "account_id": ACCOUNT,
        "name": name,
        "name_key": name.lower(),
        "path": "/",
        "create_date": START,
        "trust_policy": trust,
        "description": None,
        "max_session_duration": 3600,
        "permissions_boundary": None,
    }


def _seen(store: Store, clock: ControlledClock, table: Any, **equals: Any) -> list[Any]:
    with store.transaction(write=False) as tx:
        return journal.View(tx, clock()).rows(table, **equals)


def _write(store: Store, statement: Any, params: Any = None) -> None:
    with store.transaction(write=True) as tx:
        tx.execute(statement, params)


def test_an_insert_is_seen_by_others_only_after_the_delay(setup: Any) -> None:
    store, clock, _ = setup
    _write(store, schema.roles.insert().values(**_role("AROA1", "Alpha")))
    with store.transaction(write=False) as tx:  # IAM's own reads see it at once
        assert tx.execute(select(schema.roles.c.name)).scalars() == ["Alpha"]
    assert _seen(store, clock, schema.roles, account_id=ACCOUNT, name_key="alpha") == []
    clock.advance(9.999)
    assert _seen(store, clock, schema.roles, id="AROA1") == []
    clock.advance(0.001)
    assert [row.name for row in _seen(store, clock, schema.roles, id="AROA1")] == ["Alpha"]


def test_updates_and_deletes_show_the_row_as_it_was(setup: Any) -> None:
    store, clock, propagation = setup
    propagation.update(delay=0)
    _write(store, schema.roles.insert().values(**_role("AROA2", "Beta", trust="old")))
    propagation.update(delay=10)
    _write(store, update(schema.roles).where(schema.roles.c.id == "AROA2").values(trust_policy="new"))
    seen = _seen(store, clock, schema.roles, id="AROA2")
    assert [(row.trust_policy, row.create_date) for row in seen] == [("old", START)]  # timestamps survive the trip
    clock.advance(5)
    _write(store, delete(schema.roles).where(schema.roles.c.id == "AROA2"))
    assert [row.trust_policy for row in _seen(store, clock, schema.roles, id="AROA2")] == ["old"]
    clock.advance(5)  # the update has arrived, the delete (made 5 s later) not yet
    assert [row.trust_policy for row in _seen(store, clock, schema.roles, id="AROA2")] == ["new"]
    clock.advance(5)
    assert _seen(store, clock, schema.roles, id="AROA2") == []


def test_a_delete_journals_the_rows_it_cascades_to(setup: Any) -> None:
    store, clock, propagation = setup
    propagation.update(delay=0)
    _write(store, schema.roles.insert().values(**_role("AROA3", "Gamma")))
    tag = {"owner_id": "AROA3", "key_lower": "team", "key": "Team", "value": "blue"}
    _write(store, schema.role_tags.insert(), [tag])
    propagation.update(delay=10)
    _write(store, delete(schema.roles).where(schema.roles.c.id == "AROA3"))
    assert [row.value for row in _seen(store, clock, schema.role_tags, owner_id="AROA3")] == ["blue"]
    clock.advance(10)
    assert _seen(store, clock, schema.role_tags, owner_id="AROA3") == []


def test_a_later_change_never_overtakes_an_earlier_one(setup: Any) -> None:
    store, clock, propagation = setup
    _write(store, schema.roles.insert().values(**_role("AROA4", "Delta", trust="first")))
    propagation.update(delay=0)  # lowered while the insert is pending: the next change still queues behind it
    _write(store, update(schema.roles).where(schema.roles.c.id == "AROA4").values(trust_policy="second"))
    assert _seen(store, clock, schema.roles, id="AROA4") == []
    clock.advance(10)
    assert [row.trust_policy for row in _seen(store, clock, schema.roles, id="AROA4")] == ["second"]


def test_jitter_spreads_visibility_within_its_bounds(setup: Any) -> None:
    store, clock, propagation = setup
    propagation.update(delay=10, jitter=5)
    offsets = []
    for index in range(12):
        made = clock()
        _write(store, schema.roles.insert().values(**_role(f"AROAJ{index}", f"Jitter{index}")))
        with store.transaction(write=False) as tx:
            newest = journal.pending(tx, clock())[-1]["visible_at"]
        offsets.append((datetime.fromisoformat(newest.replace("Z", "+00:00")) - made).total_seconds())
        clock.advance(5)  # a jitter apart, so no change has to wait behind the one before it
    assert all(10 <= offset <= 15.001 for offset in offsets), offsets
    assert len(set(offsets)) > 1


def test_changes_made_together_become_visible_in_order(setup: Any) -> None:
    store, clock, propagation = setup
    propagation.update(delay=10, jitter=5)
    for index in range(6):
        _write(store, schema.roles.insert().values(**_role(f"AROAO{index}", f"Order{index}")))
    with store.transaction(write=False) as tx:
        times = [entry["visible_at"] for entry in journal.pending(tx, clock())]
    assert times == sorted(times)
    clock.advance(15.001)
    assert len(_seen(store, clock, schema.roles, account_id=ACCOUNT)) == 6


def test_flush_makes_everything_visible(setup: Any) -> None:
    store, clock, propagation = setup
    _write(store, schema.roles.insert().values(**_role("AROA5", "Epsilon")))
    with store.transaction(write=True) as tx:
        assert journal.flush(tx) == 1
    propagation.update(delay=0)
    propagation.flushed()
    assert propagation.journal() is None  # nothing pending and no delay: writers stop journaling
    assert [row.name for row in _seen(store, clock, schema.roles, id="AROA5")] == ["Epsilon"]


def test_tables_only_iam_reads_are_not_journaled(setup: Any) -> None:
    store = setup[0]
    with store.transaction(write=True) as tx:  # counters are roleport's own bookkeeping
        tx.execute(schema.counters.insert(), {"name": "unit", "value": 1})
        tx.execute(update(schema.counters).where(schema.counters.c.name == "unit").values(value=2))
    with store.transaction(write=False) as tx:
        rows = tx.execute(select(schema.change_journal.c.table_name)).scalars()
    assert rows == []
    assert json.loads(journal._key(schema.roles, {"id": "AROA9"})) == ["AROA9"]
