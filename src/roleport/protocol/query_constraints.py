"""IAM/STS (query protocol) input constraints: one checker per input shape, reporting every violation in the
words of AWS's ValidationError."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from botocore.model import ListShape, MapShape, Shape, StructureShape

from roleport.protocol.java_regex import compile_java_pattern

# A query checker appends one AWS-worded message per violated constraint.
QueryCheck = Callable[[Any, str, list[str]], None]

_NOT_NULL: Final = "Member must not be null"
_NUMERIC: Final = frozenset({"integer", "long", "float", "double", "bigInteger", "bigDecimal"})


@lru_cache(maxsize=32768)
def query_check(shape: Shape) -> QueryCheck | None:
    # Built once per shape object; None means nothing under this shape can fail. The IAM, STS and EC2 input
    # shapes are not recursive, so building children eagerly terminates.
    if isinstance(shape, StructureShape):
        return _query_structure(shape)
    if isinstance(shape, ListShape):
        return _query_list(shape)
    if isinstance(shape, MapShape):
        return _query_map(shape)
    if shape.type_name == "string":
        return _query_string(shape)
    if shape.type_name in _NUMERIC:
        return _query_number(shape)
    return None


def _query_structure(shape: StructureShape) -> QueryCheck | None:
    required = set(shape.required_members)
    plan = tuple(
        (name, name[0].lower() + name[1:], name in required, query_check(member))
        for name, member in shape.members.items()
        if name in required or query_check(member) is not None
    )
    if not plan:
        return None

    def check_structure(value: Any, path: str, errors: list[str]) -> None:
        prefix = f"{path}." if path else ""
        for name, segment, required, check in plan:
            item = value.get(name)
            if item is None:
                if required:
                    errors.append(f"Value null at '{prefix}{segment}' failed to satisfy constraint: {_NOT_NULL}")
            elif check is not None:
                check(item, prefix + segment, errors)

    return check_structure


def _query_list(shape: ListShape) -> QueryCheck | None:
    size = _size_rule(shape, "length")
    element = query_check(shape.member)
    if size is None and element is None:
        return None

    def check_list(value: Any, path: str, errors: list[str]) -> None:
        if size is not None:
            size(value, len(value), path, errors)
        if element is not None:
            # AWS names list elements like the query wire: tags.1.member.key
            for index, item in enumerate(value, 1):
                if item is not None:
                    element(item, f"{path}.{index}.member", errors)

    return check_list


def _query_map(shape: MapShape) -> QueryCheck | None:
    size = _size_rule(shape, "length")
    key_check = query_check(shape.key)
    value_check = query_check(shape.value)
    if size is None and key_check is None and value_check is None:
        return None
    # AWS reports bad keys (or scalar values) once per map, listing all the part's constraints (SWO-GS/auto-tag#77).
    key_rule = f"Map keys must satisfy constraint: [{_all_rules(shape.key)}]"
    value_rule = f"Map value must satisfy constraint: [{_all_rules(shape.value)}]"
    nested = not _is_scalar(shape.value)

    def check_map(value: Any, path: str, errors: list[str]) -> None:
        if size is not None:
            size(value, len(value), path, errors)
        bad_keys: list[str] = []
        bad_values: list[str] = []
        for key, item in value.items():
            if key_check is not None:
                key_check(key, path, bad_keys)
            if value_check is not None:
                value_check(item, f"{path}.{key}", errors if nested else bad_values)
        if bad_keys:
            errors.append(_failure(value, path, key_rule, sensitive=False))
        if bad_values:
            errors.append(_failure(value, path, value_rule, sensitive=False))

    return check_map


def _query_string(shape: Shape) -> QueryCheck | None:
    meta = shape.metadata
    enum: list[str] | None = meta.get("enum")
    pattern: str | None = meta.get("pattern")
    length = _size_rule(shape, "length")
    if not enum and pattern is None and length is None:
        return None
    allowed = frozenset(enum) if enum else None
    enum_rule = f"Member must satisfy enum value set: [{', '.join(enum)}]" if enum else ""
    matches = compile_java_pattern(pattern) if pattern is not None else None
    pattern_rule = f"Member must satisfy regular expression pattern: {pattern}"
    sensitive = bool(meta.get("sensitive"))

    def check_string(value: Any, path: str, errors: list[str]) -> None:
        if allowed is not None and value not in allowed:
            errors.append(_failure(value, path, enum_rule, sensitive))
        # AWS (STS AssumeRole, empty RoleArn) reports the pattern before the length.
        if matches is not None and matches(value) is None:
            errors.append(_failure(value, path, pattern_rule, sensitive))
        if length is not None:
            length(value, len(value), path, errors)

    return check_string


def _query_number(shape: Shape) -> QueryCheck | None:
    bounds = _size_rule(shape, "value")
    if bounds is None:
        return None

    def check_number(value: Any, path: str, errors: list[str]) -> None:
        bounds(value, value, path, errors)

    return check_number


SizeRule = Callable[[Any, Any, str, list[str]], None]


def _size_rule(shape: Shape, noun: str) -> SizeRule | None:
    """min/max on a length ("length": strings, lists, maps) or a number ("value"), in AWS's words."""
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    if low is None and high is None:
        return None
    sensitive = bool(shape.metadata.get("sensitive"))
    too_small = f"Member must have {noun} greater than or equal to {_java_number(low)}"
    too_big = f"Member must have {noun} less than or equal to {_java_number(high)}"

    def check_size(value: Any, size: Any, path: str, errors: list[str]) -> None:
        if low is not None and size < low:
            errors.append(_failure(value, path, too_small, sensitive))
        if high is not None and size > high:
            errors.append(_failure(value, path, too_big, sensitive))

    return check_size


def _all_rules(shape: Shape) -> str:
    meta = shape.metadata
    noun = "length" if shape.type_name == "string" else "value"
    texts = [
        f"Member must have {noun} less than or equal to {_java_number(meta['max'])}" if "max" in meta else "",
        f"Member must have {noun} greater than or equal to {_java_number(meta['min'])}" if "min" in meta else "",
        f"Member must satisfy regular expression pattern: {meta['pattern']}" if "pattern" in meta else "",
        f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]" if meta.get("enum") else "",
    ]
    return ", ".join(text for text in texts if text)


def _is_scalar(shape: Shape) -> bool:
    return shape.type_name not in ("structure", "list", "map")


def _failure(value: Any, path: str, rule: str, sensitive: bool) -> str:
    # AWS never echoes a sensitive member's value ("Value at 'password' ...").
    shown = "" if sensitive else f" '{_java_text(value)}'"
    return f"Value{shown} at '{path}' failed to satisfy constraint: {rule}"


def _java_text(value: Any) -> str:
    """The value as AWS's Java service prints it: lists as [a, b], maps and structures as {K=v}."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _java_number(value)
    if isinstance(value, list):
        return "[" + ", ".join(_java_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_java_text(item)}" for key, item in value.items()) + "}"
    return str(value)


def _java_number(number: Any) -> str:
    if isinstance(number, float) and number.is_integer():
        return f"{number:.1f}"
    return str(number)
