"""EC2 id formats, checked as EC2 checks them, and the not-found errors for lists of ids."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from roleport.errors import AwsError

_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_IMAGE_ID = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_ASSOCIATION_ID = re.compile(r"iip-assoc-(?:[0-9a-f]{8}|[0-9a-f]{17})")


def check_instance_ids(values: Iterable[str]) -> list[str]:
    """The ids in request order without repeats; a malformed one fails the call, as on AWS."""
    unique = list(dict.fromkeys(values))
    for value in unique:
        if not _INSTANCE_ID.fullmatch(value):
            # AWS: `Invalid id: "ma1"` (ClusterLabs/cluster-glue#29, StopInstances and DescribeInstances).
            raise AwsError("InvalidInstanceID.Malformed", f'Invalid id: "{value}"', status=400)
    return unique


def check_image_id(value: str) -> None:
    if not _IMAGE_ID.fullmatch(value):
        # AWS: `Invalid id: "{var.ami_id}" (expecting "ami-...")` (hashicorp/terraform#22172).
        raise AwsError("InvalidAMIID.Malformed", f'Invalid id: "{value}" (expecting "ami-...")', status=400)


def check_association_ids(values: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(values))
    for value in unique:
        if not _ASSOCIATION_ID.fullmatch(value):
            # AWS answered an instance id given as the association id this way (aws/aws-cli#2570).
            raise AwsError("InvalidParameterValue", "Invalid value for associationId.", status=400)
    return unique


def instances_not_found(missing: Sequence[str]) -> AwsError:
    # AWS: "The instance ID 'i-…' does not exist"; several: "The instance IDs 'i-a, i-b' do not exist"
    # (getmoto/moto#4903, quoting TerminateInstances).
    if len(missing) == 1:
        return AwsError("InvalidInstanceID.NotFound", f"The instance ID '{missing[0]}' does not exist", status=400)
    joined = ", ".join(missing)
    return AwsError("InvalidInstanceID.NotFound", f"The instance IDs '{joined}' do not exist", status=400)


def associations_not_found(missing: Sequence[str]) -> AwsError:
    # EC2's wording for association ids, as for Elastic IP associations ("The association ID 'eipassoc-…' does not
    # exist", hashicorp/terraform-provider-aws#3653).
    if len(missing) == 1:
        return AwsError(
            "InvalidAssociationID.NotFound", f"The association ID '{missing[0]}' does not exist", status=400
        )
    joined = ", ".join(missing)
    return AwsError("InvalidAssociationID.NotFound", f"The association IDs '{joined}' do not exist", status=400)
