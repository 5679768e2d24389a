"""The store: an engine from a URL (SQLite file in WAL mode, or PostgreSQL), one transaction per operation, paging."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, create_engine, event, select, tuple_
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from roleport.errors import AwsError
from roleport.store import schema


class Store:
    """Owns the engine; everything the server knows is in the database behind it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = make_url(url).get_backend_name()
        self.engine = _engine(url, self.kind)

    def create(self) -> None:
        """Create missing tables and record the schema version, so a later version can migrate it."""
        with self.engine.begin() as conn:
            schema.metadata.create_all(conn)
            found = conn.execute(
                select(schema.schema_info.c.value).where(schema.schema_info.c.key == "schema_version")
            ).scalar_one_or_none()
            if found is None:
                conn.execute(schema.schema_info.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
            elif int(found) > schema.SCHEMA_VERSION:
                raise RuntimeError(f"the database has schema version {found}, newer than this roleport knows")

    @contextmanager
    def transaction(self, write: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            # SQLite: a writer takes the write lock when it begins, so two writers never deadlock on an upgrade.
            conn.info["write"] = write
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def _engine(url: str, kind: str) -> Engine:
    if kind != "sqlite":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(url, pool_size=10, max_overflow=20)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Leave transactions to us (the driver's implicit BEGIN would defer the write lock); WAL lets readers run
        # beside a writer; busy_timeout makes concurrent writers from other threads or processes wait, not fail.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

    return engine


def insert_unique(conn: Connection, statement: Any, error: AwsError) -> None:
    """Insert, turning a unique or primary-key violation into the AWS error for it; the transaction then rolls back."""
    try:
        conn.execute(statement)
    except IntegrityError:
        raise error from None


_MARKER_HEAD = "rp1"


def encode_marker(values: Sequence[Any]) -> str:
    text = "\x1f".join([_MARKER_HEAD, *(str(v) for v in values)])
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_marker(marker: str, parts: int) -> list[str]:
    """The key values a marker resumes after; a marker this server did not make is refused, never guessed at."""
    try:
        head, *values = base64.urlsafe_b64decode(marker.encode()).decode().split("\x1f")
    except (ValueError, UnicodeDecodeError):
        head, values = "", []
    if head != _MARKER_HEAD or len(values) != parts:
        raise AwsError("InvalidInput", "Invalid Marker.", status=400)
    return values


def page(
    conn: Connection,
    query: Select[Any],
    keys: Sequence[ColumnElement[Any]],
    marker: str | None,
    limit: int,
) -> tuple[list[Row[Any]], str | None]:
    """One page in key order, resuming after the marker: an index seek, so a page costs the same at any depth."""
    if marker:
        after = decode_marker(marker, len(keys))
        query = query.where(tuple_(*keys) > tuple_(*after)) if len(keys) > 1 else query.where(keys[0] > after[0])
    rows = list(conn.execute(query.order_by(*keys).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]._mapping
    return rows, encode_marker([last[key] for key in keys])
