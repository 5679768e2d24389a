"""ReadCache's bookkeeping, and the store's change marker it relies on (SQLite; PostgreSQL has none)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import insert

from roleport import read_cache
from roleport.read_cache import ReadCache
from roleport.store import schema
from roleport.store.db import Store
from tests.conftest import postgres_database


def test_an_answer_is_served_only_under_its_marker() -> None:
    cache = ReadCache()
    assert cache.get("k", 1) is None
    cache.put("k", 1, b"<a>", b"</a>")
    assert cache.get("k", 1) == (b"<a>", b"</a>")
    assert cache.get("k", 2) is None
    cache.put("k", 2, b"<b>", b"</b>")
    assert cache.get("k", 2) == (b"<b>", b"</b>") and len(cache) == 1


def test_large_answers_are_not_kept_and_the_budget_holds(monkeypatch: object) -> None:
    cache = ReadCache()
    cache.put("big", 1, b"x" * (read_cache._LARGEST_BODY + 1), b"")
    assert cache.get("big", 1) is None
    body = b"y" * (read_cache._LARGEST_BODY - read_cache._ENTRY)
    count = read_cache._BUDGET // read_cache._LARGEST_BODY
    for number in range(count * 3):
        cache.put(number, 1, body, b"")
        assert cache._size <= read_cache._BUDGET
    assert 0 < len(cache) <= count


def test_the_marker_moves_with_this_connection_and_with_others(store: Store, tmp_path: Path) -> None:
    first = store.change_marker()
    assert first is not None and store.change_marker() == first  # reading changes nothing
    with store.transaction(write=True) as tx:
        tx.execute(insert(schema.counters).values(name="marker-test", value=1))
    after_own = store.change_marker()
    assert after_own != first
    other = sqlite3.connect(store.url.removeprefix("sqlite:///"))
    other.execute("UPDATE counters SET value = 2 WHERE name = 'marker-test'")
    other.commit()
    other.close()
    assert store.change_marker() != after_own


def test_a_rolled_back_write_only_costs_a_refresh(store: Store) -> None:
    before = store.change_marker()
    try:
        with store.transaction(write=True) as tx:
            tx.execute(insert(schema.counters).values(name="undone", value=1))
            raise RuntimeError("undo")
    except RuntimeError:
        pass
    assert store.change_marker() != before  # a needless refresh, never a stale answer


def test_postgresql_gives_no_marker_so_nothing_is_kept() -> None:
    for url in postgres_database():  # dropped when the loop ends
        running = Store(url)
        assert running.change_marker() is None
        running.dispose()
