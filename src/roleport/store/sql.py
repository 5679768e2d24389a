"""What differs between SQLite and PostgreSQL, said once, so that handlers never read the dialect."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Boolean, Table, bindparam, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from roleport.store import schema
from roleport.store.db import Prepared, Tx

_SECRET = Prepared(select(schema.server_secrets.c.value).where(schema.server_secrets.c.name == bindparam("name")))


def insert_ignoring_conflicts(tx: Tx, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless one with the same key exists; whether it was inserted. A concurrent insert of the same
    key makes this one wait for it to commit, then do nothing, where a plain insert would fail on the key."""
    insert = postgresql.insert if tx.dialect.name == "postgresql" else sqlite.insert
    return tx.execute(insert(table).values(**values).on_conflict_do_nothing()).rowcount == 1


def server_secret(tx: Tx, name: str) -> bytes:
    """A random key of the server's, made by the first process to ask and then shared by every process on the
    database and across restarts."""
    insert_ignoring_conflicts(tx, schema.server_secrets, {"name": name, "value": secrets.token_hex(32)})
    return bytes.fromhex(tx.execute(_SECRET, {"name": name}).scalar_one())


class CaseSensitiveMatch(ColumnElement[bool]):
    """`column` matches a wildcard pattern, case-sensitively: GLOB on SQLite (its LIKE ignores case), LIKE with a
    backslash escape elsewhere. Built with the pattern in both spellings; the dialect picks one when compiled."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("glob", InternalTraversal.dp_string),
        ("like", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], glob: str, like: str) -> None:
        self.column = column
        self.glob = glob
        self.like = like


@compiles(CaseSensitiveMatch, "sqlite")
def _glob(element: CaseSensitiveMatch, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.op("GLOB")(literal(element.glob)), **kw))


@compiles(CaseSensitiveMatch)
def _like(element: CaseSensitiveMatch, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column.like(literal(element.like), escape="\\"), **kw))


def ordered_tags_in_sql(tx: Tx) -> bool:
    """Whether a statement should order tags itself. SQLite sorts text by code point, as AWS orders tag keys, and
    Python's sort of the rows is cheaper than SQLite's temporary B-tree; PostgreSQL's order depends on its collation,
    so it orders them itself."""
    return tx.dialect.name != "sqlite"
