"""Eventual consistency: a change to IAM reaches the rest of roleport after a delay, as it reaches the rest of AWS.

One mechanism serves every reader. While a delay is set, each write transaction carries a `Journal`: before an
INSERT, UPDATE or DELETE on a table that other services read, it keeps the before-image of every row the statement
touches (and of the rows a DELETE cascades to), keyed by the row's identity, with the instant the transaction's
changes become visible. Readers outside IAM (EC2's profile checks, the metadata service, authorization, STS) read
through a `View`: the current rows with the changes not yet visible undone, which is the state as it was before the
earliest pending change to each row. IAM's own handlers read the tables directly and stay read-after-write
consistent. EC2 associations are journaled the same way on a stream of their own, with their own delay, for the
metadata service.

Within a stream, changes become visible in the order they were made (a change never overtakes an earlier one), so
what a reader sees is always a prefix of the changes: a state IAM really was in.
"""

from __future__ import annotations

import collections
import functools
import json
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.sql import Delete, Insert, Update
from sqlalchemy.sql.elements import ColumnElement

from roleport.store import schema
from roleport.store.db import Prepared, Row, Tx

IAM, ASSOCIATION = "iam", "association"

# The tables whose state other services read, and the stream their changes travel on. What only IAM reads
# (profile tags, access keys, sessions) is left out: journaling it would cost writes and show nobody anything.
_STREAM_OF: dict[str, str] = {
    **{
        table.name: IAM
        for table in (
            schema.instance_profiles,
            schema.profile_roles,
            schema.roles,
            schema.role_tags,
            schema.role_inline_policies,
            schema.role_policy_attachments,
            schema.policies,
            schema.policy_versions,
            schema.users,
            schema.user_tags,
            schema.user_inline_policies,
            schema.user_policy_attachments,
        )
    },
    schema.ec2_associations.name: ASSOCIATION,
}

journal = schema.change_journal


class Propagation:
    """The delays, settable while the server runs (POST /_roleport/propagation): how long an IAM change takes to
    reach other services (plus a random 0..jitter), and how long an association change takes to reach IMDS."""

    def __init__(
        self, clock: Callable[[], datetime], delay: float = 0, jitter: float = 0, association_delay: float = 0
    ) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._random = random.Random()
        self.delay, self.jitter, self.association_delay = 0.0, 0.0, 0.0
        # Once any delay has been set, writers keep journaling until a flush: a change made after the delay is
        # lowered must still queue behind the changes already pending, or it would show before them.
        self._engaged = False
        self.update(delay=delay, jitter=jitter, association_delay=association_delay)

    def settings(self) -> dict[str, float]:
        return {
            "delay_seconds": self.delay,
            "jitter_seconds": self.jitter,
            "association_delay_seconds": self.association_delay,
        }

    def update(
        self, *, delay: float | None = None, jitter: float | None = None, association_delay: float | None = None
    ) -> None:
        values = {"delay": delay, "jitter": jitter, "association_delay": association_delay}
        for name, value in values.items():
            if value is not None and not (isinstance(value, int | float) and 0 <= value <= 86400):
                raise ValueError(f"{name} must be a number of seconds from 0 to 86400")
        with self._lock:
            for name, value in values.items():
                if value is not None:
                    setattr(self, name, float(value))
            self._engaged = self._engaged or any((self.delay, self.jitter, self.association_delay))

    def flushed(self) -> None:
        """Everything pending was made visible: with no delay set, writers need not journal any more."""
        with self._lock:
            self._engaged = any((self.delay, self.jitter, self.association_delay))

    def lag(self, stream: str) -> float:
        if stream == ASSOCIATION:
            return self.association_delay
        with self._lock:
            return self.delay + (self._random.uniform(0, self.jitter) if self.jitter else 0.0)

    def journal(self) -> Journal | None:
        """The journal for a new write transaction, or None while everything is immediately consistent."""
        return Journal(self, self.clock()) if self._engaged else None


# --- writing ---------------------------------------------------------------------------------------------------------


def _identity_columns(table: Table) -> tuple[str, ...]:
    """How a row is known across its changes: its id where it has one (associations are keyed by a sequence number
    the insert does not carry), otherwise its primary key."""
    if "id" in table.c:
        return ("id",)
    return tuple(column.key for column in table.primary_key.columns)


@functools.cache
def _cascades(table: Table) -> list[tuple[Table, str, str]]:
    """The journaled tables whose rows a DELETE on `table` removes too: (child, its column, the parent's column)."""
    found = []
    for child in schema.metadata.sorted_tables:
        for key in child.foreign_keys:
            if key.column.table is table and key.ondelete == "CASCADE":
                found.append((child, key.parent.key, key.column.key))
    return found


def _encode(table: Table, row: Row) -> str:
    values = {}
    for column, value in zip(table.columns, row, strict=True):
        values[column.key] = schema.to_micros(value) if isinstance(value, datetime) else value
    return json.dumps(values)


def _key(table: Table, values: Any) -> str:
    get = values.get if isinstance(values, dict) else lambda name: getattr(values, name)
    return json.dumps([get(name) for name in _identity_columns(table)])


_LATEST = Prepared(select(func.max(journal.c.visible_at)).where(journal.c.stream == bindparam("stream")))
_PURGE = Prepared(delete(journal).where(journal.c.visible_at <= bindparam("now")))
_RECORD = Prepared(
    journal.insert().values(
        {name: bindparam(name) for name in ("stream", "table_name", "row_key", "before", "visible_at")}
    )
)
# Taken by the first statement of every write transaction while journaling: concurrent writers (PostgreSQL) then
# journal one at a time, so the order of seq is the order of visibility; and because it is always taken first, it
# cannot join the row locks a transaction takes later (quota counters, the IAM counter) in a deadlock.
LOCK_COUNTER = "journal"
_SERIALIZE = Prepared(
    update(schema.counters).where(schema.counters.c.name == LOCK_COUNTER).values(value=schema.counters.c.value + 1)
)


class Journal:
    """The before-images of one write transaction's changes, all visible to other services from one instant."""

    def __init__(self, propagation: Propagation, now: datetime) -> None:
        self.propagation = propagation
        self.now = now
        self._visible: dict[str, datetime] = {}
        self._seen: set[tuple[str, str]] = set()  # a row's first before-image in the transaction is the one that counts
        self._locked = False

    def before(self, tx: Tx, statement: Any, params: dict[str, Any] | list[dict[str, Any]] | None) -> None:
        """Called by the transaction before it runs any statement."""
        if not self._locked:
            self._locked = True
            tx.execute(_SERIALIZE)
        core = statement.statement if isinstance(statement, Prepared) else statement
        if not isinstance(core, Insert | Update | Delete):
            return
        table = core.table
        if isinstance(core, Insert):
            if table.name in _STREAM_OF:
                rows = params if isinstance(params, list) else [params or {}]
                self._inserted(tx, statement, table, rows)
            return
        where = core.whereclause
        self._touched(tx, table, where, params if isinstance(params, dict) else None)
        if isinstance(core, Delete):
            self._cascaded(tx, table, where, params if isinstance(params, dict) else None)

    def _inserted(self, tx: Tx, statement: Any, table: Table, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            values = tx.bound_values(statement, row)
            missing = [name for name in _identity_columns(table) if name not in values]
            if missing:
                raise RuntimeError(f"an insert into {table.name} must bind {missing} by column name to be journaled")
            self._record(tx, table, _key(table, values), None)

    def _touched(self, tx: Tx, table: Table, where: ColumnElement[bool] | None, params: dict[str, Any] | None) -> None:
        if table.name not in _STREAM_OF:
            return
        query = select(table) if where is None else select(table).where(where)
        for row in tx.execute(query, params):
            self._record(tx, table, _key(table, row), _encode(table, row))

    def _cascaded(self, tx: Tx, table: Table, where: ColumnElement[bool] | None, params: dict[str, Any] | None) -> None:
        for child, column, parent_column in _cascades(table):
            parents = select(table.c[parent_column])
            parents = parents if where is None else parents.where(where)
            self._touched(tx, child, child.c[column].in_(parents.scalar_subquery()), params)
            self._cascaded(tx, child, child.c[column].in_(parents.scalar_subquery()), params)

    def _record(self, tx: Tx, table: Table, key: str, before: str | None) -> None:
        if (table.name, key) in self._seen:
            return
        self._seen.add((table.name, key))
        stream = _STREAM_OF[table.name]
        values = {"stream": stream, "table_name": table.name, "row_key": key, "before": before}
        tx.execute(_RECORD, {**values, "visible_at": self._visible_at(tx, stream)})

    def _visible_at(self, tx: Tx, stream: str) -> datetime:
        if stream not in self._visible:
            tx.execute(_PURGE, {"now": self.now})  # what is visible already needs no undoing
            latest = tx.execute(_LATEST, {"stream": stream}).scalar()
            visible = self.now + timedelta(seconds=self.propagation.lag(stream))
            self._visible[stream] = max(visible, latest) if latest is not None else visible
        return self._visible[stream]


# --- reading ---------------------------------------------------------------------------------------------------------

_PENDING_OF_TABLE = Prepared(
    select(journal.c.row_key, journal.c.before)
    .where(journal.c.table_name == bindparam("table"), journal.c.seq >= bindparam("first"))
    .order_by(journal.c.seq)
)


def first_pending_sql(stream: str, now: Any) -> Any:
    """The seq of the stream's earliest change not yet visible, as a scalar subquery (None when all are visible)."""
    return (
        select(func.min(journal.c.seq)).where(journal.c.stream == stream, journal.c.visible_at > now).scalar_subquery()
    )


_FIRST_PENDING = {
    stream: Prepared(select(first_pending_sql(stream, bindparam("now")))) for stream in (IAM, ASSOCIATION)
}


_LOOKUPS: dict[tuple[str, tuple[str, ...]], Prepared] = {}


def _lookup(table: Table, names: tuple[str, ...]) -> Prepared:
    found = _LOOKUPS.get((table.name, names))
    if found is None:
        found = Prepared(select(table).where(*(table.c[name] == bindparam(name) for name in names)))
        _LOOKUPS[(table.name, names)] = found
    return found


class View:
    """The journaled tables as other services see them at `now`: read with `rows` and `one`, equality lookups."""

    def __init__(self, tx: Tx, now: datetime, first_pending: dict[str, int | None] | None = None) -> None:
        self.tx = tx
        self.now = now
        self._first: dict[str, int | None] = dict(first_pending or {})
        self._undo: dict[str, dict[str, Row | None]] = {}

    def first_pending(self, stream: str) -> int | None:
        """The seq of the earliest change of the stream others cannot see yet; None when they see everything."""
        if stream not in self._first:
            self._first[stream] = self.tx.execute(_FIRST_PENDING[stream], {"now": self.now}).scalar()
        return self._first[stream]

    def rows(self, table: Table, **equals: Any) -> list[Row]:
        names = tuple(sorted(equals))
        current = self.tx.execute(_lookup(table, names), equals).rows
        first = self.first_pending(_STREAM_OF[table.name])
        if first is None:
            return current
        undo = self._pending(table, first)
        seen = [row for row in current if _key(table, row) not in undo]
        earlier = [
            row
            for row in undo.values()
            if row is not None and all(getattr(row, name) == value for name, value in equals.items())
        ]
        return seen + earlier

    def one(self, table: Table, **equals: Any) -> Row | None:
        found = self.rows(table, **equals)
        return found[0] if found else None

    def _pending(self, table: Table, first: int) -> dict[str, Row | None]:
        """Each row with a change pending, as it was before the earliest such change (None: it did not exist)."""
        if table.name not in self._undo:
            undo: dict[str, Row | None] = {}
            for entry in self.tx.execute(_PENDING_OF_TABLE, {"table": table.name, "first": first}):
                if entry.row_key not in undo:
                    undo[entry.row_key] = _decode(table, entry.before) if entry.before is not None else None
            self._undo[table.name] = undo
        return self._undo[table.name]


_ROW_TYPES: dict[str, Any] = {}


def _decode(table: Table, text: str) -> Row:
    row_type = _ROW_TYPES.get(table.name)
    if row_type is None:
        row_type = _ROW_TYPES[table.name] = collections.namedtuple("Row", [c.key for c in table.columns])  # type: ignore[misc]
    values = json.loads(text)
    for column in table.columns:
        if isinstance(column.type, schema.Timestamp) and values.get(column.key) is not None:
            values[column.key] = schema.from_micros(values[column.key])
    return row_type(**values)


# --- the admin endpoints ---------------------------------------------------------------------------------------------


def flush(tx: Tx) -> int:
    """Make every pending change visible now; the number of row changes that were pending. What authorization
    derived from the lagging view of IAM is stale from then on."""
    flushed = tx.execute(delete(journal)).rowcount
    if flushed:
        tx.note_iam_changed()
    return flushed


def pending(tx: Tx, now: datetime) -> list[dict[str, Any]]:
    """What other services cannot see yet, per stream and instant it becomes visible."""
    query = (
        select(journal.c.stream, journal.c.visible_at, func.count().label("changes"))
        .where(journal.c.visible_at > now)
        .group_by(journal.c.stream, journal.c.visible_at)
        .order_by(journal.c.visible_at)
    )
    return [
        {"stream": row.stream, "visible_at": _iso(row.visible_at), "row_changes": row.changes}
        for row in tx.execute(query, {})
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
