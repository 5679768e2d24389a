"""EC2 instances: RunInstances and DescribeInstances."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from roleport import ids
from roleport.auth.request_keys import REQUEST_TAGS
from roleport.auth.resources import ANY, account_scope
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import ec2_ids, ec2_instance_filters, ec2_lifecycle, ec2_profiles
from roleport.services.ec2_instance_views import (
    INSTANCE_ROWS,
    find_instances,
    instance_out,
    reservations_out,
    visible_instances,
)
from roleport.services.ec2_lifecycle import INSTANCE_STATES, instances
from roleport.services.registry import operation
from roleport.store import paging, schema, sql
from roleport.store.db import Row

reservations = schema.ec2_reservations
tags = schema.ec2_instance_tags

DEFAULT_INSTANCE_TYPE = "m1.small"  # RunInstancesRequest.InstanceType, "Default: m1.small" (AWS SDK for .NET docs)
INSTANCE_LIMIT = 1000  # instances one RunInstances call may launch here
# The metadata options a launch gets unless it says otherwise (InstanceMetadataOptionsRequest reference).
METADATA_DEFAULTS = {
    "HttpTokens": "optional",
    "HttpEndpoint": "enabled",
    "HttpPutResponseHopLimit": 1,
    "InstanceMetadataTags": "disabled",
    "HttpProtocolIpv6": "disabled",
}
# Resource types RunInstances can tag besides the instance; roleport has none of them, so their tags are dropped.
OTHER_TAGGABLE = frozenset({"volume", "network-interface", "spot-instances-request", "elastic-gpu"})
_ARM_FAMILY = re.compile(r"a1|[a-z-]+\d+[a-z-]*g[a-z-]*")  # Graviton families: a1, t4g, m6gd, c7gn, x2gd...

# ---------------------------------------------------------------------------------------------- RunInstances

_TOKENS = paging.Ec2Tokens("instances")


def _count(p: Params) -> int:
    low, high = p["MinCount"], p["MaxCount"]
    # AWS: "Maximum instance count must be greater than zero" (jenkinsci/ec2-plugin#252); the other two follow it.
    if low < 1:
        raise AwsError("InvalidParameterValue", "Minimum instance count must be greater than zero", status=400)
    if high < 1:
        raise AwsError("InvalidParameterValue", "Maximum instance count must be greater than zero", status=400)
    if low > high:
        message = "Maximum instance count must not be smaller than minimum instance count"
        raise AwsError("InvalidParameterValue", message, status=400)
    if low > INSTANCE_LIMIT:
        message = (
            f"You have requested more instances ({low}) than your current instance limit of {INSTANCE_LIMIT} allows "
            "for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request "
            "an adjustment to this limit."
        )
        raise AwsError("InstanceLimitExceeded", message, status=400)
    return min(high, INSTANCE_LIMIT)  # like EC2: as many as it can, at least MinCount


def metadata_options(requested: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    options = {**base, **requested}
    hops = options["HttpPutResponseHopLimit"]
    if not 1 <= hops <= 64:
        message = f"Value ({hops}) for parameter HttpPutResponseHopLimit is invalid. Expected a value between 1 and 64."
        raise AwsError("InvalidParameterValue", message, status=400)
    return options


def _launch_tags(p: Params) -> list[dict[str, str]]:
    found: dict[str, str] = {}
    for spec in p.get("TagSpecifications", []):
        kind = spec.get("ResourceType", "instance")
        if kind not in ("instance", *OTHER_TAGGABLE):
            message = f"'{kind}' is not a valid taggable resource type for this operation."
            raise AwsError("InvalidParameterValue", message, status=400)
        if kind == "instance":
            found.update({tag["Key"]: tag.get("Value", "") for tag in spec.get("Tags", [])})
    return [{"Key": key, "Value": value} for key, value in sorted(found.items())]


def _digest(p: Params) -> str:
    """The launch parameters, minus the token itself, for EC2's same-token-same-arguments rule."""
    request = {key: value for key, value in p.items() if key not in ("ClientToken", "DryRun")}
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def _architecture(instance_type: str) -> str:
    return "arm64" if _ARM_FAMILY.fullmatch(instance_type.partition(".")[0]) else "x86_64"


def _private_dns(ctx: Ctx, address: str) -> str:
    # EC2 private DNS: ip-a-b-c-d.ec2.internal in us-east-1, ip-a-b-c-d.REGION.compute.internal elsewhere.
    host = "ip-" + address.replace(".", "-")
    region = ctx.settings.region
    return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"


def _instance_values(ctx: Ctx, p: Params, reservation_id: str, index: int, options: dict[str, Any]) -> dict:
    address = f"172.31.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"  # the default VPC's range
    instance_type = p.get("InstanceType", DEFAULT_INSTANCE_TYPE)
    return {
        "id": ids.hex_id("i-"),
        "account_id": ctx.account_id,
        "reservation_id": reservation_id,
        "launch_index": index,
        "client_token": p.get("ClientToken"),
        "image_id": p["ImageId"],
        "instance_type": instance_type,
        "architecture": _architecture(instance_type),
        "availability_zone": f"{ctx.settings.region}a",
        "private_ip": address,
        "private_dns_name": _private_dns(ctx, address),
        "state": "pending",
        "state_since": ctx.now,
        "state_reason": None,
        "launch_time": ctx.now,
        "first_launch_time": ctx.now,
        "http_tokens": options["HttpTokens"],
        "http_endpoint": options["HttpEndpoint"],
        "http_put_response_hop_limit": options["HttpPutResponseHopLimit"],
        "instance_metadata_tags": options["InstanceMetadataTags"],
        "http_protocol_ipv6": options["HttpProtocolIpv6"],
        "metadata_state": "pending",
        "metadata_since": ctx.now,
    }


def _claim_reservation(ctx: Ctx, token: str | None, digest: str) -> str | None:
    """A new reservation id, or None when a concurrent call with the same client token got there first. The insert
    waits for that call to commit rather than failing (ON CONFLICT DO NOTHING, on both stores)."""
    values = {
        "id": ids.hex_id("r-"),
        "account_id": ctx.account_id,
        "client_token": token,
        "request_digest": digest,
        "create_time": ctx.now,
    }
    return values["id"] if sql.insert_ignoring_conflicts(ctx.tx, reservations, values) else None


def _replay(ctx: Ctx, token: str, digest: str) -> dict[str, Any] | None:
    """RunInstances retried with a client token: the reservation it made, launching nothing (EC2 idempotency)."""
    found = ctx.tx.execute(
        select(reservations).where(reservations.c.account_id == ctx.account_id, reservations.c.client_token == token)
    ).first()
    if found is None:
        return None
    if found.request_digest != digest:
        # AWS: "Arguments on this idempotent request are inconsistent with arguments used in previous request(s)."
        message = "Arguments on this idempotent request are inconsistent with arguments used in previous request(s)."
        raise AwsError("IdempotentParameterMismatch", message, status=400)
    query = INSTANCE_ROWS.where(instances.c.reservation_id == found.id).order_by(instances.c.launch_index)
    rows = list(ctx.tx.execute(query))
    cutoff = ec2_lifecycle.cutoff(ctx)
    if not rows or any(INSTANCE_STATES.at(row.state, row.state_since, cutoff) == "terminated" for row in rows):
        # AWS (boto/boto3#4406): "The client token you have provided is associated with a terminated instance.
        # Please use a different client token."
        message = (
            "The client token you have provided is associated with a terminated instance. "
            "Please use a different client token."
        )
        raise AwsError("IdempotentInstanceTerminated", message, status=400)
    launched = reservations_out(ctx, rows)[0]["Instances"]
    return {"ReservationId": found.id, "OwnerId": found.account_id, "Groups": [], "Instances": launched}


# roleport keeps no images, subnets, security groups or network interfaces, so RunInstances is authorized on the
# instance alone where AWS also checks those resources (image, network-interface, security-group and subnet are
# required resource types of ec2:RunInstances): a policy that grants only instance/* launches here, not on AWS.
_INSTANCES_ONLY = (
    "roleport models only the instance of RunInstances' required resource types "
    "(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html)"
)


@operation(
    "ec2", "RunInstances", resource=account_scope("instance"), condition_keys=(REQUEST_TAGS,), deviation=_INSTANCES_ONLY
)
def run_instances(ctx: Ctx, p: Params) -> dict[str, Any]:
    if not p.get("ImageId"):
        raise AwsError("MissingParameter", "The request must contain the parameter ImageId", status=400)
    ec2_ids.check_image_id(p["ImageId"])
    count = _count(p)
    options = metadata_options(p.get("MetadataOptions", {}), METADATA_DEFAULTS)
    launch_tags = _launch_tags(p)
    token, digest = p.get("ClientToken"), _digest(p)
    if token and (replayed := _replay(ctx, token, digest)) is not None:
        return replayed
    spec = p.get("IamInstanceProfile") or {}
    profile = ec2_profiles.resolve_profile(ctx, spec) if spec.get("Arn") or spec.get("Name") else None
    ec2_lifecycle.purge_gone(ctx)
    reservation_id = _claim_reservation(ctx, token, digest)
    if reservation_id is None:
        return _replay(ctx, token or "", digest) or {}
    rows = [_instance_values(ctx, p, reservation_id, index, options) for index in range(count)]
    ctx.tx.execute(instances.insert(), rows)
    if launch_tags:
        ctx.tx.execute(tags.insert(), [{"instance_id": row["id"], **_tag_row(t)} for row in rows for t in launch_tags])
    cutoff = ec2_lifecycle.cutoff(ctx)
    launched = []
    for row in rows:
        association = ec2_profiles.start_association(ctx, row["id"], profile) if profile else None
        view = _launch_view(row, association)
        launched.append(instance_out(view, launch_tags, cutoff, state="pending", metadata_state="pending"))
    return {"ReservationId": reservation_id, "OwnerId": ctx.account_id, "Groups": [], "Instances": launched}


def _tag_row(tag: dict[str, str]) -> dict[str, str]:
    return {"key": tag["Key"], "value": tag["Value"]}


def _launch_view(values: dict[str, Any], association: dict[str, Any] | None) -> Row:
    """A just-written instance, read like a stored row without reading it back."""
    return SimpleNamespace(
        **values,
        association_id=association["id"] if association else None,
        profile_arn=association["profile_arn"] if association else None,
        profile_id=association["profile_id"] if association else None,
    )


# ---------------------------------------------------------------------------------------------- DescribeInstances


def _page_size(p: Params) -> int:
    size = p.get("MaxResults")
    if size is None:
        return paging.EC2_DEFAULT_PAGE
    # AWS: "Value ( 1 ) for parameter maxResults is invalid. Expecting a value greater than 5." (aws-sdk-ruby#2575)
    if size < 5:
        message = f"Value ( {size} ) for parameter maxResults is invalid. Expecting a value greater than 5."
        raise AwsError("InvalidParameterValue", message, status=400)
    if size > 1000:
        message = f"Value ( {size} ) for parameter maxResults is invalid. Expecting a value less than 1000."
        raise AwsError("InvalidParameterValue", message, status=400)
    return int(size)


@operation("ec2", "DescribeInstances", resource=ANY)
def describe_instances(ctx: Ctx, p: Params) -> dict[str, Any]:
    wanted = ec2_ids.check_instance_ids(p.get("InstanceIds", []))
    if wanted and p.get("MaxResults") is not None:
        # AWS: "The parameter instancesSet cannot be used with the parameter maxResults" (getmoto/moto#6282).
        message = "The parameter instancesSet cannot be used with the parameter maxResults"
        raise AwsError("InvalidParameterCombination", message, status=400)
    size = _page_size(p)
    query = visible_instances(ctx).where(*ec2_instance_filters.conditions(ctx, p.get("Filters", [])))
    if wanted:
        find_instances(ctx, wanted)
        query = query.where(instances.c.id.in_(wanted))
        size = max(size, len(wanted))
    rows, token = paging.page(ctx.tx, query, [instances.c.seq], p.get("NextToken"), size, _TOKENS)
    result: dict[str, Any] = {"Reservations": reservations_out(ctx, rows)}
    if token:
        result["NextToken"] = token
    return result
