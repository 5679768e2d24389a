"""ReadCache's bookkeeping, and the store's change marker it relies on (SQLite; PostgreSQL has none)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from roleport import read_cache
from roleport.read_cache import ReadCache
from roleport.store import schema, wal_index
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
    body = b"y" * (read_cache._LARGEST_BODY - read_cache._ENTRY - read_cache.key_size(0))
    count = read_cache._BUDGET // read_cache._LARGEST_BODY
    for number in range(count * 3):
        cache.put(number, 1, body, b"")
        assert cache._size <= read_cache._BUDGET
    assert 0 < len(cache) <= count


def test_the_accounted_size_includes_the_keys() -> None:
    cache = ReadCache()
    # The key the pipeline builds: the service and the form's pairs, here with a 100 KB parameter nobody reads.
    key = ("iam", ("Action", "GetRole"), ("RoleName", "r"), ("Unknown", "x" * 100_000))
    cache.put(key, 1, b"<a>", b"</a>")
    assert cache.get(key, 1) == (b"<a>", b"</a>")
    assert cache._size >= 100_000 + len(b"<a></a>")
    cache.put(key, 2, b"<b>", b"</b>")  # replacing an answer leaves one entry's worth
    assert 100_000 <= cache._size < 2 * 100_000


def test_the_budget_holds_when_the_keys_are_large() -> None:
    cache = ReadCache()
    for number in range(1_500):
        cache.put(("iam", ("Action", "GetRole"), ("Unknown", f"{number:06d}" + "x" * 100_000)), 1, b"<a>", b"</a>")
        assert cache._size <= read_cache._BUDGET
    assert 0 < len(cache) <= read_cache._BUDGET // 100_000
    assert cache.get(("iam", ("Unknown", "y" * (read_cache._LARGEST_BODY + 1))), 1) is None
    cache.put(("iam", ("Unknown", "y" * read_cache._LARGEST_BODY)), 1, b"", b"")  # too large a key alone
    assert cache.get(("iam", ("Unknown", "y" * read_cache._LARGEST_BODY)), 1) is None


@pytest.fixture(params=["wal-index", "data-version"])
def marked(request: pytest.FixtureRequest, store: Store) -> Store:
    """The store with each way of taking the marker: the WAL-index header, and the fallback for a store without one."""
    if request.param == "data-version":
        store._wal_index = -1
    else:
        store.change_marker()
        assert store._wal_index is not None and store._wal_index >= 0
    return store


def test_the_marker_moves_with_this_connection_and_with_others(marked: Store) -> None:
    first = marked.change_marker()
    assert first is not None and marked.change_marker() == first  # reading changes nothing
    with marked.transaction(write=True) as tx:
        tx.execute(insert(schema.counters).values(name="marker-test", value=1))
    after_own = marked.change_marker()
    assert after_own != first
    with marked.transaction(write=True) as tx:  # the same statement again: only the value differs
        tx.execute(update(schema.counters).where(schema.counters.c.name == "marker-test").values(value=3))
    again = marked.change_marker()
    assert again != after_own
    other = sqlite3.connect(marked.url.removeprefix("sqlite:///"))
    other.execute("UPDATE counters SET value = 2 WHERE name = 'marker-test'")
    other.commit()
    assert marked.change_marker() != again
    before_checkpoint = marked.change_marker()
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit starts the WAL over from its first frame
    other.execute("UPDATE counters SET value = 2 WHERE name = 'marker-test'")
    other.commit()
    other.close()
    assert marked.change_marker() != before_checkpoint


def test_a_rolled_back_write_leaves_the_data_as_it_was(marked: Store) -> None:
    try:
        with marked.transaction(write=True) as tx:
            tx.execute(insert(schema.counters).values(name="undone", value=1))
            raise RuntimeError("undo")
    except RuntimeError:
        pass
    with marked.transaction(write=False) as tx:
        gone = tx.execute(select(schema.counters).where(schema.counters.c.name == "undone")).first() is None
    assert gone
    # The marker may stay (nothing changed) or move (a needless refresh), but it still follows the next write.
    after = marked.change_marker()
    with marked.transaction(write=True) as tx:
        tx.execute(insert(schema.counters).values(name="done", value=1))
    assert marked.change_marker() != after


def test_postgresql_gives_no_marker_so_nothing_is_kept() -> None:
    for url in postgres_database():  # dropped when the loop ends
        running = Store(url)
        assert running.change_marker() is None
        running.dispose()


def test_the_wal_index_is_found_whatever_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    mine = Store("sqlite:///unit.db")
    mine.create()
    monkeypatch.chdir(tmp_path / "there")  # another unit.db, busy too, lives here
    decoy = Store("sqlite:///unit.db")
    decoy.create()
    try:
        before = mine.change_marker()
        assert mine._wal_index is not None and mine._wal_index >= 0
        with mine.transaction(write=True) as tx:
            tx.execute(insert(schema.counters).values(name="moved", value=1))
        assert mine.change_marker() != before
    finally:
        mine.dispose()
        decoy.dispose()


def test_stores_on_one_file_share_the_descriptor_until_the_last_is_done(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = Store(url), Store(url)
    first.create()
    first.change_marker(), second.change_marker()
    shared = first._wal_index
    assert shared is not None and shared >= 0 and second._wal_index == shared
    first.dispose()  # closing the descriptor now would drop the locks SQLite holds for `second`
    os.fstat(shared)
    before = second.change_marker()
    with second.transaction(write=True) as tx:
        tx.execute(insert(schema.counters).values(name="after-dispose", value=1))
    assert second.change_marker() != before
    second.dispose()
    with pytest.raises(OSError):
        os.fstat(shared)


def test_a_database_not_in_wal_mode_has_no_wal_index(tmp_path: Path) -> None:
    path = tmp_path / "rollback.db"
    driver = sqlite3.connect(path)
    driver.execute("PRAGMA journal_mode=DELETE")
    (tmp_path / "rollback.db-shm").write_bytes(b"\0" * 32768)  # left over from an earlier life in WAL mode
    try:
        assert wal_index.acquire(driver) is None
    finally:
        driver.close()
