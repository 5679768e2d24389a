"""Statements compiled once: SQL text per dialect, the order of its binds, and generated readers of its rows."""

from __future__ import annotations

import collections
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Select

from roleport.store import schema

Converter = Callable[[Any], Any]
Row = Any  # a named tuple of the selected columns, made per statement


class Prepared:
    """A statement with named bind parameters, compiled once per dialect and reused by every call."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self.compiled: dict[str, Compiled] = {}


class Compiled:
    """A statement's SQL for one dialect, the order of its binds, and how to read its rows."""

    __slots__ = ("compiled", "converters", "defaults", "make_row", "names", "row_type", "sql")

    def __init__(self, sql: str, names: tuple[str, ...] | None, compiled: Any, converters: Any) -> None:
        self.sql = sql
        self.names = names  # bind names in order, for positional paramstyles
        self.compiled = compiled  # SQLAlchemy's compiled form, which knows the statement's own literal values
        self.converters: tuple[Converter | None, ...] | None = converters
        self.defaults: dict[str, Any] = dict(compiled.params) if compiled is not None else {}
        self.row_type: type | None = None
        self.make_row: Callable[[Any], Any] | None = None  # driver row → Row, made with row_type


PER_CALL = Compiled("", None, None, None)


def compile_statement(
    statement: ClauseElement,
    dialect: Dialect,
    column_keys: list[str] | None,
    *,
    cache_key: Any = None,
    render_postcompile: bool = False,
) -> Compiled:
    compile_kwargs = {"render_postcompile": True} if render_postcompile else {}
    compiled = statement.compile(
        dialect=dialect, column_keys=column_keys, cache_key=cache_key, compile_kwargs=compile_kwargs
    )
    names = tuple(compiled.positiontup or ()) if dialect.positional else None
    converters = None
    if isinstance(statement, Select):
        converters = tuple(_converter(column.type) for column in statement.selected_columns)
    return Compiled(compiled.string, names, compiled, converters)


_EPOCH = schema.from_micros(0)


def _from_micros(value: int) -> datetime:
    # schema.from_micros without the keyword argument, which makes the timedelta twice as costly.
    return _EPOCH + timedelta(0, 0, value)


def _converter(kind: Any) -> Converter | None:
    if isinstance(kind, schema.Timestamp):
        return _from_micros
    if isinstance(kind, Boolean):
        return bool
    return None


def bind(values: dict[str, Any], names: tuple[str, ...] | None) -> Any:
    for key, value in values.items():
        if isinstance(value, datetime):
            values[key] = schema.to_micros(value)
    return [values[name] for name in names] if names is not None else values


def read_rows(cursor: Any, compiled: Compiled) -> list[Any]:
    make_row = compiled.make_row
    if make_row is None:
        names = tuple(column[0] for column in cursor.description)
        row_type = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
        make_row = _row_maker(row_type, compiled.converters)
        if compiled.sql:
            # The same statement always yields the same columns.
            compiled.row_type, compiled.make_row = row_type, make_row
    return [make_row(raw) for raw in cursor.fetchall()]


def _row_maker(row_type: Any, converters: tuple[Converter | None, ...] | None) -> Callable[[Any], Any]:
    """A function from a driver row to a Row that converts the columns that need it (None stays None). Generated
    once per statement: a row is made for every result of every call, and a loop over the converters per row cost
    as much as the query."""
    if not converters or not any(converters):
        return row_type._make  # type: ignore[no-any-return]
    names = {"Row": row_type}
    parts = []
    for index, convert in enumerate(converters):
        if convert is None:
            parts.append(f"raw[{index}]")
        else:
            names[f"convert{index}"] = convert
            parts.append(f"(None if raw[{index}] is None else convert{index}(raw[{index}]))")
    if len(row_type._fields) > len(converters):
        parts.append(f"*raw[{len(converters)}:]")  # columns without a converter pass through (none in practice)
    return eval(f"lambda raw: Row({', '.join(parts)})", names)  # type: ignore[no-any-return]
