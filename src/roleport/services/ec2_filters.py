"""DescribeX filter values as EC2 reads them: `*` and `?` wildcards with backslash escapes, matched
case-sensitively in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, cast, false, or_
from sqlalchemy.sql.elements import ColumnElement

from roleport.errors import AwsError
from roleport.store import sql


def parse_wildcards(value: str) -> tuple[bool, list[tuple[str, str]]]:
    """An EC2 filter value as parts: ("*", ""), ("?", "") and ("lit", text). `*` matches any run, `?` one
    character, and a backslash makes the next character literal (EC2 API reference, Filter / DescribeInstances)."""
    parts: list[tuple[str, str]] = []
    wild = False
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            parts.append(("lit", value[index + 1]))
            index += 2
            continue
        if char in "*?":
            wild = True
            parts.append((char, ""))
        else:
            parts.append(("lit", char))
        index += 1
    return wild, parts


def _like_pattern(parts: list[tuple[str, str]]) -> str:
    out = []
    for kind, text in parts:
        if kind == "*":
            out.append("%")
        elif kind == "?":
            out.append("_")
        else:
            out.append("\\" + text if text in "%_\\" else text)
    return "".join(out)


def _glob_pattern(parts: list[tuple[str, str]]) -> str:
    out = []
    for kind, text in parts:
        if kind in "*?":
            out.append(kind)
        else:
            out.append(f"[{text}]" if text in "*?[" else text)
    return "".join(out)


def matches(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """Any of the filter values matches the column, case-sensitively as EC2 filters do. Plain values compare with
    `IN`; wildcards match case-sensitively on every store (store/sql.py)."""
    exact: list[str] = []
    patterns: list[ColumnElement[bool]] = []
    for value in values:
        wild, parts = parse_wildcards(value)
        if not wild:
            exact.append("".join(text for _, text in parts))
        else:
            patterns.append(sql.CaseSensitiveMatch(column, _glob_pattern(parts), _like_pattern(parts)))
    clauses = ([column.in_(exact)] if exact else []) + patterns
    return or_(*clauses) if clauses else false()


def as_text(column: Any) -> Any:
    return cast(column, String)


def invalid_filter(name: str) -> AwsError:
    # AWS: "The filter 'public-ip' is invalid" (boto/boto3#1299, DescribeInstances).
    return AwsError("InvalidParameterValue", f"The filter '{name}' is invalid", status=400)
