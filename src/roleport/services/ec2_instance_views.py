"""How instances are read and shown: the instance rows with their active association, lookups by id, and the
Instance and Reservation wire views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from roleport.context import Ctx
from roleport.services import ec2_ids, ec2_lifecycle
from roleport.services.ec2_lifecycle import INSTANCE_STATES, METADATA_STATES, associations, instances, state_out
from roleport.store import schema
from roleport.store.db import Prepared, Row

tags = schema.ec2_instance_tags

# An instance with the association that is active on it, if any.
INSTANCE_ROWS = select(
    instances,
    associations.c.id.label("association_id"),
    associations.c.profile_arn,
    associations.c.profile_id,
).select_from(instances.outerjoin(associations, associations.c.active_instance_id == instances.c.id))


# ---------------------------------------------------------------------------------------------- output


# What every roleport instance has alike: an EBS-backed HVM Linux instance without VPC networking. One table feeds
# both the Instance output and the DescribeInstances filters that read these members (ec2_instance_filters.py), so
# a filter always selects what the output shows.


@dataclass(frozen=True, slots=True)
class Fixed:
    member: str  # the Instance member
    value: Any
    filter: str | None = None  # the DescribeInstances filter that reads it, if any
    text: str | None = None  # the value as that filter matches it, where it is not the value itself

    @property
    def filter_text(self) -> str:
        if self.text is not None:
            return self.text
        return str(self.value).lower() if isinstance(self.value, bool) else str(self.value)


TENANCY = "default"
FIXED_ATTRIBUTES = (
    Fixed("PublicDnsName", ""),
    Fixed("ProductCodes", ()),
    Fixed("Monitoring", {"State": "disabled"}, "monitoring-state", "disabled"),
    Fixed("BlockDeviceMappings", ()),
    Fixed("EbsOptimized", False, "ebs-optimized"),
    Fixed("EnaSupport", True, "ena-support"),
    Fixed("Hypervisor", "xen", "hypervisor"),
    Fixed("RootDeviceName", "/dev/xvda", "root-device-name"),
    Fixed("RootDeviceType", "ebs", "root-device-type"),
    Fixed("SecurityGroups", ()),
    Fixed("SourceDestCheck", True, "source-dest-check"),
    Fixed("VirtualizationType", "hvm", "virtualization-type"),
    Fixed("HibernationOptions", {"Configured": False}),
    Fixed("EnclaveOptions", {"Enabled": False}),
    Fixed("PlatformDetails", "Linux/UNIX", "platform-details"),
    Fixed("UsageOperation", "RunInstances", "usage-operation"),
    Fixed("MaintenanceOptions", {"AutoRecovery": "default"}),
)
# Shared by every answer, and only ever read by the serializer.
_FIXED: dict[str, Any] = {attribute.member: attribute.value for attribute in FIXED_ATTRIBUTES}
FILTERED_CONSTANTS: dict[str, str] = {
    **{attribute.filter: attribute.filter_text for attribute in FIXED_ATTRIBUTES if attribute.filter},
    "tenancy": TENANCY,
}


def instance_out(
    row: Row,
    tag_list: list[dict[str, str]],
    cutoff: datetime,
    *,
    state: str | None = None,
    metadata_state: str | None = None,
) -> dict[str, Any]:
    """An Instance as DescribeInstances sends it. `state` and `metadata_state` override the derived states: a
    mutating call's own response shows the passing state it entered, even when the delay is zero."""
    name = state or INSTANCE_STATES.at(row.state, row.state_since, cutoff)
    out: dict[str, Any] = {
        **_FIXED,
        "InstanceId": row.id,
        "ImageId": row.image_id,
        "State": state_out(name),
        "StateTransitionReason": _transition_reason(row),
        "AmiLaunchIndex": row.launch_index,
        "InstanceType": row.instance_type,
        "LaunchTime": row.launch_time,
        "Placement": {"AvailabilityZone": row.availability_zone, "GroupName": "", "Tenancy": TENANCY},
        "Architecture": row.architecture,
        "MetadataOptions": metadata_out(row, cutoff, state=metadata_state),
        "UsageOperationUpdateTime": row.first_launch_time,
    }
    if name != "terminated":  # a terminated instance has given its address back
        out["PrivateDnsName"], out["PrivateIpAddress"] = row.private_dns_name, row.private_ip
    else:
        out["PrivateDnsName"] = ""
    if row.client_token:
        out["ClientToken"] = row.client_token
    if row.association_id is not None:
        out["IamInstanceProfile"] = {"Arn": row.profile_arn, "Id": row.profile_id}
    if row.state_reason:
        out["StateReason"] = {"Code": row.state_reason, "Message": f"{row.state_reason}: User initiated shutdown"}
    if tag_list:
        out["Tags"] = tag_list
    return out


def metadata_out(row: Row, cutoff: datetime, *, state: str | None = None) -> dict[str, Any]:
    return {
        "State": state or METADATA_STATES.at(row.metadata_state, row.metadata_since, cutoff),
        "HttpTokens": row.http_tokens,
        "HttpPutResponseHopLimit": row.http_put_response_hop_limit,
        "HttpEndpoint": row.http_endpoint,
        "HttpProtocolIpv6": row.http_protocol_ipv6,
        "InstanceMetadataTags": row.instance_metadata_tags,
    }


def _transition_reason(row: Row) -> str:
    # AWS: "User initiated (2024-05-16 16:25:20 GMT)" after a user's stop or terminate.
    if not row.state_reason:
        return ""
    return f"User initiated ({row.state_since.strftime('%Y-%m-%d %H:%M:%S')} GMT)"


def tags_by_instance(ctx: Ctx, instance_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """The tags of a page of instances in one query."""
    found: dict[str, list[dict[str, str]]] = {}
    if instance_ids:
        query = select(tags.c.instance_id, tags.c.key, tags.c.value).where(tags.c.instance_id.in_(list(instance_ids)))
        for row in ctx.tx.execute(query.order_by(tags.c.instance_id, tags.c.key)):
            found.setdefault(row.instance_id, []).append({"Key": row.key, "Value": row.value})
    return found


def reservations_out(ctx: Ctx, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Instances grouped under their reservations, in the order given."""
    tag_lists = tags_by_instance(ctx, [row.id for row in rows])
    cutoff = ec2_lifecycle.cutoff(ctx)
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        reservation = grouped.setdefault(
            row.reservation_id,
            {"ReservationId": row.reservation_id, "OwnerId": row.account_id, "Groups": [], "Instances": []},
        )
        reservation["Instances"].append(instance_out(row, tag_lists.get(row.id, []), cutoff))
    return list(grouped.values())


# ---------------------------------------------------------------------------------------------- lookups


def visible_instances(ctx: Ctx) -> Any:
    return INSTANCE_ROWS.where(
        instances.c.account_id == ctx.account_id, ec2_lifecycle.instance_visible_sql(ec2_lifecycle.hidden_before(ctx))
    )


# One instance by id, the common case of every call that names instances, compiled once.
_ONE_INSTANCE = INSTANCE_ROWS.where(
    instances.c.account_id == bindparam("account"),
    instances.c.id == bindparam("id"),
    ec2_lifecycle.instance_visible_sql(bindparam("hidden")),
)
_ONE = Prepared(_ONE_INSTANCE)
_ONE_LOCKED = Prepared(_ONE_INSTANCE.with_for_update(of=instances))


def find_instances(ctx: Ctx, instance_ids: Sequence[str], *, for_update: bool = False) -> dict[str, Row]:
    """The visible instances with these ids, by id; any id missing fails the call with all the missing ones.
    for_update locks their rows until the call ends (PostgreSQL), so changes to one instance queue up."""
    if len(instance_ids) == 1:
        values = {"account": ctx.account_id, "id": instance_ids[0], "hidden": ec2_lifecycle.hidden_before(ctx)}
        rows = ctx.tx.execute(_ONE_LOCKED if for_update else _ONE, values)
    else:
        query = visible_instances(ctx).where(instances.c.id.in_(list(instance_ids)))
        rows = ctx.tx.execute(query.with_for_update(of=instances) if for_update else query)
    found = {row.id: row for row in rows}
    missing = [value for value in instance_ids if value not in found]
    if missing:
        raise ec2_ids.instances_not_found(missing)
    return found
