"""The IAM generation moves by itself when a transaction that changed IAM commits (store/generation.py), and what a
transaction derives after its own IAM change never reaches the memo other transactions share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select

from roleport.store import generation, journal, schema
from roleport.store.db import Prepared, Store, Tx

_READ = Prepared(select(schema.counters.c.value).where(schema.counters.c.name == bindparam("name")))
NOW = datetime(2026, 12, 8, tzinfo=UTC)


def _generation(store: Store) -> int:
    with store.transaction(write=False) as tx:
        return int(tx.execute(_READ, {"name": "iam"}).scalar_one())


def _role(name: str) -> dict[str, object]:
    return {
        "id": f"AROA{name.upper():0<17}",
        "account_id": "123456789012",
        "name": name,
        "name_key": name.lower(),
        "path": "/",
        "trust_policy": "{}",
        "create_date": NOW,
        "max_session_duration": 3600,
    }


def _insert_role(tx: Tx, name: str) -> None:
    tx.execute(schema.roles.insert().values(**_role(name)))


def test_every_table_is_either_iam_or_not() -> None:
    names = {table.name for table in schema.metadata.sorted_tables}
    assert generation.IAM_TABLES.isdisjoint(generation.OTHER_TABLES)
    assert names == generation.IAM_TABLES | generation.OTHER_TABLES


def test_a_committed_iam_change_moves_the_generation_once(store: Store) -> None:
    before = _generation(store)
    with store.transaction(write=True) as tx:
        _insert_role(tx, "one")
        _insert_role(tx, "two")  # a second change in the same transaction moves it no further
        assert tx.iam_changed
    assert _generation(store) == before + 1


def test_a_rolled_back_iam_change_leaves_the_generation(store: Store) -> None:
    before = _generation(store)
    with pytest.raises(ValueError), store.transaction(write=True) as tx:
        _insert_role(tx, "gone")
        raise ValueError("changed my mind")
    assert _generation(store) == before


def test_writes_outside_iam_and_reads_leave_the_generation(store: Store) -> None:
    before = _generation(store)
    with store.transaction(write=True) as tx:
        tx.execute(schema.server_secrets.insert().values(name="k", value="v"))
        assert not tx.iam_changed
    with store.transaction(write=False) as tx:
        tx.execute(_READ, {"name": "iam"})
    assert _generation(store) == before


def test_what_is_derived_after_an_iam_change_stays_in_the_transaction(store: Store) -> None:
    with store.transaction(write=True) as tx:
        assert tx.remember("before", lambda: "shared") == "shared"
        _insert_role(tx, "changed")
        # The shared memo's entries are keyed by a generation this transaction has moved past: not to be read now.
        assert tx.remember("before", lambda: "fresh") == "fresh"
        tx.remember("after", lambda: "private")
    assert store.memo.get("before") == "shared"
    assert "after" not in store.memo


def test_a_flush_of_pending_iam_changes_moves_the_generation(store: Store) -> None:
    with store.transaction(write=True, journaled=False) as tx:
        tx.execute(
            schema.change_journal.insert().values(
                stream=journal.IAM, table_name="roles", row_key="[]", before=None, visible_at=NOW
            )
        )
    before = _generation(store)
    with store.transaction(write=True) as tx:
        assert journal.flush(tx) == 1
    assert _generation(store) == before + 1
    with store.transaction(write=True) as tx:
        assert journal.flush(tx) == 0  # nothing was pending: nothing derived is stale
    assert _generation(store) == before + 1
