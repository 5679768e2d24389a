"""Pages of list operations: a seek past the last key of the previous page, and the opaque token that carries it.

One pager, two token formats: IAM's `Marker` and EC2's `NextToken` differ only in how a bad token is refused."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
        raise AwsError("InvalidInput", "Invalid Marker.")
    return values


class Tokens(Protocol):
    """How a page's resume point is written into a token and read back."""

    def encode(self, values: Sequence[Any]) -> str: ...

    def decode(self, token: str, parts: int) -> Sequence[Any]: ...


class IamMarkers:
    """IAM's Marker: the key values as text; a bad one is InvalidInput "Invalid Marker."."""

    encode = staticmethod(encode_marker)
    decode = staticmethod(decode_marker)


IAM_MARKERS = IamMarkers()


# The page size of an EC2 Describe call that gives no MaxResults.
EC2_DEFAULT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Ec2Tokens:
    """EC2's NextToken over integer launch-order keys, bound to the list it came from (`kind`), so a token from
    another call is refused as EC2 refuses it."""

    kind: str

    def encode(self, values: Sequence[Any]) -> str:
        return encode_marker([self.kind, *values])

    def decode(self, token: str, parts: int) -> list[int]:
        try:
            found_kind, *values = decode_marker(token, parts + 1)
            if found_kind != self.kind:
                raise ValueError(found_kind)
            return [int(value) for value in values]
        except (AwsError, ValueError):
            # AWS: "Value (  ) for parameter NextToken is invalid. The token is invalid." (boto/boto3#2673).
            message = f"Value ( {token} ) for parameter NextToken is invalid. The token is invalid."
            raise AwsError("InvalidParameterValue", message) from None


def page(
    tx: Tx,
    query: Select[Any],
    keys: Sequence[ColumnElement[Any]],
    marker: str | None,
    limit: int,
    tokens: Tokens = IAM_MARKERS,
) -> tuple[list[Any], str | None]:
    """One page in key order, resuming after the marker: an index seek, so a page costs the same at any depth."""
    if marker:
        after = tokens.decode(marker, len(keys))
        query = query.where(tuple_(*keys) > tuple_(*after)) if len(keys) > 1 else query.where(keys[0] > after[0])
    rows = list(tx.execute(query.order_by(*keys).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, tokens.encode([getattr(last, key.name) for key in keys])
