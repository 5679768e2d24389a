"""Store transactions on SQLite: commit, roll back, and the one-statement reads that run without BEGIN/COMMIT."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, select

from roleport.store import schema
from roleport.store.db import Prepared, Store

_READ = Prepared(select(schema.counters.c.value).where(schema.counters.c.name == bindparam("name")))


def _value(store: Store) -> int:
    with store.transaction(write=False) as tx:
        return int(tx.execute(_READ, {"name": "iam"}).scalar_one())


def test_a_write_commits_when_the_block_ends_and_rolls_back_when_it_raises(store: Store) -> None:
    bump = schema.counters.update().where(schema.counters.c.name == "iam").values(value=schema.counters.c.value + 1)
    with store.transaction(write=True) as tx:
        tx.execute(bump)
    assert _value(store) == 1
    with pytest.raises(ValueError), store.transaction(write=True) as tx:
        tx.execute(bump)
        raise ValueError("changed my mind")
    assert _value(store) == 1


def test_a_one_statement_read_runs_outside_a_transaction(store: Store) -> None:
    with store.transaction(write=False, one_statement=True) as tx:
        assert tx.execute(_READ, {"name": "iam"}).scalar_one() == 0
        assert not tx.driver.in_transaction


def test_a_one_statement_read_refuses_a_second_statement(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction(write=False, one_statement=True) as tx:
        tx.execute(_READ, {"name": "iam"})
        tx.execute(_READ, {"name": "iam"})


def test_one_statement_does_not_apply_to_writes(store: Store) -> None:
    with store.transaction(write=True, one_statement=True) as tx:
        tx.execute(_READ, {"name": "iam"})
        assert tx.driver.in_transaction
        tx.execute(_READ, {"name": "iam"})
