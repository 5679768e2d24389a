"""Pages of list operations: a seek past the last key of the previous page, and the opaque marker that carries it."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from sqlalchemy import tuple_
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from roleport.errors import AwsError
from roleport.store.db import Tx

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
    tx: Tx,
    query: Select[Any],
    keys: Sequence[ColumnElement[Any]],
    marker: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """One page in key order, resuming after the marker: an index seek, so a page costs the same at any depth."""
    if marker:
        after = decode_marker(marker, len(keys))
        query = query.where(tuple_(*keys) > tuple_(*after)) if len(keys) > 1 else query.where(keys[0] > after[0])
    rows = list(tx.execute(query.order_by(*keys).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_marker([getattr(last, key.name) for key in keys])
