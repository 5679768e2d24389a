"""Form-encoded requests (AWS query and EC2 protocols) → (operation, params) by walking the input shape."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.model import OperationModel, Shape, StructureShape

from roleport.errors import AwsError, validation_error
from roleport.protocol import spec

Tree = dict[str, Any]


def parse(service: str, form: Mapping[str, str]) -> tuple[OperationModel, dict[str, Any]]:
    action = form.get("Action")
    if not action:
        raise AwsError("MissingAction", "Missing Action", status=400)
    if action not in spec.operation_names(service):
        raise AwsError("InvalidAction", f"The action {action} is not valid for this web service.", status=400)
    operation = spec.operation_model(service, action)
    shape = operation.input_shape
    if shape is None:
        return operation, {}
    ec2 = spec.service_model(service).protocol == "ec2"
    # Without a dotted key the tree is the form itself, and most calls name only top-level scalars.
    flat = not any("." in key for key in form)
    return operation, _structure(shape, form if flat else _tree(form), ec2)


def _tree(form: Mapping[str, str]) -> Tree:
    """`Tags.member.1.Key=a` → {"Tags": {"member": {"1": {"Key": "a"}}}}; a key seen as both leaf and branch keeps
    the branch, since only the branch can match a list or structure."""
    root: Tree = {}
    for key, value in form.items():
        node = root
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(leaf), dict):
            node[leaf] = value
    return root


def _wire_name(member_name: str, member: Shape, ec2: bool) -> str:
    serialization = member.serialization
    if ec2:
        if "queryName" in serialization:
            return str(serialization["queryName"])
        if "name" in serialization:
            name = str(serialization["name"])
            return name[:1].upper() + name[1:]
        return member_name
    return str(serialization.get("name", member_name))


def _structure(shape: StructureShape, node: Mapping[str, Any], ec2: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for member_name, wire_name, member, is_string in _members(shape, ec2):
        value = node.get(wire_name)
        if value is not None:
            # A string member given a plain value is the value itself: the common case skips the dispatch.
            is_plain = is_string and value.__class__ is str
            params[member_name] = value if is_plain else _value(member, value, ec2, member_name)
    return params


@functools.lru_cache(maxsize=8192)
def _members(shape: StructureShape, ec2: bool) -> tuple[tuple[str, str, Shape, bool], ...]:
    """A structure's members with their wire names, worked out once per shape (botocore keeps its shape objects)."""
    return tuple(
        (name, _wire_name(name, member, ec2), member, member.type_name == "string")
        for name, member in shape.members.items()
    )


def _value(shape: Shape, value: Any, ec2: bool, name: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, value, ec2) if isinstance(value, dict) else {}  # type: ignore[arg-type]
    if kind == "list":
        return _list(shape, value, ec2, name)
    if kind == "map":
        return _map(shape, value, ec2, name)
    if isinstance(value, dict):
        raise _malformed(name, "", ec2)
    return _scalar(kind, value, ec2, name)


def _indexed(node: Tree) -> list[Any]:
    """List items keyed 1..N; AWS reads them in index order and ignores keys that are not numbers."""
    items = [(int(k), v) for k, v in node.items() if k.isdigit()]
    return [v for _, v in sorted(items)]


def _list(shape: Any, value: Any, ec2: bool, name: str) -> list[Any]:
    if not isinstance(value, dict):
        return []  # `Name=` with an empty value is how the query protocol sends an empty list
    member = shape.member
    if not ec2 and not shape.serialization.get("flattened"):
        value = value.get(member.serialization.get("name", "member"), {})
        if not isinstance(value, dict):
            return []
    return [_value(member, item, ec2, name) for item in _indexed(value)]


def _map(shape: Any, value: Any, ec2: bool, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    if not shape.serialization.get("flattened"):
        value = value.get("entry", {})
    key_name = shape.key.serialization.get("name", "key")
    value_name = shape.value.serialization.get("name", "value")
    result: dict[str, Any] = {}
    for entry in _indexed(value):
        if isinstance(entry, dict) and key_name in entry:
            result[str(entry[key_name])] = _value(shape.value, entry.get(value_name, ""), ec2, name)
    return result


def _scalar(kind: str, value: str, ec2: bool, name: str) -> Any:
    try:
        if kind in ("integer", "long"):
            return int(value)
        if kind in ("float", "double"):
            return float(value)
        if kind == "boolean":
            lowered = value.lower()
            if lowered not in ("true", "false"):
                raise ValueError(value)
            return lowered == "true"
        if kind == "timestamp":
            return _timestamp(value)
        if kind == "blob":
            return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error, OverflowError):
        raise _malformed(name, value, ec2) from None
    return value


def _timestamp(value: str) -> datetime:
    if value.replace(".", "", 1).isdigit():
        return datetime.fromtimestamp(float(value), UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _malformed(name: str, value: str, ec2: bool) -> AwsError:
    if ec2:
        return AwsError("InvalidParameterValue", f"Value ({value}) for parameter {name} is invalid.", status=400)
    camel = name[:1].lower() + name[1:]
    return validation_error([f"Value '{value}' at '{camel}' failed to satisfy constraint: Member must be well formed"])
