"""DescribeInstances filters as SQL conditions, so filtering and paging both happen in the database."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import exists, false, literal, select
from sqlalchemy.sql.elements import ColumnElement

from roleport.context import Ctx
from roleport.errors import AwsError
from roleport.protocol import spec
from roleport.services import ec2_filters, ec2_lifecycle
from roleport.services.ec2_filters import as_text, matches
from roleport.services.ec2_instance_views import FILTERED_CONSTANTS
from roleport.services.ec2_lifecycle import INSTANCE_STATES, METADATA_STATES, STATE_NAMES, associations, instances
from roleport.store import schema

tags = schema.ec2_instance_tags


@functools.cache
def aws_filter_names() -> frozenset[str]:
    """Every filter name AWS documents for DescribeInstances, read from the service model."""
    documentation = spec.operation_model("ec2", "DescribeInstances").input_shape.members["Filters"].documentation
    return frozenset(re.findall(r"<code>([a-z0-9.:\-]+)</code> - ", documentation)) | {"tag-value"}


def _columns(cutoff: Any) -> Mapping[str, Any]:
    i, m = instances.c, associations.c
    return {
        "architecture": i.architecture,
        "availability-zone": i.availability_zone,
        "client-token": i.client_token,
        "iam-instance-profile.arn": m.profile_arn,
        "iam-instance-profile.id": m.profile_id,
        "image-id": i.image_id,
        "instance-id": i.id,
        "instance-state-name": INSTANCE_STATES.sql(i.state, i.state_since, cutoff),
        "instance-type": i.instance_type,
        "launch-index": as_text(i.launch_index),
        "metadata-options.http-endpoint": i.http_endpoint,
        "metadata-options.http-protocol-ipv6": i.http_protocol_ipv6,
        "metadata-options.http-put-response-hop-limit": as_text(i.http_put_response_hop_limit),
        "metadata-options.http-tokens": i.http_tokens,
        "metadata-options.instance-metadata-tags": i.instance_metadata_tags,
        "metadata-options.state": METADATA_STATES.sql(i.metadata_state, i.metadata_since, cutoff),
        "owner-id": i.account_id,
        "private-dns-name": i.private_dns_name,
        "private-ip-address": i.private_ip,
        "reservation-id": i.reservation_id,
        **{name: literal(value) for name, value in FILTERED_CONSTANTS.items()},
    }


def _tag_condition(column: Callable[[Any], Any], values: Sequence[str], key: str | None) -> Any:
    query = select(tags.c.instance_id).where(tags.c.instance_id == instances.c.id)
    if key is not None:
        query = query.where(tags.c.key == key)
    return exists(query.where(matches(column(tags.c), values)))


def _check_values(values: Sequence[str]) -> None:
    for value in values:
        if len(value) > 255:
            # AWS: "The maximum length for a filter value is 255 characters" (ansible-collections/amazon.aws#2393).
            message = "The maximum length for a filter value is 255 characters"
            raise AwsError("FilterLimitExceeded", message, status=400)


def conditions(ctx: Ctx, filters: Sequence[Mapping[str, Any]]) -> list[ColumnElement[bool]]:
    """One condition per filter, ANDed by the caller; the values of one filter are ORed (EC2 Filter reference)."""
    columns = _columns(ec2_lifecycle.cutoff(ctx))
    out: list[ColumnElement[bool]] = []
    for item in filters:
        name, values = item.get("Name", ""), list(item.get("Values", []))
        _check_values(values)
        out.append(_condition(name, values, columns))
    return out


def _condition(name: str, values: list[str], columns: Mapping[str, Any]) -> Any:
    if name in columns:
        return matches(columns[name], values)
    if name == "instance-state-code":
        names = [STATE_NAMES[value] for value in values if value in STATE_NAMES]
        return matches(columns["instance-state-name"], names)
    if name.startswith("tag:") and len(name) > 4:
        return _tag_condition(lambda c: c.value, values, name[4:])
    if name == "tag-key":
        return _tag_condition(lambda c: c.key, values, None)
    if name == "tag-value":
        return _tag_condition(lambda c: c.value, values, None)
    if name in aws_filter_names():
        # A filter AWS knows on an attribute roleport's instances do not have (VPC, subnet, volumes...): none match.
        return false()
    raise ec2_filters.invalid_filter(name)
