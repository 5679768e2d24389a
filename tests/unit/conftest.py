"""Fixtures shared by the unit suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from roleport.store.db import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite store in the test's own folder (suites that need PostgreSQL too define their own)."""
    running = Store(f"sqlite:///{tmp_path / 'unit.db'}")
    running.create()
    yield running
    running.dispose()
