"""EC2 input constraints: one checker per input shape, enforcing required members and enums and raising EC2's
error for the first violation."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from botocore.model import ListShape, Shape, StructureShape

from roleport.errors import AwsError

# An EC2 checker raises the first violated constraint.
Ec2Check = Callable[[Any, str], None]

# EC2 words a bad enum value per parameter. AWS (hashicorp/terraform-provider-aws#25547): "A value of '' is not
# valid for HttpEndpoint. Specify either 'enabled' or 'disabled' and try again."; its sibling options follow suit.
_EC2_EITHER: Final = {
    "HttpTokensState": "'optional' or 'required'",
    "InstanceMetadataEndpointState": "'enabled' or 'disabled'",
    "InstanceMetadataProtocolState": "'enabled' or 'disabled'",
    "InstanceMetadataTagsState": "'enabled' or 'disabled'",
}


@lru_cache(maxsize=32768)
def ec2_check(shape: Shape) -> Ec2Check | None:
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
        (name, wires[name], check) for name, member in shape.members.items() if (check := ec2_check(member)) is not None
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
    element = ec2_check(shape.member)
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
