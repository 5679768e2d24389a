"""Server-side input validation: the model's constraints, failing the way IAM/STS (ValidationError) and EC2 do."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, overload

import regex
from botocore.model import ListShape, MapShape, Shape, StructureShape

from roleport.errors import AwsError, validation_error

# A query checker appends one AWS-worded message per violated constraint; an EC2 checker raises the first.
QueryCheck = Callable[[Any, str, list[str]], None]
Ec2Check = Callable[[Any, str], None]
Matcher = Callable[[str], object]

# Java's \w, \d and \s are ASCII-only, while the regex module's are Unicode (and its ASCII flag would also
# shrink \p{L} to ASCII), so the shorthands are spelled out instead.
_JAVA_SHORTHANDS: Final = {"w": "a-zA-Z0-9_", "d": "0-9", "s": " \\t\\n\\x0B\\f\\r"}
# On ASCII text these Unicode properties are exactly these sets.
_ASCII_PROPERTIES: Final = {"L": "a-zA-Z", "N": "0-9", "Z": " "}
# Java's "." stops at every line terminator, not only \n.
_JAVA_DOT: Final = "[^\\n\\r\\x85\\u2028\\u2029]"
_NOT_NULL: Final = "Member must not be null"
_NUMERIC: Final = frozenset({"integer", "long", "float", "double", "bigInteger", "bigDecimal"})

# EC2 words a bad enum value per parameter. AWS (hashicorp/terraform-provider-aws#25547): "A value of '' is not
# valid for HttpEndpoint. Specify either 'enabled' or 'disabled' and try again."; its sibling options follow suit.
_EC2_EITHER: Final = {
    "HttpTokensState": "'optional' or 'required'",
    "InstanceMetadataEndpointState": "'enabled' or 'disabled'",
    "InstanceMetadataProtocolState": "'enabled' or 'disabled'",
    "InstanceMetadataTagsState": "'enabled' or 'disabled'",
}


def validate(shape: StructureShape | None, params: dict[str, Any], protocol: str) -> None:
    """Check params (already parsed from the wire into Python values: str, int, bool, float, datetime, bytes,
    list, dict keyed by model member names) against the input shape's constraints; raise AwsError on failure."""
    if shape is None:
        return  # eight IAM actions (GetAccountSummary, ...) have no input shape
    if protocol == "ec2":
        ec2_check = _ec2_check(shape)
        if ec2_check is not None:
            ec2_check(params, "")
        return
    check = _query_check(shape)
    if check is None:
        return
    errors: list[str] = []
    check(params, "", errors)
    if errors:
        # Every violation, in member order: no evidence was found that AWS truncates the list.
        raise validation_error(errors)


# ---------------------------------------------------------------------------------------------- patterns


@lru_cache(maxsize=1024)
def compile_java_pattern(pattern: str) -> Matcher:
    """A whole-value matcher for a model (Java) regex, compiled once, as Java's matches() reads it."""
    translated = _java_to_regex(pattern)
    fast = _stdlib_matcher(translated)
    if fast is not None:
        return fast
    # regex knows \p{L}, \p{Z}, \p{N}; V1 reads a nested [..] inside a class as a union, as Java does.
    full: Matcher = regex.compile(translated, regex.V1).fullmatch
    ascii_only = _java_to_regex(pattern, ascii_only=True)
    twin = _stdlib_matcher(ascii_only) if ascii_only is not None else None
    if twin is None:
        return full

    def matches(value: str) -> object:
        # On ASCII text \p{L}, \p{N} and \p{Z} are exactly [a-zA-Z], [0-9] and " ", and most values are ASCII.
        return twin(value) if value.isascii() else full(value)

    return matches


def _stdlib_matcher(translated: str) -> Matcher | None:
    # The stdlib engine is two to three times faster than regex. It lacks \p{..}, and any warning (a possible
    # nested set) or error means its reading could differ from Java's, so those go to regex.
    if "\\p" in translated or "\\P" in translated:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return re.compile(translated).fullmatch
        except (re.error, FutureWarning):
            return None


@overload
def _java_to_regex(pattern: str) -> str: ...
@overload
def _java_to_regex(pattern: str, *, ascii_only: bool) -> str | None: ...
def _java_to_regex(pattern: str, *, ascii_only: bool = False) -> str | None:
    """Spell out Java's ASCII shorthands and line-terminator dot; with ascii_only, also the L, N and Z
    properties as their ASCII members (any other property means the pattern has no ASCII twin)."""
    out: list[str] = []
    depth = 0  # character-class nesting
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            body = _JAVA_SHORTHANDS.get(escaped.lower())
            if ascii_only and escaped in "pP":
                close = pattern.find("}", i)
                body = _ASCII_PROPERTIES.get(pattern[i + 3 : close]) if escaped == "p" and close > 0 else None
                if body is None:
                    return None
                out.append(body if depth else f"[{body}]")
                i = close + 1
                continue
            if body is None:
                out.append(pattern[i : i + 2])
            elif escaped.isupper():
                out.append(f"[^{body}]")
            else:
                out.append(body if depth else f"[{body}]")
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        out.append(_JAVA_DOT if char == "." and not depth else char)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------------------------------------- query (IAM, STS)


@lru_cache(maxsize=32768)
def _query_check(shape: Shape) -> QueryCheck | None:
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
        (name, name[0].lower() + name[1:], name in required, _query_check(member))
        for name, member in shape.members.items()
        if name in required or _query_check(member) is not None
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
    element = _query_check(shape.member)
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
    key_check = _query_check(shape.key)
    value_check = _query_check(shape.value)
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


# ---------------------------------------------------------------------------------------------- ec2


@lru_cache(maxsize=32768)
def _ec2_check(shape: Shape) -> Ec2Check | None:
    # EC2 enforces required members and enums, but not the model's ranges, lengths or patterns: AWS accepted
    # DescribeIamInstanceProfileAssociations MaxResults 4 and 1001 (model: 5-1000), DescribeInstances' real
    # floor (5) is not in the model at all, and each EC2 action words its range errors differently. Those
    # checks belong to the handlers.
    if isinstance(shape, StructureShape):
        return _ec2_structure(shape)
    if isinstance(shape, ListShape):
        return _ec2_list(shape)
    if shape.type_name == "string" and shape.metadata.get("enum"):
        return _ec2_enum(shape)
    return None


def _ec2_structure(shape: StructureShape) -> Ec2Check | None:
    required = set(shape.required_members)
    wires = {name: _ec2_wire_name(name, member) for name, member in shape.members.items()}
    needed = tuple((name, wires[name]) for name in shape.members if name in required)
    plan = tuple(
        (name, wires[name], check)
        for name, member in shape.members.items()
        if (check := _ec2_check(member)) is not None
    )
    if not needed and not plan:
        return None

    def check_structure(value: Any, path: str) -> None:
        prefix = f"{path}." if path else ""
        # A missing parameter is reported before any bad value, whatever the member order.
        for name, wire in needed:
            if value.get(name) is None:
                raise AwsError("MissingParameter", f"The request must contain the parameter {prefix}{wire}", status=400)
        for name, wire, check in plan:
            item = value.get(name)
            if item is not None:
                check(item, prefix + wire)

    return check_structure


def _ec2_list(shape: ListShape) -> Ec2Check | None:
    element = _ec2_check(shape.member)
    if element is None:
        return None

    def check_list(value: Any, path: str) -> None:
        for index, item in enumerate(value, 1):
            if item is not None:
                element(item, f"{path}.{index}")

    return check_list


def _ec2_enum(shape: Shape) -> Ec2Check:
    allowed = frozenset(shape.metadata["enum"])
    either = _EC2_EITHER.get(shape.name)

    def check_enum(value: Any, path: str) -> None:
        if value in allowed:
            return
        name = _leaf_name(path)
        if either is not None:
            message = f"A value of '{value}' is not valid for {name}. Specify either {either} and try again."
        elif shape.name == "ResourceType":
            message = f"'{value}' is not a valid taggable resource type for this operation."
        else:
            message = f"Invalid value '{value}' for {name}."
        raise AwsError("InvalidParameterValue", message, status=400)

    return check_enum


def _ec2_wire_name(name: str, member: Shape) -> str:
    """The EC2 query name of a member: queryName, else locationName capitalised, else the member name."""
    query_name: str | None = member.serialization.get("queryName")
    if query_name:
        return query_name
    location: str | None = member.serialization.get("name")
    if location:
        return location[0].upper() + location[1:]
    return name


def _leaf_name(path: str) -> str:
    # "TagSpecification.1.ResourceType" -> "ResourceType"; "InstanceId.2" -> "InstanceId"
    parts = [part for part in path.split(".") if not part.isdigit()]
    return parts[-1] if parts else path
